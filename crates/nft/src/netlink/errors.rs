//! Turns a kernel refusal of one message of a batch into an [`Error`] naming
//! the object (chain, set, rule and, when the kernel says which attribute was
//! at fault, the expression of the rule) and what to do about it.

use std::io;

use super::attr::Writer;
use super::encode::{self, rule_name, Batch, Obj};
use super::socket::NlError;
use crate::model::Table;
use crate::Error;

/// Builds the error for a kernel refusal.
pub(crate) fn kernel_error(
    op: &str,
    object: String,
    e: &NlError,
    detail: Option<String>,
    hint: Option<String>,
) -> Error {
    let mut d: Vec<String> = Vec::new();
    if let Some(m) = &e.msg {
        d.push(format!("kernel: {m}"));
    }
    d.extend(detail);
    Error::Kernel {
        op: op.to_string(),
        object,
        source: io::Error::from_raw_os_error(e.errno),
        detail: (!d.is_empty()).then(|| d.join("; ")),
        hint,
    }
}

fn hint(errno: i32, obj: Obj) -> Option<String> {
    let rule = matches!(obj, Obj::Rule { .. } | Obj::AnonSet { .. });
    Some(
        match errno {
            libc::ENOENT if rule => {
                "a chain it jumps to or a set it uses is not in the table: add it or fix the name"
            }
            libc::ENOENT => "the object it refers to does not exist",
            libc::EOPNOTSUPP if rule => {
                "an expression is not allowed where this rule runs (NAT only in nat chains, reject only on input/forward/output): move the rule"
            }
            libc::EOPNOTSUPP => {
                "this kernel does not support it (a hook/type combination or a feature)"
            }
            libc::ELOOP => "chains jump to each other in a loop: break the loop",
            libc::EEXIST => "it is defined twice: remove the duplicate",
            libc::EINVAL => "the kernel rejected its encoding: check the values and types",
            libc::EPERM => "needs CAP_NET_ADMIN in the network namespace: run as root",
            libc::EBUSY => "it is still used by a rule, a map or a chain: remove that first",
            _ => return None,
        }
        .to_string(),
    )
}

fn name_at<'a>(mut names: impl Iterator<Item = &'a String>, i: usize) -> String {
    names.nth(i).cloned().unwrap_or_else(|| format!("#{i}"))
}

fn set_name(t: &Table, i: usize) -> String {
    name_at(
        t.sets
            .iter()
            .map(|s| &s.name)
            .chain(t.maps.iter().map(|m| &m.name)),
        i,
    )
}

fn chain_name(t: &Table, i: usize) -> String {
    name_at(t.chains.iter().map(|c| &c.name), i)
}

fn rule_text(t: &Table, chain: usize, rule: usize) -> String {
    t.chains
        .get(chain)
        .and_then(|c| c.rules.get(rule))
        .map(|r| r.to_string())
        .unwrap_or_default()
}

/// Names the object a kernel error refers to. `new` is the table being
/// applied, `old` the one an incremental update starts from.
pub(crate) fn describe(
    batch: &Batch,
    new: Option<&Table>,
    old: Option<&Table>,
    what: &str,
    e: &NlError,
    more: usize,
) -> Error {
    let obj = batch.obj(e.seq).unwrap_or(Obj::Begin);
    let mut detail = None;
    let (op, object): (&str, String) = match (obj, new, old) {
        (Obj::Begin | Obj::End, _, _) => ("commit", what.to_string()),
        (Obj::Table, _, _) => ("create", what.to_string()),
        (Obj::DelTable, _, _) => ("delete", what.to_string()),
        (Obj::Chain(i), Some(t), _) => ("add", format!("chain {:?} to {what}", chain_name(t, i))),
        (Obj::Set(i), Some(t), _) => ("add", format!("set {:?} to {what}", set_name(t, i))),
        (Obj::Elements(i), Some(t), _) => (
            "add elements to",
            format!("set {:?} of {what}", set_name(t, i)),
        ),
        (Obj::DelElements(i), Some(t), _) => (
            "delete elements of",
            format!("set {:?} of {what}", set_name(t, i)),
        ),
        (Obj::AnonSet { chain, rule }, Some(t), _) => (
            "add anonymous set of",
            format!(
                "{} in {what} (`{}`)",
                rule_name(t, chain, rule),
                rule_text(t, chain, rule)
            ),
        ),
        (Obj::Rule { chain, rule }, Some(t), _) => {
            detail = e
                .offset
                .and_then(|off| failing_expr(t, chain, rule, off as usize, batch.fixed_anon_names));
            (
                "add",
                format!(
                    "{} in {what} (`{}`)",
                    rule_name(t, chain, rule),
                    rule_text(t, chain, rule)
                ),
            )
        }
        (Obj::Flush { chain, old: false }, Some(t), _)
        | (Obj::Flush { chain, old: true }, _, Some(t)) => (
            "delete the rules of",
            format!("chain {:?} of {what}", chain_name(t, chain)),
        ),
        (Obj::DelChain(i), _, Some(t)) => {
            ("delete", format!("chain {:?} of {what}", chain_name(t, i)))
        }
        (Obj::DelSet(i), _, Some(t)) => ("delete", format!("set {:?} of {what}", set_name(t, i))),
        _ => ("apply", what.to_string()),
    };
    let mut hint = hint(e.errno, obj);
    if more > 0 {
        let m = format!("{more} more message(s) of the batch failed as a consequence");
        hint = Some(match hint {
            Some(h) => format!("{h} ({m})"),
            None => m,
        });
    }
    kernel_error(op, object, e, detail, hint)
}

/// The model expression at `offset` of a rule's NEWRULE message (the rule is
/// encoded again the same way to find where each expression lies).
fn failing_expr(
    t: &Table,
    chain: usize,
    rule: usize,
    offset: usize,
    fixed: bool,
) -> Option<String> {
    let c = t.chains.get(chain)?;
    let r = c.rules.get(rule)?;
    let compiled = crate::compile::compile_rule(t, r).ok()?;
    let mut w = Writer::default();
    w.begin(0, 0, 0, 0, 0);
    let ids: Vec<(String, u32)> = compiled
        .anon
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let id = i as u32 + 1;
            (encode::anon_name(&s.name, fixed.then_some(id)), id)
        })
        .collect();
    let spans = super::exprs::put_rule(
        &mut w,
        &t.name,
        &c.name,
        &compiled,
        &ids,
        r.comment.as_deref(),
    );
    let i = spans.iter().position(|(s, e)| (*s..*e).contains(&offset))?;
    let expr = r.exprs.get(*compiled.origin.get(i)?)?;
    Some(format!(
        "at `{expr}` (kernel expression {})",
        compiled.exprs.get(i)?.name()
    ))
}
