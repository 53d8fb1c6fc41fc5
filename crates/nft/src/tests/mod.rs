//! Unit tests (no root): encodings compared with what `nft --debug=netlink`
//! printed for the same rules (nftables 1.0.6), `Display` compared with what
//! `nft list` printed, sets, batches, drift.

mod batch;
mod display;
mod encoding;
mod sets;

use std::net::Ipv4Addr;

use crate::model::*;

pub(crate) fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

pub(crate) fn net(s: &str) -> Value {
    Value::Ipv4Prefix(s.parse().unwrap_or_else(|e| panic!("{s}: {e}")))
}

/// A table with the named sets and maps the test rules refer to.
pub(crate) fn table_with_sets() -> Table {
    let mut t = Table::new("weft");
    t.sets.push(Set::new(
        "allowed",
        KeyType::Ipv4Addr,
        vec![net("10.0.0.0/8")],
    ));
    t.maps.push(Map::verdicts(
        "svc",
        KeyType::Concat(vec![
            KeyType::Ipv4Addr,
            KeyType::InetProto,
            KeyType::InetService,
        ]),
        vec![],
    ));
    t.maps.push(Map {
        name: "da".into(),
        key: KeyType::Concat(vec![KeyType::Ipv4Addr, KeyType::InetService]),
        data: MapData::Value(KeyType::Ipv4Addr),
        flags: SetFlags::default(),
        elements: vec![],
    });
    t.maps.push(Map {
        name: "dn".into(),
        key: KeyType::Ipv4Addr,
        data: MapData::Value(KeyType::Concat(vec![
            KeyType::Ipv4Addr,
            KeyType::InetService,
        ])),
        flags: SetFlags::default(),
        elements: vec![],
    });
    t
}
