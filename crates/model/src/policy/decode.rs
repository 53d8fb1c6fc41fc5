//! Decoding user input: multi-document YAML (or JSON) with mixed kinds, all or nothing.

use std::collections::BTreeMap;
use std::fmt;

use serde_yaml_ng::Value;

use super::common::PolicyError;
use super::locate::locate;
use super::resource::{dispatch, DispatchError, Resource, Source};

/// Input that cannot be applied: which document, where, on which resource and field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DecodeError {
    /// 1-based number of the document in the input (empty documents are not counted).
    pub document: usize,
    /// 0-based index inside a `List` document (`items`) or a top-level sequence.
    pub item: Option<usize>,
    /// 1-based line in the whole input, where known.
    pub line: Option<u32>,
    /// 1-based column, where known.
    pub column: Option<u32>,
    /// Kind and name of the resource, once known (`NetworkPolicy default/allow-tcp-80`).
    pub resource: Option<String>,
    /// The field (`spec.ingress[0].source.selector`), where known.
    pub path: Option<String>,
    /// What is wrong and how to fix it.
    pub reason: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {}", self.document)?;
        if let Some(i) = self.item {
            write!(f, ", item {i}")?;
        }
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, " (line {l}, column {c})")?,
            (Some(l), None) => write!(f, " (line {l})")?,
            _ => {}
        }
        if let Some(r) = &self.resource {
            write!(f, ": {r}")?;
        }
        if let Some(p) = &self.path {
            write!(f, ": {p}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// One document of the input: its number and its text, preceded by as many empty lines as
/// come before it in the input, so that parser line numbers are those of the whole input.
struct Chunk {
    number: usize,
    first_line: u32,
    text: String,
}

/// Splits at `---` lines (the only place YAML allows them), dropping `...` end markers,
/// directives and documents holding nothing but blanks and comments.
fn split_documents(input: &str) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut start = 0usize;
    let mut ended = false;
    let is_marker = |l: &str, m: &str| {
        l.strip_prefix(m)
            .is_some_and(|r| r.is_empty() || r.starts_with([' ', '\t']))
    };
    let mut flush = |lines: &mut Vec<String>, start: usize| {
        let has_content = lines.iter().any(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        });
        if has_content {
            let first_line = to_u32(
                start
                    + lines
                        .iter()
                        .position(|l| !l.trim().is_empty() && !l.trim().starts_with('#'))
                        .unwrap_or(0)
                    + 1,
            );
            let text = "\n".repeat(start) + &lines.join("\n") + "\n";
            chunks.push(Chunk {
                number: chunks.len() + 1,
                first_line,
                text,
            });
        }
        lines.clear();
    };
    for (i, raw) in input.lines().enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if is_marker(line, "---") {
            flush(&mut current, start);
            start = i;
            ended = false;
            // Content may follow the marker on its line (`--- {a: 1}`): keep its columns.
            current.push(format!("   {}", &line[3..]));
        } else if is_marker(line, "...") {
            ended = true;
            current.push(String::new());
        } else if ended || (line.starts_with('%') && current.iter().all(|l| l.trim().is_empty())) {
            current.push(String::new());
        } else {
            current.push(line.to_string());
        }
    }
    flush(&mut current, start);
    chunks
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Splits a serde_yaml_ng message into (path, reason) and removes its trailing location.
fn split_yaml_error(e: &serde_yaml_ng::Error) -> (Option<String>, String, Option<(u32, u32)>) {
    let loc = e.location().map(|l| (to_u32(l.line()), to_u32(l.column())));
    let mut msg = e.to_string();
    if let Some((l, c)) = loc {
        let suffix = format!(" at line {l} column {c}");
        if let Some(stripped) = msg.strip_suffix(&suffix) {
            msg = stripped.to_string();
        }
    }
    let path_chars = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']' | '-'))
    };
    if let Some((p, rest)) = msg.split_once(": ") {
        if path_chars(p) {
            return (Some(p.to_string()), rest.to_string(), loc);
        }
    }
    (None, msg, loc)
}

struct Ctx {
    document: usize,
    item: Option<usize>,
}

impl Ctx {
    fn error(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            document: self.document,
            item: self.item,
            line: None,
            column: None,
            resource: None,
            path: None,
            reason: reason.into(),
        }
    }

    fn yaml_error(&self, e: &serde_yaml_ng::Error, with_location: bool) -> DecodeError {
        let (path, reason, loc) = split_yaml_error(e);
        let mut d = self.error(reason);
        d.path = path;
        if with_location {
            d.line = loc.map(|l| l.0);
            d.column = loc.map(|l| l.1);
        }
        d
    }
}

/// `Kind namespace/name` from the raw fields, for errors found before the kind is decoded.
fn describe_value(v: &Value) -> Option<String> {
    let kind = v.get("kind")?.as_str()?;
    let meta = v.get("metadata")?;
    let name = meta.get("name")?.as_str()?;
    Some(match meta.get("namespace").and_then(Value::as_str) {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    })
}

/// Decodes and validates one resource document. `text` (when it is the document's own text)
/// gives errors their lines.
fn decode_one(ctx: &Ctx, value: Value, text: Option<&str>) -> Result<Resource, DecodeError> {
    if !value.is_mapping() {
        return Err(
            ctx.error("a resource must be a mapping with apiVersion, kind, metadata and spec")
        );
    }
    let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_string);
    let (Some(api), Some(kind)) = (field("apiVersion"), field("kind")) else {
        let missing = if field("apiVersion").is_none() {
            "apiVersion"
        } else {
            "kind"
        };
        let mut e = ctx.error(format!(
            "the document has no {missing}: every resource needs apiVersion and kind"
        ));
        e.resource = describe_value(&value);
        return Err(e);
    };
    let resource_name = describe_value(&value);
    // Items re-encoded as text keep field paths in errors (lines would be meaningless).
    let owned;
    let (src_text, lines) = match text {
        Some(t) => (t, true),
        None => {
            owned = serde_yaml_ng::to_string(&value).map_err(|e| ctx.error(e.to_string()))?;
            (owned.as_str(), false)
        }
    };
    let resource = dispatch(&api, &kind, Source::Text(src_text)).map_err(|e| {
        let mut d = match e {
            DispatchError::Unknown(reason) => {
                let mut d = ctx.error(reason);
                d.path = Some("kind".into());
                d
            }
            DispatchError::Fields(e) => ctx.yaml_error(&e, lines),
        };
        d.resource = resource_name.clone();
        d
    })?;
    resource.validate().map_err(|e: PolicyError| {
        let mut d = ctx.error(e.reason);
        d.resource = Some(e.resource);
        d.line = if lines {
            locate(src_text, &e.path).map(to_u32)
        } else {
            None
        };
        d.path = Some(e.path);
        d
    })?;
    Ok(resource)
}

/// Decodes every resource of `text`: YAML documents separated by `---`, a JSON object, a JSON
/// array, concatenated JSON objects, or `List` documents (`items`), with kinds told apart by
/// `apiVersion` and `kind`. Each is validated. All or nothing: the first invalid document
/// makes the whole input fail, with its document number, line (where known), resource, field
/// and reason.
pub fn decode_documents(text: &str) -> Result<Vec<Resource>, DecodeError> {
    let mut out: Vec<Decoded> = Vec::new();
    match json_stream(text) {
        Some(values) => {
            for (i, v) in values.into_iter().enumerate() {
                decode_value_document(i + 1, v, None, &mut out)?;
            }
        }
        None => {
            for chunk in split_documents(text) {
                let ctx = Ctx {
                    document: chunk.number,
                    item: None,
                };
                let value: Value = serde_yaml_ng::from_str(&chunk.text).map_err(|e| {
                    let mut d = ctx.yaml_error(&e, true);
                    if d.line.is_none() {
                        d.line = Some(chunk.first_line);
                    }
                    d
                })?;
                decode_value_document(chunk.number, value, Some(&chunk.text), &mut out)?;
            }
        }
    }
    check_duplicates(&out)?;
    Ok(out.into_iter().map(|d| d.resource).collect())
}

/// A decoded resource and where it came from.
struct Decoded {
    resource: Resource,
    document: usize,
    item: Option<usize>,
}

/// Two or more concatenated JSON values (which YAML cannot read); `None` otherwise.
fn json_stream(text: &str) -> Option<Vec<Value>> {
    if !text.trim_start().starts_with(['{', '[']) {
        return None;
    }
    let values: Result<Vec<serde_json::Value>, _> = serde_json::Deserializer::from_str(text)
        .into_iter()
        .collect();
    match values {
        Ok(v) if v.len() > 1 => v.iter().map(|j| serde_yaml_ng::to_value(j).ok()).collect(),
        _ => None,
    }
}

/// A document that may hold one resource, a sequence of them, or a `List`.
fn decode_value_document(
    number: usize,
    value: Value,
    text: Option<&str>,
    out: &mut Vec<Decoded>,
) -> Result<(), DecodeError> {
    let ctx = Ctx {
        document: number,
        item: None,
    };
    let items = match &value {
        Value::Null => return Ok(()),
        Value::Sequence(seq) => Some(seq.clone()),
        Value::Mapping(_) => {
            let is_list = value
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("List"));
            match (is_list, value.get("items")) {
                (true, Some(Value::Sequence(seq))) => Some(seq.clone()),
                (true, Some(Value::Null)) => Some(Vec::new()),
                (true, _) => return Err(ctx.error("a List needs items: a sequence of resources")),
                _ => None,
            }
        }
        _ => None,
    };
    match items {
        Some(items) => {
            for (i, item) in items.into_iter().enumerate() {
                let ctx = Ctx {
                    document: number,
                    item: Some(i),
                };
                out.push(Decoded {
                    resource: decode_one(&ctx, item, None)?,
                    document: number,
                    item: Some(i),
                });
            }
        }
        None => out.push(Decoded {
            resource: decode_one(&ctx, value, text)?,
            document: number,
            item: None,
        }),
    }
    Ok(())
}

/// The same resource twice in one input is refused: which one would win is a guess.
fn check_duplicates(decoded: &[Decoded]) -> Result<(), DecodeError> {
    let mut seen: BTreeMap<(&str, &str, Option<&str>, &str), &Decoded> = BTreeMap::new();
    for d in decoded {
        let r = &d.resource;
        let key = (r.api_version(), r.kind(), r.namespace(), r.name());
        if let Some(first) = seen.insert(key, d) {
            let at = |d: &Decoded| match d.item {
                Some(i) => format!("document {}, item {i}", d.document),
                None => format!("document {}", d.document),
            };
            return Err(DecodeError {
                document: d.document,
                item: d.item,
                line: None,
                column: None,
                resource: Some(r.describe()),
                path: Some("metadata.name".into()),
                reason: format!("defined twice ({} and {}): keep one", at(first), at(d)),
            });
        }
    }
    Ok(())
}
