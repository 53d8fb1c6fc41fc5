//! The server on 127.0.0.1 (ephemeral ports, loopback only) against an in-memory store: UDP,
//! TCP, scoping by source address, live updates while a client keeps asking, forwarding.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use weft_dns::{DnsOptions, Server};
use weft_model::{keys, Network, Workload};
use weft_store::Store;

fn network(name: &str) -> Network {
    Network::new(name, weft_model::DEFAULT_POOL)
}

fn workload(name: &str, network: &str, ip: Ipv4Addr) -> Workload {
    Workload {
        name: name.into(),
        id: format!("{name:0>64}"),
        node: "master".into(),
        network: network.into(),
        ip: Some(ip),
        host_iface: String::new(),
        labels: Default::default(),
        image: "toolbox".into(),
        command: vec![],
        net_of: None,
        created: 0,
    }
}

fn store() -> Arc<dyn Store> {
    let s: Arc<dyn Store> = Arc::from(weft_store::open("mem:").expect("mem store"));
    for n in ["front", "back"] {
        weft_store::put_json(&*s, &keys::network(n), &network(n)).expect("put network");
    }
    put_workload(&*s, "web1", "front", [10, 244, 0, 2]);
    put_workload(&*s, "b-web1", "front", [10, 244, 1, 2]);
    // A workload whose address is a loopback one, so the test can ask as it.
    put_workload(&*s, "lo-client", "back", [127, 0, 0, 2]);
    s
}

fn put_workload(s: &dyn Store, name: &str, net: &str, ip: [u8; 4]) {
    weft_store::put_json(s, &keys::workload(name), &workload(name, net, ip.into()))
        .expect("put workload");
}

fn query(name: &str) -> Message {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(
        Name::from_str(name).expect("name"),
        RecordType::A,
    ));
    m
}

fn udp_ask(from: Ipv4Addr, server: SocketAddr, name: &str) -> std::io::Result<Message> {
    let sock = UdpSocket::bind((from, 0))?;
    sock.set_read_timeout(Some(Duration::from_secs(3)))?;
    let q = query(name);
    sock.send_to(&q.to_vec().expect("encode"), server)?;
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf)?;
    let resp = Message::from_vec(&buf[..n]).map_err(std::io::Error::other)?;
    if resp.metadata.id != q.metadata.id {
        return Err(std::io::Error::other("wrong id"));
    }
    Ok(resp)
}

fn tcp_ask(server: SocketAddr, names: &[&str]) -> Vec<Message> {
    let mut s = TcpStream::connect(server).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let mut out = Vec::new();
    // Several queries on one connection, as resolvers do.
    for name in names {
        let q = query(name).to_vec().expect("encode");
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        s.write_all(&framed).expect("write");
        let mut len = [0u8; 2];
        s.read_exact(&mut len).expect("read length");
        let mut resp = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut resp).expect("read response");
        out.push(Message::from_vec(&resp).expect("decode"));
    }
    out
}

fn addrs(m: &Message) -> Vec<Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn start(store: Arc<dyn Store>, opts: DnsOptions) -> (Server, SocketAddr) {
    let server =
        Server::start(store, &["127.0.0.1:0".parse().expect("addr")], opts).expect("start server");
    let addr = server.local_addrs()[0];
    assert_ne!(addr.port(), 0);
    (server, addr)
}

#[test]
fn answers_over_udp_and_tcp_scoped_by_source() {
    let (server, addr) = start(store(), DnsOptions::default());
    let resp = udp_ask(LOCAL, addr, "b-web1").expect("udp");
    assert_eq!(addrs(&resp), [Ipv4Addr::new(10, 244, 1, 2)]);
    let resp = tcp_ask(addr, &["web1", "b-web1.front", "nobody", "example.com"]);
    assert_eq!(addrs(&resp[0]), [Ipv4Addr::new(10, 244, 0, 2)]);
    assert_eq!(addrs(&resp[1]), [Ipv4Addr::new(10, 244, 1, 2)]);
    assert_eq!(resp[2].metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(resp[3].metadata.response_code, ResponseCode::Refused);
    // Asking as lo-client (network back): front's names are hidden, its own is not.
    let asker = Ipv4Addr::new(127, 0, 0, 2);
    let resp = udp_ask(asker, addr, "web1").expect("udp");
    assert_eq!(resp.metadata.response_code, ResponseCode::NXDomain);
    let resp = udp_ask(asker, addr, "lo-client").expect("udp");
    assert_eq!(addrs(&resp), [asker]);
    server.stop();
    // Stopped means the ports are free again.
    UdpSocket::bind(addr).expect("UDP port released");
    std::net::TcpListener::bind(addr).expect("TCP port released");
}

#[test]
fn live_updates_drop_no_query() {
    let store = store();
    let (server, addr) = start(store.clone(), DnsOptions::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (asked, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let asker = {
        let (stop, asked, failed) = (stop.clone(), asked.clone(), failed.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let ok = udp_ask(LOCAL, addr, "web1")
                    .map(|m| addrs(&m) == [Ipv4Addr::new(10, 244, 0, 2)])
                    .unwrap_or(false);
                asked.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let wait_for = |name: &str, want: Option<Ipv4Addr>| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let resp = udp_ask(LOCAL, addr, name).expect("udp");
            let got = addrs(&resp).first().copied();
            if got == want {
                return;
            }
            assert!(Instant::now() < deadline, "{name}: still {got:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    for i in 0..20u8 {
        let name = format!("late{i}");
        put_workload(&*store, &name, "front", [10, 244, 2, i]);
        wait_for(&name, Some(Ipv4Addr::new(10, 244, 2, i)));
    }
    let svc = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"shop","namespace":"default"},
                  "spec":{"clusterIP":"10.96.0.42","ports":[{"port":80}]}}"#;
    store
        .txn(
            &[],
            &[weft_store::Op::Put(
                "/weft/services/default/shop".into(),
                svc.as_bytes().to_vec(),
            )],
        )
        .expect("put service");
    wait_for(
        "shop.default.svc.cluster.local",
        Some(Ipv4Addr::new(10, 96, 0, 42)),
    );
    weft_store::delete(&*store, &keys::workload("late0")).expect("delete");
    wait_for("late0", None);
    assert_eq!(server.revision(), store.revision().expect("revision"));
    stop.store(true, Ordering::Relaxed);
    asker.join().expect("asker thread");
    let (asked, failed) = (
        asked.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    assert!(asked > 20, "the asker asked only {asked} times");
    assert_eq!(
        failed, 0,
        "{failed} of {asked} queries failed during updates"
    );
    server.stop();
}

/// A fake upstream on loopback that answers every A query with 192.0.2.1 (no traffic leaves
/// the machine: the address is only data).
fn fake_upstream() -> (SocketAddr, Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind upstream");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let addr = sock.local_addr().expect("addr");
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while !st.load(Ordering::Relaxed) {
            let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut r = Message::response(q.metadata.id, q.metadata.op_code);
            r.metadata.recursion_available = true;
            r.add_queries(q.queries.iter().cloned());
            let name = q.queries[0].name().clone();
            r.add_answer(Record::from_rdata(name, 60, RData::A(A::new(192, 0, 2, 1))));
            let _ = sock.send_to(&r.to_vec().expect("encode"), peer);
        }
    });
    (addr, stop, t)
}

#[test]
fn other_names_are_forwarded_to_the_upstream() {
    let (upstream, stop, t) = fake_upstream();
    let opts = DnsOptions {
        upstream: Some(upstream),
        ttl: 9,
    };
    let (server, addr) = start(store(), opts);
    let resp = udp_ask(LOCAL, addr, "www.example.com").expect("udp");
    assert_eq!(addrs(&resp), [Ipv4Addr::new(192, 0, 2, 1)]);
    assert!(resp.metadata.recursion_available);
    let resp = tcp_ask(addr, &["www.example.com", "web1"]);
    assert_eq!(addrs(&resp[0]), [Ipv4Addr::new(192, 0, 2, 1)]);
    assert_eq!(addrs(&resp[1]), [Ipv4Addr::new(10, 244, 0, 2)]);
    assert_eq!(resp[1].answers[0].ttl, 9);
    // weft's own names are never forwarded.
    let resp = udp_ask(LOCAL, addr, "nobody").expect("udp");
    assert_eq!(resp.metadata.response_code, ResponseCode::NXDomain);
    server.stop();
    stop.store(true, Ordering::Relaxed);
    t.join().expect("upstream thread");
}

#[test]
fn a_silent_upstream_gives_servfail_without_delaying_local_names() {
    // Bound but never read: the upstream never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let opts = DnsOptions {
        upstream: Some(silent.local_addr().expect("addr")),
        ..DnsOptions::default()
    };
    let (server, addr) = start(store(), opts);
    let slow = std::thread::spawn(move || udp_ask(LOCAL, addr, "www.example.com"));
    std::thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    let resp = udp_ask(LOCAL, addr, "web1").expect("udp");
    assert_eq!(addrs(&resp), [Ipv4Addr::new(10, 244, 0, 2)]);
    assert!(t0.elapsed() < Duration::from_secs(1), "local answer waited");
    let resp = slow.join().expect("thread").expect("udp");
    assert_eq!(resp.metadata.response_code, ResponseCode::ServFail);
    server.stop();
}

#[test]
fn start_fails_on_a_busy_port() {
    let busy = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let err = Server::start(
        store(),
        &[busy.local_addr().expect("addr")],
        DnsOptions::default(),
    )
    .err()
    .expect("must fail");
    assert!(
        format!("{err:#}").contains("bind the DNS UDP socket"),
        "{err:#}"
    );
}
