//! Best-effort search for the line of a field (`spec.ingress[0].source.selector`) in a
//! block-style YAML document, so that errors found after decoding can still point at a line.
//! Flow style (and JSON) is not followed: the search then stops at the deepest field found.

#[derive(Debug, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn segments(path: &str) -> Option<Vec<Seg>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Seg::Key(key.to_string()));
        }
        while let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            out.push(Seg::Index(r[..end].parse().ok()?));
            rest = &r[end + 1..];
        }
    }
    Some(out)
}

#[derive(Debug, PartialEq)]
enum Tok {
    Dash,
    Key(String),
}

/// The sequence dashes and the mapping key that start a line, with their columns.
fn tokens(line: &str) -> Vec<(usize, Tok)> {
    let mut out = Vec::new();
    let chars: Vec<char> = line.chars().collect();
    let mut i = chars.iter().take_while(|c| **c == ' ').count();
    loop {
        match chars.get(i) {
            None | Some('#') => return out,
            Some('-') if matches!(chars.get(i + 1), None | Some(' ')) => {
                out.push((i, Tok::Dash));
                i += 1;
                while chars.get(i) == Some(&' ') {
                    i += 1;
                }
            }
            Some(q @ ('"' | '\'')) => {
                let close = chars[i + 1..].iter().position(|c| c == q);
                if let Some(len) = close {
                    let end = i + 1 + len;
                    if chars.get(end + 1) == Some(&':') {
                        out.push((i, Tok::Key(chars[i + 1..end].iter().collect())));
                    }
                }
                return out;
            }
            Some(_) => {
                let rest: String = chars[i..].iter().collect();
                let colon = rest
                    .char_indices()
                    .find(|(j, c)| {
                        *c == ':' && matches!(rest[j + 1..].chars().next(), None | Some(' '))
                    })
                    .map(|(j, _)| j);
                if let Some(j) = colon {
                    let key = rest[..j].trim_end();
                    if !key.starts_with(['{', '[']) {
                        out.push((i, Tok::Key(key.to_string())));
                    }
                }
                return out;
            }
        }
    }
}

/// The 1-based line of `path` in `text`, or of the deepest part of it that could be found;
/// `None` if not even the first part was found.
pub(crate) fn locate(text: &str, path: &str) -> Option<usize> {
    let segs = segments(path)?;
    let lines: Vec<Vec<(usize, Tok)>> = text.lines().map(tokens).collect();
    // The node being searched: it starts on `line`; its children sit right of `col`.
    let mut line = 0usize;
    let mut col: isize = -1;
    let mut at_start = true;
    let mut found = None;
    for seg in &segs {
        let hit = match seg {
            Seg::Key(k) => find_key(&lines, line, col, at_start, k),
            Seg::Index(n) => find_item(&lines, line, col, *n),
        };
        match hit {
            Some((l, c)) => {
                line = l;
                col = c as isize;
                at_start = matches!(seg, Seg::Index(_));
                found = Some(l + 1);
            }
            None => break,
        }
    }
    found
}

/// A key among the children of the node at (`start`, `col`). With `same_line` the node's
/// first child may be on its own line (after a `- `).
fn find_key(
    lines: &[Vec<(usize, Tok)>],
    start: usize,
    col: isize,
    same_line: bool,
    key: &str,
) -> Option<(usize, usize)> {
    let mut child_col: Option<usize> = None;
    let first = if same_line { start } else { start + 1 };
    for (l, toks) in lines.iter().enumerate().skip(first) {
        let Some(&(lead, _)) = toks.first() else {
            continue;
        };
        let on_start_line = same_line && l == start;
        if !on_start_line && lead as isize <= col {
            return None;
        }
        for (c, t) in toks {
            if (*c as isize) <= col {
                continue;
            }
            let cc = *child_col.get_or_insert(*c);
            if *c == cc {
                if let Tok::Key(k) = t {
                    if k == key {
                        return Some((l, *c));
                    }
                }
            }
            break;
        }
    }
    None
}

/// Item `n` of the sequence that is the value of the key at (`start`, `col`).
fn find_item(
    lines: &[Vec<(usize, Tok)>],
    start: usize,
    col: isize,
    n: usize,
) -> Option<(usize, usize)> {
    let mut dash_col: Option<usize> = None;
    let mut seen = 0;
    for (l, toks) in lines.iter().enumerate().skip(start + 1) {
        let Some((lead, tok)) = toks.first() else {
            continue;
        };
        // Sequences may sit at the key's own column ("ingress:\n- action: Allow").
        if (*lead as isize) < col || ((*lead as isize) == col && *tok != Tok::Dash) {
            return None;
        }
        let dc = *dash_col.get_or_insert(*lead);
        if *lead < dc {
            return None;
        }
        if *lead == dc {
            if *tok != Tok::Dash {
                return None;
            }
            if seen == n {
                return Some((l, dc));
            }
            seen += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: x
spec:
  selector: app == 'a'
  ingress:
  - action: Allow
    source:
      selector: a == 'b'
  - action: Deny
    protocol: TCP
    source:
      nets: [10.0.0.0/8]
      selector: bad ==
    destination:
      ports:
        - 80
        - 90
  egress:
    - action: Allow
";

    #[test]
    fn finds_nested_fields() {
        assert_eq!(locate(DOC, "metadata.name"), Some(4));
        assert_eq!(locate(DOC, "spec.selector"), Some(6));
        assert_eq!(locate(DOC, "spec.ingress[0]"), Some(8));
        assert_eq!(locate(DOC, "spec.ingress[0].source.selector"), Some(10));
        assert_eq!(locate(DOC, "spec.ingress[1].source.selector"), Some(15));
        assert_eq!(
            locate(DOC, "spec.ingress[1].destination.ports[1]"),
            Some(19)
        );
        assert_eq!(locate(DOC, "spec.egress[0].action"), Some(21));
    }

    #[test]
    fn falls_back_to_the_deepest_found() {
        // Flow sequences are not followed: the line of `nets:` is the best answer.
        assert_eq!(locate(DOC, "spec.ingress[1].source.nets[0]"), Some(14));
        assert_eq!(locate(DOC, "spec.ingress[2].action"), Some(7));
        assert_eq!(locate(DOC, "nothing.here"), None);
        assert_eq!(locate("{\"spec\": {}}", "spec.selector"), None);
    }

    #[test]
    fn does_not_match_deeper_keys_of_the_same_name() {
        let doc = "spec:\n  ingress:\n  - source:\n      selector: x\n  selector: y\n";
        assert_eq!(locate(doc, "spec.selector"), Some(5));
    }
}
