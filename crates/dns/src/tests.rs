//! Unit tests of `Zone::answer` on a hand-made cluster state, speaking real DNS messages.

use std::net::Ipv4Addr;
use std::str::FromStr;

use hickory_proto::op::{Edns, Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use weft_dataplane::ClusterState;
use weft_model::{Network, Workload};

use crate::services::decode;
use crate::{ServiceName, Zone};

const WEB1: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 2);
const B_WEB1: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 2);
const DB: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 3);
const NODE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);
const WEB_SVC: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
const API_SVC: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);

pub(crate) fn network(name: &str) -> Network {
    Network::new(name, weft_model::DEFAULT_POOL)
}

pub(crate) fn workload(name: &str, node: &str, network: &str, ip: Option<Ipv4Addr>) -> Workload {
    Workload {
        name: name.into(),
        id: format!("{name:0>64}"),
        node: node.into(),
        network: network.into(),
        ip,
        host_iface: String::new(),
        labels: Default::default(),
        image: "toolbox".into(),
        command: vec![],
        net_of: None,
        created: 0,
    }
}

fn zone() -> Zone {
    let mut sidecar = workload("sidecar", "master", "front", None);
    sidecar.net_of = Some("web1".into());
    let st = ClusterState {
        revision: 7,
        networks: vec![network("front"), network("Back")],
        workloads: vec![
            workload("web1", "master", "front", Some(WEB1)),
            workload("b-web1", "slave1", "front", Some(B_WEB1)),
            workload("DB", "master", "Back", Some(DB)),
            sidecar,
            workload("pending", "master", "front", None),
        ],
        ..Default::default()
    };
    let services = [
        ServiceName {
            name: "web".into(),
            namespace: "default".into(),
            cluster_ip: WEB_SVC,
        },
        ServiceName {
            name: "api".into(),
            namespace: "prod".into(),
            cluster_ip: API_SVC,
        },
    ];
    Zone::from_state(&st, &services)
}

fn query_msg(name: &str, rtype: RecordType) -> Message {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    let mut qname = Name::from_ascii(name).expect("test name");
    qname.set_fqdn(true); // as on the wire
    m.add_query(Query::query(qname, rtype));
    m
}

fn ask_msg(zone: &Zone, asker: Ipv4Addr, m: &Message) -> Message {
    let bytes = zone.answer(asker, &m.to_vec().expect("encode query"));
    let resp = Message::from_vec(&bytes).expect("decode response");
    assert_eq!(resp.metadata.id, m.metadata.id, "response id");
    assert!(resp.metadata.recursion_desired, "RD copied");
    assert_eq!(resp.queries, m.queries, "question echoed");
    resp
}

fn ask(zone: &Zone, asker: Ipv4Addr, name: &str, rtype: RecordType) -> Message {
    ask_msg(zone, asker, &query_msg(name, rtype))
}

/// The A answers of a lookup, or its response code when it failed.
fn a(zone: &Zone, asker: Ipv4Addr, name: &str) -> Result<Vec<Ipv4Addr>, ResponseCode> {
    let resp = ask(zone, asker, name, RecordType::A);
    if resp.metadata.response_code != ResponseCode::NoError {
        return Err(resp.metadata.response_code);
    }
    Ok(resp
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect())
}

fn ptr(zone: &Zone, asker: Ipv4Addr, name: &str) -> Result<Vec<String>, ResponseCode> {
    let resp = ask(zone, asker, name, RecordType::PTR);
    if resp.metadata.response_code != ResponseCode::NoError {
        return Err(resp.metadata.response_code);
    }
    Ok(resp
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::PTR(p) => Some(p.0.to_ascii()),
            _ => None,
        })
        .collect())
}

#[test]
fn containers_are_scoped_to_the_askers_network() {
    let z = zone();
    assert_eq!(a(&z, WEB1, "b-web1"), Ok(vec![B_WEB1]), "same network");
    assert_eq!(a(&z, DB, "b-web1"), Err(ResponseCode::NXDomain));
    assert_eq!(a(&z, WEB1, "db"), Err(ResponseCode::NXDomain));
    assert_eq!(a(&z, DB, "db"), Ok(vec![DB]), "itself");
    // Not a workload: the node sees everyone.
    assert_eq!(a(&z, NODE, "db"), Ok(vec![DB]));
    assert_eq!(a(&z, NODE, "web1"), Ok(vec![WEB1]));
}

#[test]
fn names_are_case_insensitive_and_may_be_qualified() {
    let z = zone();
    assert_eq!(a(&z, WEB1, "B-Web1"), Ok(vec![B_WEB1]));
    assert_eq!(a(&z, WEB1, "b-web1."), Ok(vec![B_WEB1]), "fully qualified");
    assert_eq!(a(&z, WEB1, "b-web1.front"), Ok(vec![B_WEB1]));
    assert_eq!(a(&z, WEB1, "B-WEB1.FRONT."), Ok(vec![B_WEB1]));
    assert_eq!(a(&z, NODE, "db.back"), Ok(vec![DB]));
    assert_eq!(a(&z, WEB1, "b-web1.back"), Err(ResponseCode::NXDomain));
    assert_eq!(a(&z, WEB1, "nobody.front"), Err(ResponseCode::NXDomain));
    let resp = ask(&z, WEB1, "B-Web1", RecordType::A);
    assert!(resp.metadata.authoritative);
    assert_eq!(resp.answers[0].ttl, crate::DEFAULT_TTL);
    assert_eq!(resp.answers[0].name.to_ascii(), "B-Web1.", "owner as asked");
}

#[test]
fn sharers_and_pending_workloads() {
    let z = zone();
    assert_eq!(a(&z, WEB1, "sidecar"), Ok(vec![WEB1]), "container:web1");
    assert_eq!(a(&z, WEB1, "pending"), Ok(vec![]), "exists, no address yet");
    // The address's owner names it, not its sharer.
    assert_eq!(
        ptr(&z, NODE, "2.0.244.10.in-addr.arpa"),
        Ok(vec!["web1.".into()])
    );
}

#[test]
fn services_answer_everyone_in_every_form() {
    let z = zone();
    for name in [
        "web",
        "web.default",
        "web.default.svc",
        "web.default.svc.cluster.local",
        "Web.Default.SVC.cluster.local.",
    ] {
        assert_eq!(a(&z, DB, name), Ok(vec![WEB_SVC]), "{name}");
        assert_eq!(a(&z, WEB1, name), Ok(vec![WEB_SVC]), "{name}");
    }
    assert_eq!(a(&z, WEB1, "api"), Ok(vec![API_SVC]), "only namespace");
    assert_eq!(a(&z, WEB1, "api.prod.svc.cluster.local"), Ok(vec![API_SVC]));
    assert_eq!(a(&z, WEB1, "api.default"), Err(ResponseCode::NXDomain));
    for name in [
        "nope.default.svc.cluster.local",
        "nope.prod",
        "nope.prod.svc",
        "cluster.local",
        "b-web1.default.svc.cluster.local",
    ] {
        assert_eq!(a(&z, WEB1, name), Err(ResponseCode::NXDomain), "{name}");
    }
}

#[test]
fn reverse_lookups() {
    let z = zone();
    assert_eq!(
        ptr(&z, WEB1, "2.1.244.10.in-addr.arpa"),
        Ok(vec!["b-web1.".into()])
    );
    assert_eq!(
        ptr(&z, DB, "2.1.244.10.in-addr.arpa"),
        Err(ResponseCode::NXDomain),
        "other network"
    );
    assert_eq!(
        ptr(&z, NODE, "3.0.244.10.in-addr.arpa"),
        Ok(vec!["DB.".into()])
    );
    assert_eq!(
        ptr(&z, DB, "10.0.96.10.IN-ADDR.ARPA."),
        Ok(vec!["web.default.svc.cluster.local.".into()])
    );
    // Unknown addresses of the cluster's ranges are ours; the rest is not.
    assert_eq!(
        ptr(&z, NODE, "99.9.244.10.in-addr.arpa"),
        Err(ResponseCode::NXDomain)
    );
    assert_eq!(
        ptr(&z, NODE, "99.0.96.10.in-addr.arpa"),
        Err(ResponseCode::NXDomain)
    );
    assert_eq!(
        ptr(&z, NODE, "8.8.8.8.in-addr.arpa"),
        Err(ResponseCode::Refused)
    );
    // A PTR record of a forward name is empty, and an A of a reverse name too.
    assert_eq!(ptr(&z, WEB1, "web1"), Ok(vec![]));
    assert_eq!(a(&z, WEB1, "2.1.244.10.in-addr.arpa"), Ok(vec![]));
}

#[test]
fn other_types_of_known_names_are_empty() {
    let z = zone();
    for t in [RecordType::AAAA, RecordType::MX, RecordType::TXT] {
        let resp = ask(&z, WEB1, "b-web1", t);
        assert_eq!(resp.metadata.response_code, ResponseCode::NoError, "{t}");
        assert!(resp.answers.is_empty(), "{t}");
    }
    let resp = ask(&z, WEB1, "web.default.svc.cluster.local", RecordType::AAAA);
    assert_eq!(resp.metadata.response_code, ResponseCode::NoError);
    assert!(resp.answers.is_empty());
    let resp = ask(&z, DB, "b-web1", RecordType::AAAA);
    assert_eq!(resp.metadata.response_code, ResponseCode::NXDomain);
    let resp = ask(&z, WEB1, "b-web1", RecordType::ANY);
    assert_eq!(resp.answers.len(), 1);
}

#[test]
fn single_labels_are_ours_other_names_are_refused() {
    let z = zone();
    assert_eq!(a(&z, WEB1, "nobody"), Err(ResponseCode::NXDomain));
    for name in [
        "example.com",
        "www.example.com.",
        "web1.example",
        "in-addr.arpa",
    ] {
        let resp = ask(&z, WEB1, name, RecordType::A);
        assert_eq!(resp.metadata.response_code, ResponseCode::Refused, "{name}");
        assert!(!resp.metadata.recursion_available);
        assert!(resp.answers.is_empty());
    }
}

#[test]
fn ttl_is_configurable() {
    let z = zone().with_ttl(30);
    assert_eq!(z.ttl(), 30);
    assert_eq!(z.revision(), 7);
    let resp = ask(&z, WEB1, "web1", RecordType::A);
    assert_eq!(resp.answers[0].ttl, 30);
}

#[test]
fn malformed_and_unusual_messages() {
    let z = zone();
    assert!(z.answer(WEB1, &[]).is_empty(), "nothing");
    assert!(z.answer(WEB1, &[1, 2, 3]).is_empty(), "no header");
    // A header announcing a question that is not there.
    let bad = [0xab, 0xcd, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    let resp = Message::from_vec(&z.answer(WEB1, &bad)).expect("decode");
    assert_eq!(resp.metadata.id, 0xabcd);
    assert_eq!(resp.metadata.response_code, ResponseCode::FormErr);
    // A response is never answered (no loops between servers).
    let mut m = query_msg("web1", RecordType::A);
    m.metadata.message_type = hickory_proto::op::MessageType::Response;
    assert!(z.answer(WEB1, &m.to_vec().expect("encode")).is_empty());
    // Two questions.
    let mut m = query_msg("web1", RecordType::A);
    m.add_query(Query::query(
        Name::from_str("db.").expect("name"),
        RecordType::A,
    ));
    let resp = ask_msg(&z, NODE, &m);
    assert_eq!(resp.metadata.response_code, ResponseCode::FormErr);
    // Not a standard query.
    let mut m = query_msg("web1", RecordType::A);
    m.metadata.op_code = OpCode::Status;
    let resp = ask_msg(&z, NODE, &m);
    assert_eq!(resp.metadata.response_code, ResponseCode::NotImp);
}

#[test]
fn edns_queries_get_edns_answers() {
    let z = zone();
    let mut m = query_msg("web1", RecordType::A);
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    m.set_edns(edns);
    let resp = ask_msg(&z, NODE, &m);
    assert_eq!(resp.answers.len(), 1);
    assert!(resp.edns.is_some());
}

#[test]
fn service_records_decode_like_kubernetes_objects() {
    let full = br#"{"apiVersion":"v1","kind":"Service",
        "metadata":{"name":"web","namespace":"shop","labels":{"a":"b"}},
        "spec":{"clusterIP":"10.96.0.10","ports":[{"port":80}],"selector":{"app":"web"}},
        "status":{}}"#;
    assert_eq!(
        decode("/weft/services/shop/web", full),
        Ok(Some(ServiceName {
            name: "web".into(),
            namespace: "shop".into(),
            cluster_ip: WEB_SVC
        }))
    );
    let from_key = br#"{"metadata":{"name":"db"},"spec":{"clusterIP":"10.96.0.11"}}"#;
    let s = decode("/weft/services/data/db", from_key).expect("decode");
    assert_eq!(s.map(|s| s.namespace), Some("data".into()));
    for skipped in [
        &br#"{"metadata":{"name":"h"},"spec":{"clusterIP":"None"}}"#[..],
        br#"{"metadata":{"name":"h"},"spec":{}}"#,
        br#"{"metadata":{"name":"h"},"spec":{"clusterIP":""}}"#,
        br#"{"metadata":{"name":"h"},"spec":{"clusterIP":"fd00::1"}}"#,
    ] {
        assert_eq!(decode("/weft/services/default/h", skipped), Ok(None));
    }
    assert!(decode("/weft/services/default/x", b"not json").is_err());
}

#[test]
fn services_are_read_from_the_store() {
    let store = weft_store::MemStore::new();
    let put = |key: &str, value: &str| {
        weft_store::Store::txn(
            &store,
            &[],
            &[weft_store::Op::Put(key.into(), value.as_bytes().to_vec())],
        )
        .expect("put");
    };
    put(
        "/weft/services/prod/api",
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"api","namespace":"prod"},"spec":{"clusterIP":"10.96.0.20"}}"#,
    );
    put("/weft/services/default/broken", "{");
    put(
        "/weft/services/default/web",
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},"spec":{"clusterIP":"10.96.0.10"}}"#,
    );
    let want = [
        "web.default.svc.cluster.local",
        "api.prod.svc.cluster.local",
    ];
    let got = crate::services_from_store(&store).expect("services");
    let names: Vec<String> = got.iter().map(ServiceName::fqdn).collect();
    assert_eq!(names, want);
    // The same through the cluster state (one read for workloads and services).
    let st = ClusterState::load(&store).expect("state");
    let names: Vec<String> = crate::services_of_state(&st)
        .iter()
        .map(ServiceName::fqdn)
        .collect();
    assert_eq!(names, want);
}

#[test]
fn upstream_comes_from_resolv_conf() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("resolv.conf");
    let text = "# generated\nsearch example.org\nnameserver 127.0.0.53\n\
                nameserver 192.0.2.53\nnameserver 192.0.2.54\noptions ndots:1\n";
    std::fs::write(&path, text).expect("write");
    assert_eq!(
        crate::upstream_from_resolv_conf(&path),
        Some("192.0.2.53:53".parse().expect("addr"))
    );
    std::fs::write(&path, "nameserver 127.0.0.1\n").expect("write");
    assert_eq!(crate::upstream_from_resolv_conf(&path), None);
    assert_eq!(
        crate::upstream_from_resolv_conf(&dir.path().join("absent")),
        None
    );
}
