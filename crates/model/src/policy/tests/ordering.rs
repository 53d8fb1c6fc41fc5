use super::*;

fn named(name: &str, namespace: Option<&str>, order: Option<f64>) -> NormalizedPolicy {
    NormalizedPolicy {
        name: name.into(),
        namespace: namespace.map(str::to_string),
        order,
        selector: Selector::All,
        types: vec![PolicyType::Ingress],
        ingress: vec![],
        egress: vec![],
    }
}

#[test]
fn policies_sort_by_order_then_name_unordered_last() {
    let mut v = vec![
        named("z-unordered", None, None),
        named("b", Some("default"), Some(100.0)),
        named("knp.default.k", Some("default"), Some(K8S_POLICY_ORDER)),
        named("a-unordered", None, None),
        named("a", Some("default"), Some(100.0)),
        named("first", None, Some(-5.0)),
        named("half", None, Some(1.5)),
        named("a", Some("alpha"), Some(100.0)),
    ];
    sort_policies(&mut v);
    let keys: Vec<String> = v.iter().map(NormalizedPolicy::key).collect();
    assert_eq!(
        keys,
        [
            "first",
            "half",
            "alpha/a",
            "default/a",
            "default/b",
            "default/knp.default.k",
            "a-unordered",
            "z-unordered"
        ]
    );
}

#[test]
fn decoded_policies_sort_in_application_order() {
    let text = "\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: k}
spec: {podSelector: {}}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: late}
spec: {selector: all()}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: early}
spec: {order: 1}
";
    let mut policies: Vec<NormalizedPolicy> = decode_ok(text)
        .iter()
        .filter_map(|r| r.to_policy().ok().flatten())
        .collect();
    sort_policies(&mut policies);
    let keys: Vec<String> = policies.iter().map(NormalizedPolicy::key).collect();
    assert_eq!(keys, ["early", "default/knp.default.k", "default/late"]);
}
