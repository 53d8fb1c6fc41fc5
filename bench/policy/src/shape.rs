//! The cluster the bench loads: which endpoints exist, their labels and nodes, and the
//! policies selecting among them.
//!
//! Endpoint `i` has `app: app-<(i / 20) % 100>` and `role: role-<i % 10>`; node 0 (the
//! bench's) holds the first `ceil((endpoints - 2) / nodes)`, so its endpoints belong to a few
//! apps while every policy still selects endpoints somewhere in the cluster.
//! Policy `k` (order `k`) selects `app == 'app-<k % 100>'` and allows TCP to port 80 from
//! `role == 'role-<k / 100 % 10>'`. The server `c2` (`app-0`) is thus selected by policies 0,
//! 100, … 900 in that order, and the client `c1` (`role-9`) is allowed by the last of them:
//! a new connection from c1 to c2 is judged by all ten.

use std::collections::BTreeMap;
use std::fmt::Write;

pub struct Shape {
    pub endpoints: usize,
    pub policies: usize,
    pub nodes: usize,
}

/// The policy the edits change (it selects endpoints on the bench's node, not c2).
pub const EDITED: usize = 5;

fn labels(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

impl Shape {
    fn per_node(&self) -> usize {
        self.endpoints.saturating_sub(2).div_ceil(self.nodes).max(1)
    }

    /// The node synthetic endpoint `i` is on.
    pub fn node_of(&self, i: usize) -> usize {
        (i / self.per_node()).min(self.nodes - 1)
    }

    pub fn labels(&self, i: usize) -> BTreeMap<String, String> {
        labels(&[
            ("app", format!("app-{}", (i / 20) % 100)),
            ("role", format!("role-{}", i % 10)),
        ])
    }

    pub fn real_labels(&self, name: &str) -> BTreeMap<String, String> {
        match name {
            "c1" => labels(&[("app", "client".into()), ("role", "role-9".into())]),
            _ => labels(&[("app", "app-0".into()), ("role", "role-0".into())]),
        }
    }

    /// One policy's YAML; `port` is 80 except in edits.
    pub fn policy_yaml(k: usize, port: u16) -> String {
        format!(
            "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata:\n  name: pol-{k:04}\n  namespace: default\nspec:\n  order: {k}\n  selector: app == 'app-{}'\n  types: [Ingress]\n  ingress:\n  - action: Allow\n    protocol: TCP\n    source:\n      selector: role == 'role-{}'\n    destination:\n      ports: [{port}]\n",
            k % 100,
            (k / 100) % 10
        )
    }

    /// Every policy, as one multi-document YAML file.
    pub fn policies_yaml(&self) -> String {
        let mut s = String::new();
        for k in 0..self.policies {
            let _ = writeln!(s, "---\n{}", Self::policy_yaml(k, 80));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_holds_a_slice_and_the_last_node_the_rest() {
        let s = Shape {
            endpoints: 10_000,
            policies: 1000,
            nodes: 50,
        };
        assert_eq!(s.node_of(0), 0);
        assert_eq!(s.node_of(199), 0);
        assert_eq!(s.node_of(200), 1);
        assert_eq!(s.node_of(9_997), 49);
        let small = Shape {
            endpoints: 10,
            policies: 1000,
            nodes: 50,
        };
        assert_eq!(small.node_of(7), 7);
    }

    #[test]
    fn the_client_is_allowed_by_the_last_policy_of_the_server() {
        let y = Shape::policy_yaml(900, 80);
        assert!(y.contains("app == 'app-0'"), "{y}");
        assert!(y.contains("role == 'role-9'"), "{y}");
        let docs = weft_model::policy::decode_documents(&Shape::policy_yaml(5, 8080)).unwrap();
        assert_eq!(docs.len(), 1);
    }
}
