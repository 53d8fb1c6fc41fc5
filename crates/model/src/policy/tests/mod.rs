//! Tests of the policy shapes, their normalization and decoding.

mod calico;
mod decode;
mod k8s;
mod ordering;

use std::collections::BTreeMap;

use super::*;
use crate::selector::Selector;

/// Decodes input that must be valid.
pub(super) fn decode_ok(text: &str) -> Vec<Resource> {
    match decode_documents(text) {
        Ok(r) => r,
        Err(e) => panic!("should decode:\n{e}"),
    }
}

/// Decodes input that must be refused.
pub(super) fn decode_err(text: &str) -> DecodeError {
    match decode_documents(text) {
        Ok(r) => panic!("should be refused, got {r:?}"),
        Err(e) => e,
    }
}

/// The normalized form of the only resource of `text`.
pub(super) fn policy_of(text: &str) -> NormalizedPolicy {
    let r = decode_ok(text);
    assert_eq!(r.len(), 1, "{r:?}");
    match r[0].to_policy() {
        Ok(Some(p)) => p,
        other => panic!("no policy: {other:?}"),
    }
}

pub(super) fn sel(s: &str) -> Selector {
    match Selector::parse(s) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

pub(super) fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn net(s: &str) -> ipnet::Ipv4Net {
    match s.parse() {
        Ok(n) => n,
        Err(e) => panic!("{s}: {e}"),
    }
}
