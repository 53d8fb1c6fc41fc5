use super::*;

const MIXED: &str = "\
# policies for the demo
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: a
spec:
  selector: app == 'a'
---
# nothing but a comment here
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: a
  namespace: team-1
spec:
  podSelector: {}
...
--- # a comment on the marker line
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: g
spec:
  selector: all()
---
";

#[test]
fn multi_document_yaml_with_mixed_kinds() {
    let r = decode_ok(MIXED);
    let kinds: Vec<String> = r.iter().map(Resource::describe).collect();
    assert_eq!(
        kinds,
        [
            "NetworkPolicy default/a",
            "NetworkPolicy (networking.k8s.io/v1) team-1/a",
            "GlobalNetworkPolicy g"
        ]
    );
    assert!(decode_ok("").is_empty());
    assert!(decode_ok("# only a comment\n---\n").is_empty());
}

#[test]
fn all_or_nothing_with_document_and_line() {
    let bad = MIXED.replace("podSelector: {}", "podSelector: {matchLabels: {a: 'b c'}}");
    let e = decode_err(&bad);
    assert_eq!(e.document, 2, "{e}");
    assert_eq!(
        e.resource.as_deref(),
        Some("NetworkPolicy (networking.k8s.io/v1) team-1/a")
    );
    assert_eq!(e.path.as_deref(), Some("spec.podSelector.matchLabels.a"));
    assert_eq!(e.line, Some(18), "the line of podSelector: {e}");

    // A YAML syntax error in the third document reports the line in the whole input.
    let broken = MIXED.replace("  selector: all()", "  selector: all()\n bad: [");
    let e = decode_err(&broken);
    assert_eq!(e.document, 3, "{e}");
    assert!(e.line.is_some_and(|l| l >= 25), "{e}");
    assert!(e.to_string().starts_with("document 3 (line "), "{e}");
}

#[test]
fn json_inputs() {
    let one = r#"{"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
        "metadata": {"name": "j"}, "spec": {"selector": "app == 'x'"}}"#;
    assert_eq!(decode_ok(one)[0].name(), "j");
    let tabs = one.replace("  ", "\t");
    assert_eq!(decode_ok(&tabs)[0].name(), "j");
    let two = format!("{one}\n{}", one.replace("\"j\"", "\"k\""));
    let names: Vec<String> = decode_ok(&two)
        .iter()
        .map(|r| r.name().to_string())
        .collect();
    assert_eq!(names, ["j", "k"]);
    let array = format!("[{one}, {}]", one.replace("\"j\"", "\"k\""));
    assert_eq!(decode_ok(&array).len(), 2);
    // Errors in JSON still carry the field path.
    let bad = one.replace("app == 'x'", "app ==");
    let e = decode_err(&bad);
    assert_eq!(e.path.as_deref(), Some("spec.selector"), "{e}");
    let bad_stream = format!(
        "{one}\n{}",
        one.replace("\"j\"", "\"k\"")
            .replace("\"spec\"", "\"spek\"")
    );
    let e = decode_err(&bad_stream);
    assert_eq!((e.document, e.line), (2, None), "{e}");
    assert!(e.reason.contains("missing field `spec`"), "{e}");
}

#[test]
fn list_documents() {
    let list = "\
apiVersion: v1
kind: List
items:
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: one}
  spec: {podSelector: {}}
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: two}
  spec:
    podSelector: {}
    ingress:
    - ports: [{port: 0}]
";
    let e = decode_err(list);
    assert_eq!((e.document, e.item), (1, Some(1)), "{e}");
    assert_eq!(
        e.path.as_deref(),
        Some("spec.ingress[0].ports[0].port"),
        "{e}"
    );
    assert!(
        e.to_string().starts_with(
            "document 1, item 1: NetworkPolicy two: spec.ingress[0].ports[0].port: port 0"
        ),
        "{e}"
    );
    let good = list.replace("port: 0", "port: 80");
    assert_eq!(decode_ok(&good).len(), 2);
    let e = decode_err("apiVersion: v1\nkind: List\nitems: 3\n");
    assert!(e.reason.contains("needs items"), "{e}");
}

#[test]
fn unknown_kinds_and_missing_fields() {
    let e = decode_err("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n");
    assert_eq!(e.path.as_deref(), Some("kind"));
    assert!(e.reason.contains("unknown kind \"Pod\""), "{e}");
    assert!(
        e.reason
            .contains("projectcalico.org/v3 GlobalNetworkPolicy"),
        "{e}"
    );
    let e = decode_err(
        "apiVersion: projectcalico.org/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {}\n",
    );
    assert!(
        e.reason
            .contains("use apiVersion projectcalico.org/v3 or networking.k8s.io/v1"),
        "{e}"
    );
    let e = decode_err("kind: NetworkPolicy\nmetadata: {name: p}\n");
    assert!(e.reason.contains("no apiVersion"), "{e}");
    assert_eq!(e.resource.as_deref(), Some("NetworkPolicy p"));
    let e = decode_err("just a string\n");
    assert!(e.reason.contains("must be a mapping"), "{e}");
}

#[test]
fn the_same_resource_twice_is_refused() {
    let doc =
        "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {}\n";
    let e = decode_err(&format!("{doc}---\n{doc}"));
    assert_eq!(e.document, 2);
    assert!(
        e.reason
            .contains("defined twice (document 1 and document 2)"),
        "{e}"
    );
    // Same name in another namespace or of another kind is fine.
    let other_ns = doc.replace("{name: p}", "{name: p, namespace: b}");
    assert_eq!(decode_ok(&format!("{doc}---\n{other_ns}")).len(), 2);
}

#[test]
fn error_display_is_one_readable_message() {
    let text = "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata:\n  name: p\nspec:\n  selector: app = 'x'\n";
    let e = decode_err(text);
    assert_eq!(
        e.to_string(),
        "document 1 (line 6): NetworkPolicy default/p: spec.selector: invalid selector at position 4: \
         use `==` to compare (a single `=` is not an operator)\n  app = 'x'\n      ^"
    );
}

#[test]
fn stored_json_decodes_as_the_general_path_does() {
    let text = "apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: a, namespace: ns1}
spec:
  order: 10
  selector: app == 'web'
  ingress:
  - action: Allow
    protocol: TCP
    source: {selector: role == 'x', notNets: [10.0.0.0/8]}
    destination: {ports: [80, '8000:8080']}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: g}
spec:
  selector: all()
  types: [Egress]
  egress: [{action: Deny, protocol: UDP}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: k}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{ipBlock: {cidr: 10.1.0.0/16, except: [10.1.2.0/24]}}], ports: [{port: 5432}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  sessionAffinity: ClientIP
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
";
    let docs = decode_documents(text).unwrap();
    assert_eq!(docs.len(), 4);
    for r in docs {
        let stored = serde_json::to_vec(&r).unwrap();
        let general: Resource = serde_json::from_slice(&stored).unwrap();
        let fast = Resource::from_stored_json(&stored).unwrap();
        assert_eq!(fast, general);
        assert_eq!(fast, r);
    }
    let err = Resource::from_stored_json(br#"{"apiVersion":"v9","kind":"Thing"}"#).unwrap_err();
    assert!(err.contains("unknown kind"), "{err}");
}
