use super::*;

/// The policy of seed 001, as the document shows it (its line breaks restored: the seed's
/// text lost them, e.g. `metadata:name: allow-tcp-80namespace: default`).
const SEED_001: &str = "\
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: allow-tcp-80
  namespace: default
spec:
  selector: app == 'nginx'
  ingress:
  - action: Allow
    protocol: TCP
    source:
      selector: role == 'pod1'
    destination:
      ports:
      - 80
";

#[test]
fn seed_001_policy_applies_as_written() {
    let r = decode_ok(SEED_001);
    assert_eq!(r.len(), 1);
    let Resource::NetworkPolicy(np) = &r[0] else {
        panic!("not a Calico NetworkPolicy: {r:?}")
    };
    assert_eq!(r[0].describe(), "NetworkPolicy default/allow-tcp-80");
    assert_eq!(np.spec.selector, "app == 'nginx'");
    assert_eq!(np.spec.ingress[0].protocol, Some(Protocol::TCP));
    assert_eq!(
        np.spec.ingress[0].destination.ports,
        vec![PortRange::single(80)]
    );

    let p = policy_of(SEED_001);
    assert_eq!(p.name, "allow-tcp-80");
    assert_eq!(p.key(), "default/allow-tcp-80");
    assert_eq!(p.order, None);
    assert_eq!(
        p.selector,
        sel("projectcalico.org/namespace == 'default' && app == 'nginx'")
    );
    assert_eq!(p.types, vec![PolicyType::Ingress]);
    assert!(p.egress.is_empty());
    let mut want = NRule::new(Action::Allow);
    want.protocol = Some(6);
    want.src.selector = Some(sel(
        "projectcalico.org/namespace == 'default' && role == 'pod1'",
    ));
    want.dst.ports = vec![(80, 80)];
    assert_eq!(p.ingress, vec![want]);

    // What the scenario needs: nginx pods are selected, pod1 is a permitted source.
    let nginx = endpoint_labels("default", &labels(&[("app", "nginx")]));
    let pod1 = endpoint_labels("default", &labels(&[("role", "pod1")]));
    assert!(p.selector.matches(&nginx));
    assert!(!p.selector.matches(&pod1));
    let src = p.ingress[0].src.selector.as_ref().map(|s| s.matches(&pod1));
    assert_eq!(src, Some(true));
    let other_ns = endpoint_labels("other", &labels(&[("app", "nginx")]));
    assert!(!p.selector.matches(&other_ns));

    // Without metadata.namespace (as the issue quotes it) it lands in "default".
    let no_ns = SEED_001.replace("  namespace: default\n", "");
    assert_eq!(policy_of(&no_ns), p);
}

const GNP_ALL_FIELDS: &str = r#"
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: everything
  namespace: ignored-for-global
  labels:
    team: net
  annotations:
    note: "every field"
spec:
  tier: default
  order: 10.5
  selector: role in {'db', 'cache'} && !has(skip)
  namespaceSelector: env == 'prod'
  types: [Egress, Ingress]
  doNotTrack: false
  preDNAT: false
  applyOnForward: true
  ingress:
  - action: Allow
    ipVersion: 4
    protocol: tcp
    notProtocol: UDP
    source:
      nets: [10.0.0.0/8, 192.168.1.7]
      notNets: ["10.1.2.3/16"]
      selector: app starts with 'web'
      notSelector: app ends with '-test'
      namespaceSelector: all()
      ports: [1024, "2000:3000"]
      notPorts: [2222]
    destination:
      ports: [443, "8080:8090"]
      notPorts: ["8085"]
    metadata:
      annotations:
        why: web to db
  - action: Deny
    protocol: ICMP
    icmp: {type: 8, code: 0}
    notICMP: {type: 13}
  - action: Log
    protocol: 132
    destination:
      selector: has(sctp)
      ports: [9]
  - action: Pass
    notProtocol: icmp
  egress:
  - action: Deny
    destination:
      nets: [203.0.113.0/24]
  - action: Allow
    ipVersion: 6
  - action: Allow
    protocol: ICMPv6
"#;

#[test]
fn global_policy_with_every_field() {
    let r = decode_ok(GNP_ALL_FIELDS);
    assert_eq!(r[0].kind(), "GlobalNetworkPolicy");
    assert_eq!(r[0].namespace(), None);
    assert_eq!(r[0].metadata().namespace, "");
    assert_eq!(r[0].describe(), "GlobalNetworkPolicy everything");
    let p = policy_of(GNP_ALL_FIELDS);
    assert_eq!(p.namespace, None);
    assert_eq!(p.key(), "everything");
    assert_eq!(p.order, Some(10.5));
    assert_eq!(
        p.selector,
        sel("pcns.env == 'prod' && role in {'cache', 'db'} && !has(skip)")
    );
    assert_eq!(p.types, vec![PolicyType::Ingress, PolicyType::Egress]);

    assert_eq!(p.ingress.len(), 4);
    let r0 = &p.ingress[0];
    assert_eq!(r0.action, Action::Allow);
    assert_eq!((r0.protocol, r0.not_protocol), (Some(6), Some(17)));
    assert_eq!(r0.src.nets, vec![net("10.0.0.0/8"), net("192.168.1.7/32")]);
    assert_eq!(
        r0.src.not_nets,
        vec![net("10.1.0.0/16")],
        "host bits are cleared"
    );
    // A namespace selector of all() lets the selector look in every namespace.
    assert_eq!(r0.src.selector, Some(sel("app starts with 'web'")));
    assert_eq!(r0.src.not_selector, Some(sel("app ends with '-test'")));
    assert_eq!(r0.src.ports, vec![(1024, 1024), (2000, 3000)]);
    assert_eq!(r0.src.not_ports, vec![(2222, 2222)]);
    assert_eq!(r0.dst.ports, vec![(443, 443), (8080, 8090)]);
    assert_eq!(r0.dst.not_ports, vec![(8085, 8085)]);
    assert_eq!(r0.dst.selector, None);

    let r1 = &p.ingress[1];
    assert_eq!(r1.action, Action::Deny);
    assert_eq!(r1.protocol, Some(1));
    assert_eq!(r1.icmp, Some((8, Some(0))));
    assert_eq!(r1.not_icmp, Some((13, None)));

    let r2 = &p.ingress[2];
    assert_eq!(r2.action, Action::Log);
    assert_eq!(r2.protocol, Some(132));
    assert_eq!(
        r2.dst.selector,
        Some(sel("has(sctp)")),
        "global rules look in every namespace"
    );

    let r3 = &p.ingress[3];
    assert_eq!(r3.action, Action::Pass);
    assert_eq!((r3.protocol, r3.not_protocol), (None, Some(1)));

    // IPv6-only rules are checked but dropped: they never match IPv4 traffic.
    assert_eq!(p.egress.len(), 1);
    assert_eq!(p.egress[0].dst.nets, vec![net("203.0.113.0/24")]);
}

#[test]
fn resources_round_trip_through_yaml_and_json() {
    let r = decode_ok(GNP_ALL_FIELDS);
    let yaml = serde_yaml_ng::to_string(&r[0]).unwrap_or_default();
    assert!(
        yaml.starts_with("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\n"),
        "{yaml}"
    );
    assert!(
        yaml.contains("protocol: TCP"),
        "protocol names are canonical: {yaml}"
    );
    assert!(yaml.contains("2000:3000"), "{yaml}");
    assert_eq!(decode_ok(&yaml), r);
    let json = serde_json::to_string(&r[0]).unwrap_or_default();
    let back: Resource = match serde_json::from_str(&json) {
        Ok(b) => b,
        Err(e) => panic!("{e}: {json}"),
    };
    assert_eq!(back, r[0]);
    let seed = decode_ok(SEED_001);
    let yaml = serde_yaml_ng::to_string(&seed[0]).unwrap_or_default();
    assert_eq!(decode_ok(&yaml), seed);
}

fn np(spec: &str) -> String {
    format!("apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata:\n  name: p\nspec:\n{spec}")
}

#[test]
fn types_default_like_calico() {
    let types = |spec: &str| policy_of(&np(spec)).types;
    assert_eq!(types("  selector: all()\n"), vec![PolicyType::Ingress]);
    assert_eq!(
        types("  ingress:\n  - action: Allow\n"),
        vec![PolicyType::Ingress]
    );
    assert_eq!(
        types("  egress:\n  - action: Allow\n"),
        vec![PolicyType::Egress]
    );
    assert_eq!(
        types("  ingress:\n  - action: Deny\n  egress:\n  - action: Allow\n"),
        vec![PolicyType::Ingress, PolicyType::Egress]
    );
    assert_eq!(types("  types: [Egress]\n"), vec![PolicyType::Egress]);
    assert_eq!(
        types("  types: [egress, ingress]\n"),
        vec![PolicyType::Ingress, PolicyType::Egress]
    );
}

#[test]
fn namespaced_rules_look_in_their_namespace_unless_told_otherwise() {
    let p = policy_of(&np("  ingress:\n  - action: Allow\n    source:\n      namespaceSelector: team == 'a'\n      selector: app == 'x'\n  - action: Allow\n    source:\n      namespaceSelector: has(team)\n  - action: Allow\n    source:\n      notSelector: app == 'y'\n"));
    assert_eq!(
        p.ingress[0].src.selector,
        Some(sel("pcns.team == 'a' && app == 'x'"))
    );
    assert_eq!(p.ingress[1].src.selector, Some(sel("has(pcns.team)")));
    assert_eq!(p.ingress[2].src.selector, None);
    assert_eq!(p.ingress[2].src.not_selector, Some(sel("app == 'y'")));
    let with_ns = |ns: &str| {
        let mut l = labels(&[("app", "x")]);
        l.insert("pcns.team".into(), ns.into());
        l
    };
    let s = p.ingress[0].src.selector.clone().unwrap_or_default();
    assert!(s.matches(&with_ns("a")));
    assert!(!s.matches(&with_ns("b")));
}

/// A policy whose one ingress rule has `rule` (indented as rule fields).
fn with_rule(rule: &str) -> String {
    np(&format!(
        "  selector: app == 'x'\n  ingress:\n  - action: Allow\n{rule}"
    ))
}

#[test]
fn invalid_fields_are_refused_with_path_and_reason() {
    let cases: &[(String, &str, &str)] = &[
        (
            with_rule("    destination:\n      ports: [80]\n"),
            "spec.ingress[0].destination.ports",
            "protocol to be TCP",
        ),
        (
            with_rule("    protocol: ICMP\n    source:\n      notPorts: [80]\n"),
            "spec.ingress[0].source.notPorts",
            "protocol to be TCP",
        ),
        (
            with_rule("    protocol: TCP\n    icmp: {type: 8}\n"),
            "spec.ingress[0].icmp",
            "need protocol: ICMP",
        ),
        (
            with_rule("    protocol: ICMP\n    icmp: {code: 1}\n"),
            "spec.ingress[0].icmp.code",
            "needs an ICMP type",
        ),
        (
            with_rule("    protocol: ICMP\n    icmp: {type: 255}\n"),
            "spec.ingress[0].icmp.type",
            "0-254",
        ),
        (
            with_rule("    protocol: ICMP\n    notICMP: {type: 1, code: 256}\n"),
            "spec.ingress[0].notICMP.code",
            "0-255",
        ),
        (
            with_rule("    ipVersion: 5\n"),
            "spec.ingress[0].ipVersion",
            "use 4 or 6",
        ),
        (
            with_rule("    ipVersion: 4\n    protocol: ICMPv6\n"),
            "spec.ingress[0].protocol",
            "never matches",
        ),
        (
            with_rule("    source:\n      selector: role == pod1\n"),
            "spec.ingress[0].source.selector",
            "position 8: values must be quoted",
        ),
        (
            with_rule("    destination:\n      notSelector: a =\n"),
            "spec.ingress[0].destination.notSelector",
            "position 2",
        ),
        (
            with_rule("    source:\n      namespaceSelector: has(\n"),
            "spec.ingress[0].source.namespaceSelector",
            "position 4",
        ),
        (
            np("  selector: app == 'x' &&\n"),
            "spec.selector",
            "position 13",
        ),
        (
            np("  types: [Ingress]\n  egress:\n  - action: Allow\n"),
            "spec.egress",
            "does not list Egress",
        ),
        (
            np("  types: [Ingress, Ingress]\n"),
            "spec.types[1]",
            "listed twice",
        ),
        (
            np("  tier: security\n"),
            "spec.tier",
            "only the default tier",
        ),
        (np("  order: .nan\n"), "spec.order", "finite"),
        (
            np("  selector: all()\n").replace("name: p", "name: Bad_Name"),
            "metadata.name",
            "not a valid name",
        ),
        (
            np("  selector: all()\n").replace("name: p", "name: p\n  namespace: Prod"),
            "metadata.namespace",
            "not a valid namespace",
        ),
        (
            np("  selector: all()\n").replace("name: p", "name: p\n  labels: {'-x': y}"),
            "metadata.labels",
            "label key",
        ),
    ];
    for (text, path, reason) in cases {
        let e = decode_err(text);
        assert_eq!(e.path.as_deref(), Some(*path), "{text}\n{e}");
        assert!(e.reason.contains(reason), "{text}\n{e}");
        assert_eq!(e.document, 1);
        assert!(e.line.is_some(), "{e}");
        let shown = e.to_string();
        assert!(shown.contains(path), "{shown}");
        let resource = e.resource.clone().unwrap_or_default();
        assert!(
            resource.starts_with("NetworkPolicy ") && shown.contains(&resource),
            "names the resource: {shown}"
        );
    }
}

#[test]
fn selector_errors_point_at_the_line_and_column() {
    let text = with_rule("    source:\n      selector: role == pod1\n");
    let e = decode_err(&text);
    assert_eq!(e.line, Some(10), "{e}");
    let shown = e.to_string();
    assert!(shown.contains("  role == pod1\n          ^"), "{shown}");
}

#[test]
fn structural_errors_are_refused_with_path_and_line() {
    let cases: &[(String, &str, &str, u32)] = &[
        (
            with_rule("    protocol: TPC\n"),
            "spec.ingress[0].protocol",
            "unknown protocol \"TPC\"",
            9,
        ),
        (
            with_rule("    protocol: 0\n"),
            "spec.ingress[0].protocol",
            "1-255",
            9,
        ),
        (
            with_rule("    protocol: TCP\n    destination:\n      ports: [http]\n"),
            "spec.ingress[0].destination.ports[0]",
            "named port \"http\" is not supported",
            11,
        ),
        (
            with_rule("    protocol: TCP\n    destination:\n      ports: [\"90:80\"]\n"),
            "spec.ingress[0].destination.ports[0]",
            "reversed",
            11,
        ),
        (
            with_rule("    protocol: TCP\n    destination:\n      ports: [70000]\n"),
            "spec.ingress[0].destination.ports[0]",
            "1-65535",
            11,
        ),
        (
            with_rule("    source:\n      nets: ['fd00::/8']\n"),
            "spec.ingress[0].source.nets[0]",
            "IPv4-only",
            10,
        ),
        (
            with_rule("    source:\n      nets: ['10.0.0.0/33']\n"),
            "spec.ingress[0].source.nets[0]",
            "not an IPv4 CIDR",
            10,
        ),
        (
            with_rule("    destinaton: {}\n"),
            "spec.ingress[0]",
            "unknown field `destinaton`",
            9,
        ),
        (
            np("  selector: all()\n  ingress:\n  - action: Accept\n"),
            "spec.ingress[0].action",
            "unknown variant `Accept`",
            8,
        ),
        (
            np("  selector: all()\n  doNotTrack: true\n"),
            "spec",
            "unknown field `doNotTrack`",
            7,
        ),
    ];
    for (text, path, reason, line) in cases {
        let e = decode_err(text);
        assert_eq!(e.path.as_deref(), Some(*path), "{text}\n{e}");
        assert!(e.reason.contains(reason), "{text}\n{e}");
        assert_eq!(e.line, Some(*line), "{text}\n{e}");
        assert!(e.column.is_some());
        assert_eq!(e.resource.as_deref(), Some("NetworkPolicy p"), "{e}");
    }
    let missing_spec =
        decode_err("apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata:\n  name: p\n");
    assert!(
        missing_spec.reason.contains("missing field `spec`"),
        "{missing_spec}"
    );
}

#[test]
fn host_endpoint_options_are_refused_on_global_policies() {
    let gnp = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: g\nspec:\n  preDNAT: true\n";
    let e = decode_err(gnp);
    assert_eq!(e.path.as_deref(), Some("spec.preDNAT"));
    assert!(e.reason.contains("host endpoints"), "{e}");
    assert_eq!(e.line, Some(6));
}
