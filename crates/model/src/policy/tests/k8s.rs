use super::*;

const K8S: &str = "\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: db
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: db
    matchExpressions:
    - {key: tier, operator: In, values: [a, b]}
    - {key: env, operator: NotIn, values: [test]}
    - {key: owner, operator: Exists}
    - {key: legacy, operator: DoesNotExist}
  policyTypes:
  - Ingress
  - Egress
  ingress:
  - from:
    - ipBlock:
        cidr: 172.17.0.0/16
        except:
        - 172.17.1.0/24
    - namespaceSelector:
        matchLabels:
          project: myproject
    - podSelector:
        matchLabels:
          role: frontend
    - namespaceSelector: {}
      podSelector:
        matchLabels:
          role: monitor
    ports:
    - protocol: TCP
      port: 6379
    - port: 7000
      endPort: 7100
    - protocol: UDP
      port: 53
  egress:
  - to:
    - ipBlock:
        cidr: 10.0.0.0/24
    ports:
    - protocol: TCP
      port: 5978
  - {}
";

#[test]
fn k8s_policy_with_ip_block_except_and_port_ranges() {
    let r = decode_ok(K8S);
    let Resource::K8sNetworkPolicy(k) = &r[0] else {
        panic!("not a k8s policy: {r:?}")
    };
    assert_eq!(r[0].api_version(), "networking.k8s.io/v1");
    assert_eq!(
        r[0].describe(),
        "NetworkPolicy (networking.k8s.io/v1) default/db"
    );
    assert_eq!(k.spec.ingress[0].ports[1].end_port, Some(7100));

    let p = policy_of(K8S);
    assert_eq!(p.name, "knp.default.db");
    assert_eq!(p.namespace.as_deref(), Some("default"));
    assert_eq!(p.order, Some(K8S_POLICY_ORDER));
    assert_eq!(
        p.selector,
        sel(
            "projectcalico.org/namespace == 'default' && role == 'db' && tier in {'a','b'} \
             && env not in {'test'} && has(owner) && !has(legacy)"
        )
    );
    assert_eq!(p.types, vec![PolicyType::Ingress, PolicyType::Egress]);

    // 4 peers x 2 protocol groups (TCP: 6379 and 7000-7100; UDP: 53).
    assert_eq!(p.ingress.len(), 8);
    for r in &p.ingress {
        assert_eq!(r.action, Action::Allow);
        assert!(r.dst.selector.is_none() && r.dst.nets.is_empty());
    }
    let tcp = &p.ingress[0];
    assert_eq!(tcp.protocol, Some(6));
    assert_eq!(tcp.dst.ports, vec![(6379, 6379), (7000, 7100)]);
    assert_eq!(tcp.src.nets, vec![net("172.17.0.0/16")]);
    assert_eq!(tcp.src.not_nets, vec![net("172.17.1.0/24")]);
    assert_eq!(tcp.src.selector, None);
    let udp = &p.ingress[1];
    assert_eq!(
        (udp.protocol, udp.dst.ports.clone()),
        (Some(17), vec![(53, 53)])
    );
    assert_eq!(udp.src.nets, tcp.src.nets);
    assert_eq!(
        p.ingress[2].src.selector,
        Some(sel("pcns.project == 'myproject'"))
    );
    assert_eq!(
        p.ingress[4].src.selector,
        Some(sel(
            "projectcalico.org/namespace == 'default' && role == 'frontend'"
        ))
    );
    // namespaceSelector {} with a podSelector: those pods in every namespace.
    assert_eq!(p.ingress[6].src.selector, Some(sel("role == 'monitor'")));

    assert_eq!(p.egress.len(), 2);
    assert_eq!(p.egress[0].dst.nets, vec![net("10.0.0.0/24")]);
    assert_eq!(p.egress[0].dst.ports, vec![(5978, 5978)]);
    assert_eq!(p.egress[0].protocol, Some(6));
    // `{}` allows everything.
    assert_eq!(p.egress[1], NRule::new(Action::Allow));
}

fn knp(spec: &str) -> String {
    format!("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: k\nspec:\n{spec}")
}

#[test]
fn k8s_defaults_and_ignored_directions() {
    // Default deny: all pods of the namespace, Ingress, no rule.
    let p = policy_of(&knp("  podSelector: {}\n"));
    assert_eq!(p.selector, sel("projectcalico.org/namespace == 'default'"));
    assert_eq!(p.types, vec![PolicyType::Ingress]);
    assert!(p.ingress.is_empty() && p.egress.is_empty());
    // Egress rules make it govern egress too; ingress is always governed by default.
    let p = policy_of(&knp("  podSelector: {}\n  egress:\n  - {}\n"));
    assert_eq!(p.types, vec![PolicyType::Ingress, PolicyType::Egress]);
    // Rules of a direction not in policyTypes are ignored.
    let p = policy_of(&knp(
        "  podSelector: {}\n  policyTypes: [Egress]\n  ingress:\n  - {}\n",
    ));
    assert_eq!(p.types, vec![PolicyType::Egress]);
    assert!(p.ingress.is_empty());
    // A port with only a protocol: every port of it.
    let p = policy_of(&knp(
        "  ingress:\n  - ports:\n    - protocol: UDP\n    - protocol: UDP\n      port: 53\n",
    ));
    assert_eq!(p.ingress.len(), 1);
    assert_eq!(
        (p.ingress[0].protocol, p.ingress[0].dst.ports.clone()),
        (Some(17), vec![])
    );
}

#[test]
fn invalid_k8s_fields_are_refused_with_path() {
    let rule = |r: &str| knp(&format!("  podSelector: {{}}\n  ingress:\n  - {r}\n"));
    let cases: &[(String, &str, &str)] = &[
        (rule("ports: [{port: 80, endPort: 79}]"), "spec.ingress[0].ports[0].endPort", "below port 80"),
        (rule("ports: [{endPort: 79}]"), "spec.ingress[0].ports[0].endPort", "needs port"),
        (rule("ports: [{protocol: ICMP}]"), "spec.ingress[0].ports[0].protocol", "TCP, UDP or SCTP"),
        (rule("ports: [{port: http}]"), "spec.ingress[0].ports[0].port", "named port \"http\""),
        (rule("from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}]"), "spec.ingress[0].from[0].ipBlock.except[0]", "not inside 10.0.0.0/16"),
        (rule("from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.0.0/16]}}]"), "spec.ingress[0].from[0].ipBlock.except[0]", "not inside"),
        (rule("from: [{ipBlock: {cidr: 10.0.0.0/16}, podSelector: {}}]"), "spec.ingress[0].from[0]", "cannot be combined"),
        (rule("from: [{}]"), "spec.ingress[0].from[0]", "needs podSelector"),
        (rule("from: [{podSelector: {matchExpressions: [{key: a, operator: In}]}}]"), "spec.ingress[0].from[0].podSelector.matchExpressions[0].values", "at least one value"),
        (rule("from: [{podSelector: {matchExpressions: [{key: a, operator: Exists, values: [x]}]}}]"), "spec.ingress[0].from[0].podSelector.matchExpressions[0].values", "takes no values"),
        (rule("from: [{podSelector: {matchExpressions: [{key: a, operator: Equals}]}}]"), "spec.ingress[0].from[0].podSelector.matchExpressions[0].operator", "unknown variant `Equals`"),
        (rule("from: [{podSelector: {matchLabels: {app: 'a b'}}}]"), "spec.ingress[0].from[0].podSelector.matchLabels.app", "label value"),
        (knp("  policyTypes: [Ingress, Ingress]\n"), "spec.policyTypes[1]", "listed twice"),
        (knp("  podSelector: {matchLabel: {a: b}}\n"), "spec.podSelector", "unknown field `matchLabel`"),
    ];
    for (text, path, reason) in cases {
        let e = decode_err(text);
        assert_eq!(e.path.as_deref(), Some(*path), "{text}\n{e}");
        assert!(e.reason.contains(reason), "{text}\n{e}");
        assert!(e.line.is_some(), "{e}");
    }
}
