//! Conntrack entries over ctnetlink (`NFNL_SUBSYS_CTNETLINK`, on the same
//! `NETLINK_NETFILTER` socket code as nf_tables): list the IPv4 entries of a
//! network namespace and delete the ones a [`Filter`] picks.
//!
//! kube-proxy's reason for it: a UDP "connection" to a service is DNATed once,
//! when its first datagram passes; the entry then lives as long as the client
//! keeps sending, so a client whose endpoint went away would keep sending into
//! the void. Deleting the entries whose reply comes from the removed endpoint
//! makes the next datagram choose again among the live ones.
//!
//! ```no_run
//! use weft_nft::conntrack::{Conntrack, Filter};
//! let mut ct = Conntrack::new()?;
//! let gone = Filter {
//!     orig_dst: Some("10.96.0.10".parse().unwrap()),
//!     reply_src: Some("10.244.0.5".parse().unwrap()),
//!     ..Filter::udp()
//! };
//! let deleted = ct.delete_matching(&[gone])?;
//! # Ok::<(), weft_nft::Error>(())
//! ```

use std::net::Ipv4Addr;

use weft_netlink::{run_in_netns, Netns};

use crate::netlink::attr::{find, Attrs, Msg, Writer};
use crate::netlink::consts::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use crate::netlink::kernel_error;
use crate::netlink::socket::Socket;
use crate::{Error, Result};

/// `NFNL_SUBSYS_CTNETLINK`
const SUBSYS_CTNETLINK: u16 = 1;
/// `IPCTNL_MSG_CT_GET`, `IPCTNL_MSG_CT_DELETE`
const MSG_CT_GET: u16 = 1;
const MSG_CT_DELETE: u16 = 2;
/// `AF_INET` in the `nfgenmsg` header: IPv4 entries only.
const FAMILY_IPV4: u8 = libc::AF_INET as u8;
// enum ctattr_type
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_ID: u16 = 12;
const CTA_ZONE: u16 = 18;
// enum ctattr_tuple, ctattr_ip, ctattr_l4proto
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;

const fn ct_type(msg: u16) -> u16 {
    (SUBSYS_CTNETLINK << 8) | msg
}

/// One direction of a connection: addresses, protocol and ports (0 for
/// protocols without ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Transport protocol number (17 for UDP).
    pub proto: u8,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// One conntrack entry: the original direction (as the client sent it) and
/// the reply direction (as the answer comes back; after DNAT its source is the
/// endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The original direction.
    pub orig: Tuple,
    /// The reply direction.
    pub reply: Tuple,
    /// The kernel's id of the entry (a delete names it, so that a newer entry
    /// with the same tuple is left alone).
    pub id: Option<u32>,
    /// The conntrack zone, when not the default one.
    pub zone: Option<u16>,
}

/// Which entries to pick: every field given must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Filter {
    /// Transport protocol.
    pub proto: u8,
    /// Destination of the original direction (a service's address).
    pub orig_dst: Option<Ipv4Addr>,
    /// Destination port of the original direction (a service port or NodePort).
    pub orig_dport: Option<u16>,
    /// Source of the reply direction (the endpoint a DNAT chose).
    pub reply_src: Option<Ipv4Addr>,
}

impl Filter {
    /// Every UDP entry (narrow it with the other fields).
    pub fn udp() -> Filter {
        Filter {
            proto: crate::PROTO_UDP,
            orig_dst: None,
            orig_dport: None,
            reply_src: None,
        }
    }

    /// Whether `e` is one of the entries the filter picks.
    pub fn matches(&self, e: &Entry) -> bool {
        e.orig.proto == self.proto
            && self.orig_dst.is_none_or(|a| e.orig.dst == a)
            && self.orig_dport.is_none_or(|p| e.orig.dport == p)
            && self.reply_src.is_none_or(|a| e.reply.src == a)
    }
}

/// A ctnetlink socket bound to one network namespace.
#[derive(Debug)]
pub struct Conntrack {
    sock: Socket,
}

fn io_err(op: &str, e: std::io::Error) -> Error {
    Error::io(op, "conntrack table", e)
}

impl Conntrack {
    /// A socket for the calling thread's network namespace.
    pub fn new() -> Result<Conntrack> {
        let sock = Socket::open().map_err(|e| io_err("open ctnetlink socket", e))?;
        Ok(Conntrack { sock })
    }

    /// A socket for the network namespace `ns`.
    pub fn in_netns(ns: &Netns) -> Result<Conntrack> {
        let sock = run_in_netns(ns, Socket::open)?
            .map_err(|e| Error::io("open ctnetlink socket", ns.to_string(), e))?;
        Ok(Conntrack { sock })
    }

    /// Every IPv4 entry of the namespace.
    pub fn list(&mut self) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        let build = |w: &mut Writer, seq: u32| {
            w.begin(
                ct_type(MSG_CT_GET),
                NLM_F_REQUEST | NLM_F_DUMP,
                seq,
                FAMILY_IPV4,
                0,
            );
            w.end();
        };
        self.sock
            .dump(&build, &mut |m: Option<&Msg<'_>>| match m {
                None => out.clear(),
                Some(m) => out.extend(parse_entry(m.attrs())),
            })
            .map_err(|e| io_err("dump conntrack entries", e))?
            .map_err(|e| {
                kernel_error(
                    "dump",
                    "the conntrack table".into(),
                    &e,
                    None,
                    Some("is the kernel built with CONFIG_NF_CT_NETLINK?".into()),
                )
            })?;
        Ok(out)
    }

    /// Deletes one entry; `false` when it was already gone.
    pub fn delete(&mut self, e: &Entry) -> Result<bool> {
        let res = self
            .sock
            .request(|w, seq| {
                w.begin(
                    ct_type(MSG_CT_DELETE),
                    NLM_F_REQUEST | NLM_F_ACK,
                    seq,
                    FAMILY_IPV4,
                    0,
                );
                put_tuple(w, CTA_TUPLE_ORIG, &e.orig);
                if let Some(id) = e.id {
                    w.put_u32(CTA_ID, id);
                }
                if let Some(z) = e.zone {
                    w.put(CTA_ZONE, &z.to_be_bytes());
                }
                w.end();
            })
            .map_err(|err| io_err("delete conntrack entry", err))?;
        match res {
            Ok(_) => Ok(true),
            Err(err) if err.errno == libc::ENOENT => Ok(false),
            Err(err) => Err(kernel_error(
                "delete",
                format!("conntrack entry {}", tuple_text(&e.orig)),
                &err,
                None,
                None,
            )),
        }
    }

    /// Deletes every entry that any of `filters` picks; returns how many went.
    pub fn delete_matching(&mut self, filters: &[Filter]) -> Result<usize> {
        if filters.is_empty() {
            return Ok(0);
        }
        let mut n = 0;
        for e in self.list()? {
            if filters.iter().any(|f| f.matches(&e)) && self.delete(&e)? {
                n += 1;
            }
        }
        Ok(n)
    }
}

fn tuple_text(t: &Tuple) -> String {
    format!(
        "{} {}:{} -> {}:{}",
        crate::proto_name(t.proto),
        t.src,
        t.sport,
        t.dst,
        t.dport
    )
}

fn put_tuple(w: &mut Writer, ty: u16, t: &Tuple) {
    let tuple = w.open(ty);
    let ip = w.open(CTA_TUPLE_IP);
    w.put(CTA_IP_V4_SRC, &t.src.octets());
    w.put(CTA_IP_V4_DST, &t.dst.octets());
    w.close(ip);
    let proto = w.open(CTA_TUPLE_PROTO);
    w.put_u8(CTA_PROTO_NUM, t.proto);
    if has_ports(t.proto) {
        w.put(CTA_PROTO_SRC_PORT, &t.sport.to_be_bytes());
        w.put(CTA_PROTO_DST_PORT, &t.dport.to_be_bytes());
    }
    w.close(proto);
    w.close(tuple);
}

fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 33 | 132 | 136)
}

fn addr(a: Attrs<'_>, ty: u16) -> Option<Ipv4Addr> {
    let d = find(a, ty)?.data;
    Some(Ipv4Addr::new(
        *d.first()?,
        *d.get(1)?,
        *d.get(2)?,
        *d.get(3)?,
    ))
}

fn port(a: Attrs<'_>, ty: u16) -> u16 {
    find(a, ty)
        .and_then(|x| Some(u16::from_be_bytes([*x.data.first()?, *x.data.get(1)?])))
        .unwrap_or(0)
}

fn parse_tuple(a: Attrs<'_>) -> Option<Tuple> {
    let ip = find(a, CTA_TUPLE_IP)?.nested();
    let proto = find(a, CTA_TUPLE_PROTO)?.nested();
    Some(Tuple {
        src: addr(ip, CTA_IP_V4_SRC)?,
        dst: addr(ip, CTA_IP_V4_DST)?,
        proto: *find(proto, CTA_PROTO_NUM)?.data.first()?,
        sport: port(proto, CTA_PROTO_SRC_PORT),
        dport: port(proto, CTA_PROTO_DST_PORT),
    })
}

/// An entry from the attributes of a ctnetlink message (`None` for what is
/// not an IPv4 entry).
fn parse_entry(a: Attrs<'_>) -> Option<Entry> {
    Some(Entry {
        orig: parse_tuple(find(a, CTA_TUPLE_ORIG)?.nested())?,
        reply: parse_tuple(find(a, CTA_TUPLE_REPLY)?.nested())?,
        id: find(a, CTA_ID).and_then(|x| x.u32_be()),
        zone: find(a, CTA_ZONE)
            .and_then(|x| Some(u16::from_be_bytes([*x.data.first()?, *x.data.get(1)?])))
            .filter(|z| *z != 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(orig_dst: [u8; 4], dport: u16, reply_src: [u8; 4]) -> Entry {
        let t = |s: [u8; 4], d: [u8; 4], sp, dp| Tuple {
            src: s.into(),
            dst: d.into(),
            proto: 17,
            sport: sp,
            dport: dp,
        };
        Entry {
            orig: t([10, 244, 0, 9], orig_dst, 40000, dport),
            reply: t(reply_src, [10, 244, 0, 9], dport, 40000),
            id: Some(7),
            zone: None,
        }
    }

    #[test]
    fn filters_pick_by_service_and_endpoint() {
        let svc = [10, 96, 0, 10];
        let to_a = entry(svc, 53, [10, 244, 0, 5]);
        let to_b = entry(svc, 53, [10, 244, 1, 5]);
        let f = Filter {
            orig_dst: Some(svc.into()),
            reply_src: Some([10, 244, 0, 5].into()),
            ..Filter::udp()
        };
        assert!(f.matches(&to_a));
        assert!(!f.matches(&to_b));
        let tcp = Filter {
            proto: 6,
            ..Filter::udp()
        };
        assert!(!tcp.matches(&to_a), "the protocol must match");
        let nodeport = Filter {
            orig_dport: Some(30053),
            ..Filter::udp()
        };
        assert!(!nodeport.matches(&to_a));
        assert!(nodeport.matches(&entry([198, 51, 100, 11], 30053, [10, 244, 0, 5])));
    }

    #[test]
    fn entries_round_trip_through_attributes() {
        let e = entry([10, 96, 0, 10], 53, [10, 244, 0, 5]);
        let mut w = Writer::with_capacity(256);
        w.begin(ct_type(MSG_CT_DELETE), NLM_F_REQUEST, 1, FAMILY_IPV4, 0);
        put_tuple(&mut w, CTA_TUPLE_ORIG, &e.orig);
        put_tuple(&mut w, CTA_TUPLE_REPLY, &e.reply);
        w.put_u32(CTA_ID, 7);
        w.end();
        let msgs = crate::netlink::attr::messages(&w.buf);
        assert_eq!(parse_entry(msgs[0].attrs()), Some(e));
    }
}
