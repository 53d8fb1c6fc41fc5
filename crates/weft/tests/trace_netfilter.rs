//! `weft trace` through weft's nftables table: a deny policy and a profile named as the
//! decision at the right hop with the fix (S13, S4), a service without endpoints, services
//! through DNAT to local and remote endpoints (S10, S11, S12) and egress masquerade (S17), all
//! passing --verify (prediction equals observation).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{can_run, wait_until, Lab};
use serde_json::Value;

fn trace_json(lab: &Lab, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["-o", "json", "trace"];
    all.extend_from_slice(args);
    let r = lab.weft(&all);
    let v = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("trace {args:?}: not JSON ({e}): {}{}", r.stdout, r.stderr));
    (r.code, v)
}

fn verified(lab: &Lab, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--verify");
    let (code, t) = trace_json(lab, &a);
    assert_eq!(
        t["verify"]["agrees"], true,
        "prediction != observation: {t:#}"
    );
    assert_eq!(code, 0, "--verify agreed but exited {code}");
    t
}

fn kind(t: &Value) -> &str {
    t["disposition"]["disposition"]["kind"]
        .as_str()
        .unwrap_or("?")
}

/// Steps of one kind, all hops.
fn steps<'a>(t: &'a Value, k: &str) -> Vec<&'a Value> {
    t["hops"]
        .as_array()
        .expect("hops")
        .iter()
        .flat_map(|h| h["steps"].as_array().expect("steps"))
        .filter(|s| s["kind"] == k)
        .collect()
}

/// Waits until the node's agent has programmed what the trace predicts.
fn wait_kind(lab: &Lab, args: &[&str], want: &str) {
    assert!(
        wait_until(Duration::from_secs(15), || {
            let (_, t) = trace_json(lab, args);
            kind(&t) == want && {
                let mut a = args.to_vec();
                a.push("--verify");
                trace_json(lab, &a).1["verify"]["agrees"] == true
            }
        }),
        "{args:?} never became {want}"
    );
}

const POLICY: &str = "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata:\n  name: allow-tcp-80\n  namespace: default\nspec:\n  selector: app == 'nginx'\n  ingress:\n  - action: Allow\n    protocol: TCP\n    source:\n      selector: role == 'pod1'\n    destination:\n      ports:\n      - 80\n";
const LONELY: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: lonely\nspec:\n  selector:\n    app: nobody\n  ports:\n  - port: 80\n";

#[test]
fn s13_s4_denials_and_service_without_endpoints() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["n1"]);
    lab.ok(&["network", "create", "net1", "--isolation", "none"]);
    lab.ok(&["network", "create", "net2"]);
    common::seed001_cast(&lab, "n1", "net1");
    lab.run("n1", "web3", "net2");
    assert!(lab.apply(POLICY).ok());
    assert!(lab.apply(LONELY).ok());

    // S13: pod2 is denied at the node, by the end of nginx's policy tier, naming the policy.
    let pod2 = ["pod2", "nginx", "--proto", "tcp", "--port", "80"];
    wait_kind(&lab, &pod2, "denied");
    let t = verified(&lab, &pod2);
    let d = &t["disposition"];
    assert_eq!(
        t["hops"][d["hop"].as_u64().unwrap() as usize]["member"],
        "node/n1"
    );
    let by = d["disposition"]["by"].as_str().unwrap_or_default();
    assert!(
        by.contains("default/allow-tcp-80") && by.contains("nginx"),
        "{by}"
    );
    let fix = d["fix"].as_str().unwrap_or_default();
    assert!(fix.contains("Allow") && fix.contains("pod2"), "{fix}");
    assert_eq!(d["disposition"]["hook"], "forward");

    // pod1 reaches nginx:80, allowed by that policy by name; and no other port.
    let t = verified(&lab, &["pod1", "nginx", "--proto", "tcp", "--port", "80"]);
    assert_eq!(kind(&t), "delivered");
    assert!(
        steps(&t, "netfilter")
            .iter()
            .any(|s| s["by"] == "policy default/allow-tcp-80" && s["verdict"] == "accept"),
        "{t:#}"
    );
    let t = verified(&lab, &["pod1", "nginx", "--proto", "tcp", "--port", "8080"]);
    assert_eq!(kind(&t), "denied");

    // S4: another network is refused by its profile.
    let t = verified(&lab, &["pod1", "web3"]);
    assert_eq!(kind(&t), "denied", "{t:#}");
    assert_eq!(t["disposition"]["disposition"]["by"], "profile net2");
    let fix = t["disposition"]["fix"].as_str().unwrap_or_default();
    assert!(
        fix.contains("--isolation none") && fix.contains("web3"),
        "{fix}"
    );

    // A service without endpoints is refused at once, and the probe sees the refusal.
    let t = verified(&lab, &["pod1", "svc:lonely"]);
    assert_eq!(kind(&t), "no_endpoints", "{t:#}");
    assert_eq!(t["verify"]["probe"]["answered"], true);
    assert!(t["disposition"]["reason"]
        .as_str()
        .unwrap_or_default()
        .contains("default.lonely"));

    // Denials are policy, not faults: doctor finds nothing.
    let doc = lab.ok(&["doctor"]);
    assert!(doc.contains("no problems found"), "{doc}");
}

const SVC: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: NodePort\n  selector:\n    app: web\n  ports:\n  - name: http\n    port: 8000\n    targetPort: 80\n    nodePort: 30080\n";

#[test]
fn s10_s11_s12_s17_nat_paths_verify() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["master", "slave1"]);
    lab.ok(&["network", "create", "net1", "--isolation", "none"]);
    common::web_endpoints_and_client(&lab, "net1");
    assert!(lab.apply(SVC).ok());
    let (ip_a, ip_b) = (lab.ip("web-a"), lab.ip("web-b"));
    wait_kind(&lab, &["client", "svc:web"], "delivered");

    // S10: DNAT to one of two endpoints, local or remote; the reply comes from the service.
    let mut seen = BTreeSet::new();
    for _ in 0..12 {
        let t = verified(&lab, &["client", "svc:web"]);
        assert_eq!(
            (t["proto"].as_str(), t["port"].as_u64()),
            (Some("tcp"), Some(8000))
        );
        let dnat = steps(&t, "nat")
            .into_iter()
            .find(|s| s["nat"] == "dnat")
            .cloned()
            .expect("a DNAT step");
        assert_eq!(
            dnat["candidates"].as_array().map(Vec::len),
            Some(2),
            "{dnat:#}"
        );
        let after = dnat["after"].as_str().unwrap_or_default().to_string();
        assert!(
            after == format!("{ip_a}:80") || after == format!("{ip_b}:80"),
            "{after}"
        );
        let last = t["hops"].as_array().unwrap().last().cloned().unwrap();
        assert_eq!(
            last["rx"]["src"].as_str(),
            t["to"]["ip"].as_str(),
            "un-DNAT: {last:#}"
        );
        seen.insert(after);
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.len(), 2, "both endpoints verified: {seen:?}");

    // -o svg: a well-formed diagram with every hop and the headers on the wires.
    let svg = lab.ok(&["-o", "svg", "trace", "client", "svc:web"]);
    well_formed(&svg);
    for want in [
        "container client",
        "node master",
        "forward",
        "reply",
        ".8000: Flags [S]",
    ] {
        assert!(svg.contains(want), "{want} missing from the SVG: {svg}");
    }
    // -o pcap: one pcapng file of every captured hop, which tcpdump reads.
    let file = std::env::temp_dir().join(format!("weft-{}.pcapng", lab.name));
    let out = common::weft_cmd()
        .args([
            "--lab", &lab.name, "-o", "pcap", "trace", "client", "svc:web", "--verify",
        ])
        .stdout(std::fs::File::create(&file).expect("pcap file"))
        .output()
        .expect("run weft");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump = std::process::Command::new("tcpdump")
        .args(["-nn", "-e", "-r"])
        .arg(&file)
        .output()
        .expect("tcpdump (apt-get install tcpdump)");
    let _ = std::fs::remove_file(&file);
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let svc_ip = t_ip(&lab);
    assert!(text.contains(&format!("{svc_ip}.8000")), "{text}");
    assert!(text.lines().count() >= 4, "a frame per hop: {text}");

    // S11: the other node reaches the service too.
    let t = verified(&lab, &["node:slave1", "svc:web"]);
    assert_eq!(kind(&t), "delivered");

    // S12: a NodePort from outside, on each node: DNAT and masquerade to the node.
    for addr in ["198.51.100.11", "198.51.100.12"] {
        let t = verified(&lab, &["ext", addr, "--proto", "tcp", "--port", "30080"]);
        assert_eq!(kind(&t), "delivered");
        let nats: Vec<&str> = steps(&t, "nat")
            .iter()
            .filter_map(|s| s["nat"].as_str())
            .collect();
        for n in ["dnat", "masquerade", "un-masquerade", "un-dnat"] {
            assert!(nats.contains(&n), "{n} missing: {nats:?}");
        }
    }

    // S17: to the outside the source is masqueraded to the node; the answer is un-NATed.
    let t = verified(&lab, &["client", "203.0.113.1"]);
    let masq = steps(&t, "nat")
        .into_iter()
        .find(|s| s["nat"] == "masquerade")
        .cloned()
        .expect("masquerade");
    assert_eq!(masq["after"], "198.51.100.11");
    let line = t["hops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["member"] == "node/master" && h["leg"] == "forward")
        .map(|h| h["tx"]["line"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    assert!(
        line.contains("198.51.100.11*"),
        "rewritten source marked: {line}"
    );
    // No NAT between cluster addresses.
    let t = verified(&lab, &["client", "web-b"]);
    assert!(steps(&t, "nat").is_empty(), "{t:#}");
}

/// The ClusterIP of `web`.
fn t_ip(lab: &Lab) -> String {
    let v: Value = serde_json::from_str(&lab.ok(&["-o", "json", "get", "svc", "web"])).unwrap();
    v[0]["spec"]["clusterIP"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Tags open and close in order, attributes are quoted, `&` only starts an entity.
fn well_formed(xml: &str) {
    let body = xml.trim_start();
    let body = match body.strip_prefix("<?xml") {
        Some(rest) => &rest[rest.find("?>").expect("end of the XML declaration") + 2..],
        None => body,
    };
    let mut stack: Vec<String> = vec![];
    let mut rest = body;
    while let Some(lt) = rest.find('<') {
        let text = &rest[..lt];
        for (i, _) in text.match_indices('&') {
            let ent = &text[i..text[i..].find(';').map(|j| i + j + 1).unwrap_or(text.len())];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].contains(&ent),
                "bad entity {ent}"
            );
        }
        let gt = rest[lt..].find('>').expect("unclosed tag") + lt;
        let tag = &rest[lt + 1..gt];
        assert_eq!(
            tag.matches('"').count() % 2,
            0,
            "unbalanced quotes in <{tag}>"
        );
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.trim()),
                "mismatched </{name}>"
            );
        } else if !tag.ends_with('/') {
            let name = tag
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            stack.push(name);
        }
        rest = &rest[gt + 1..];
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    assert!(body.trim_start().starts_with("<svg"), "the root is svg");
}
