//! The selector language (Calico): which endpoints a policy or rule applies to.
//!
//! ```text
//! all()                         every endpoint
//! has(k)        !has(k)         the label k is present / absent
//! k == 'v'      k != 'v'        equal / not equal (absent counts as not equal)
//! k in {'a','b'}  k not in {…}  one of / none of (absent counts as none of)
//! k contains 's'  k starts with 's'  k ends with 's'
//! !e   e && e   e || e   ( e )  precedence: ! binds tighter than &&, && tighter than ||
//! ```
//!
//! Values are quoted with `'` or `"` (no escapes). Label keys are made of ASCII letters, digits
//! and `_ . / -`, so DNS-prefixed keys such as `projectcalico.org/namespace` work. The empty
//! selector means `all()`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod parse;
#[cfg(test)]
mod tests;

pub use parse::SelectorError;

/// A parsed selector.
///
/// The parser produces a canonical tree: `And`/`Or` hold at least two children and never a child
/// of their own kind (nested ones are flattened). [`Display`](fmt::Display) prints a canonical
/// text that parses back to the same tree.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Selector {
    /// `all()`: matches every label set.
    #[default]
    All,
    /// `has(key)`.
    Has(String),
    /// `key == 'value'`.
    Eq(String, String),
    /// `key != 'value'`; also true when the key is absent.
    Ne(String, String),
    /// `key in {...}`; false when the key is absent.
    In(String, BTreeSet<String>),
    /// `key not in {...}`; true when the key is absent.
    NotIn(String, BTreeSet<String>),
    /// `key contains 'substring'`.
    Contains(String, String),
    /// `key starts with 'prefix'`.
    StartsWith(String, String),
    /// `key ends with 'suffix'`.
    EndsWith(String, String),
    /// `!expr`.
    Not(Box<Selector>),
    /// `a && b && ...`: all must match (an empty list matches everything).
    And(Vec<Selector>),
    /// `a || b || ...`: one must match (an empty list matches nothing).
    Or(Vec<Selector>),
}

impl Selector {
    /// Parses a selector; the empty (or all-blank) text is `all()`.
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        parse::parse(text)
    }

    /// Whether an endpoint carrying `labels` is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let get = |k: &String| labels.get(k);
        match self {
            Selector::All => true,
            Selector::Has(k) => labels.contains_key(k),
            Selector::Eq(k, v) => get(k) == Some(v),
            Selector::Ne(k, v) => get(k) != Some(v),
            Selector::In(k, set) => get(k).is_some_and(|v| set.contains(v)),
            Selector::NotIn(k, set) => !get(k).is_some_and(|v| set.contains(v)),
            Selector::Contains(k, s) => get(k).is_some_and(|v| v.contains(s.as_str())),
            Selector::StartsWith(k, s) => get(k).is_some_and(|v| v.starts_with(s.as_str())),
            Selector::EndsWith(k, s) => get(k).is_some_and(|v| v.ends_with(s.as_str())),
            Selector::Not(e) => !e.matches(labels),
            Selector::And(es) => es.iter().all(|e| e.matches(labels)),
            Selector::Or(es) => es.iter().any(|e| e.matches(labels)),
        }
    }

    /// `self && other`, flattened; `all()` on either side drops out.
    pub fn and(self, other: Selector) -> Selector {
        Selector::all_of([self, other])
    }

    /// `self || other`, flattened.
    pub fn or(self, other: Selector) -> Selector {
        Selector::any_of([self, other])
    }

    /// The conjunction of `parts`, flattened, without `all()` terms; `all()` when nothing is left.
    pub fn all_of(parts: impl IntoIterator<Item = Selector>) -> Selector {
        let mut out = Vec::new();
        for p in parts {
            match p {
                Selector::All => {}
                Selector::And(inner) => out.extend(inner.into_iter().filter(|e| !e.is_all())),
                other => out.push(other),
            }
        }
        match out.len() {
            0 => Selector::All,
            1 => out.pop().unwrap_or(Selector::All),
            _ => Selector::And(out),
        }
    }

    /// The disjunction of `parts`, flattened; `all()` if any part is `all()`.
    pub fn any_of(parts: impl IntoIterator<Item = Selector>) -> Selector {
        let mut out = Vec::new();
        for p in parts {
            match p {
                Selector::All => return Selector::All,
                Selector::Or(inner) => out.extend(inner),
                other => out.push(other),
            }
        }
        match out.len() {
            1 => out.pop().unwrap_or(Selector::All),
            _ => Selector::Or(out),
        }
    }

    /// Whether this is `all()`.
    pub fn is_all(&self) -> bool {
        matches!(self, Selector::All)
    }

    /// The same selector with every label key rewritten by `f` (for example to evaluate a
    /// namespace selector against the `pcns.`-prefixed namespace labels of an endpoint).
    pub fn map_keys(&self, f: &impl Fn(&str) -> String) -> Selector {
        match self {
            Selector::All => Selector::All,
            Selector::Has(k) => Selector::Has(f(k)),
            Selector::Eq(k, v) => Selector::Eq(f(k), v.clone()),
            Selector::Ne(k, v) => Selector::Ne(f(k), v.clone()),
            Selector::In(k, s) => Selector::In(f(k), s.clone()),
            Selector::NotIn(k, s) => Selector::NotIn(f(k), s.clone()),
            Selector::Contains(k, v) => Selector::Contains(f(k), v.clone()),
            Selector::StartsWith(k, v) => Selector::StartsWith(f(k), v.clone()),
            Selector::EndsWith(k, v) => Selector::EndsWith(f(k), v.clone()),
            Selector::Not(e) => Selector::Not(Box::new(e.map_keys(f))),
            Selector::And(es) => Selector::And(es.iter().map(|e| e.map_keys(f)).collect()),
            Selector::Or(es) => Selector::Or(es.iter().map(|e| e.map_keys(f)).collect()),
        }
    }
}

impl std::str::FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

/// Writes a value quoted: with `"` unless it contains one, then with `'`.
fn write_quoted(f: &mut fmt::Formatter<'_>, v: &str) -> fmt::Result {
    if v.contains('"') {
        write!(f, "'{v}'")
    } else {
        write!(f, "\"{v}\"")
    }
}

fn write_set(f: &mut fmt::Formatter<'_>, set: &BTreeSet<String>) -> fmt::Result {
    f.write_str("{")?;
    for (i, v) in set.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write_quoted(f, v)?;
    }
    f.write_str("}")
}

/// Writes `e`, in parentheses when it is a binary expression (`wrap_and` decides for `&&`).
fn write_operand(f: &mut fmt::Formatter<'_>, e: &Selector, wrap_and: bool) -> fmt::Result {
    let wrap = match e {
        Selector::Or(v) => v.len() != 1,
        Selector::And(v) => wrap_and && v.len() != 1,
        _ => false,
    };
    if wrap {
        write!(f, "({e})")
    } else {
        write!(f, "{e}")
    }
}

impl fmt::Display for Selector {
    /// The canonical text: double quotes, sets sorted, `&&`/`||` with single spaces, and
    /// parentheses only where precedence needs them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::All => f.write_str("all()"),
            Selector::Has(k) => write!(f, "has({k})"),
            Selector::Eq(k, v) => {
                write!(f, "{k} == ")?;
                write_quoted(f, v)
            }
            Selector::Ne(k, v) => {
                write!(f, "{k} != ")?;
                write_quoted(f, v)
            }
            Selector::In(k, s) => {
                write!(f, "{k} in ")?;
                write_set(f, s)
            }
            Selector::NotIn(k, s) => {
                write!(f, "{k} not in ")?;
                write_set(f, s)
            }
            Selector::Contains(k, v) => {
                write!(f, "{k} contains ")?;
                write_quoted(f, v)
            }
            Selector::StartsWith(k, v) => {
                write!(f, "{k} starts with ")?;
                write_quoted(f, v)
            }
            Selector::EndsWith(k, v) => {
                write!(f, "{k} ends with ")?;
                write_quoted(f, v)
            }
            Selector::Not(e) => {
                f.write_str("!")?;
                write_operand(f, e, true)
            }
            Selector::And(es) => match es.as_slice() {
                [] => f.write_str("all()"),
                _ => {
                    for (i, e) in es.iter().enumerate() {
                        if i > 0 {
                            f.write_str(" && ")?;
                        }
                        write_operand(f, e, true)?;
                    }
                    Ok(())
                }
            },
            Selector::Or(es) => match es.as_slice() {
                [] => f.write_str("!all()"),
                _ => {
                    for (i, e) in es.iter().enumerate() {
                        if i > 0 {
                            f.write_str(" || ")?;
                        }
                        write_operand(f, e, false)?;
                    }
                    Ok(())
                }
            },
        }
    }
}

impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Selector::parse(&text).map_err(serde::de::Error::custom)
    }
}
