//! The etcd backend: the cluster's state in an etcd v3 cluster, shared by many hosts.
//!
//! **Revisions.** etcd numbers the revisions of an empty cluster from 1 and bumps the number by
//! one per transaction that changes something, all changes of a transaction sharing it; the
//! [`Store`](crate::Store) contract does the same from 0. So a weft revision is etcd's minus
//! one ([`to_weft`], [`to_etcd`]): a fresh etcd reads as revision 0, its first write as 1, and
//! "mod revision 0" still means "absent". On an etcd that already held other writes, weft's
//! revisions simply start higher; callers only compare revisions and resume watches from them,
//! which the mapping keeps exact. Compacting to weft revision K compacts etcd to K+1, which
//! keeps the events of weft revision K and later, as the contract says.
//!
//! **Threads.** etcd-client is async; the store's API stays synchronous. Each [`EtcdStore`]
//! owns one thread ("weft-etcd") running a current-thread tokio runtime; calls send it a job
//! over a channel and wait for the answer, each bounded by [`REQUEST_TIMEOUT`]. With
//! `?netns=NAME` that thread enters the network namespace `/run/netns/NAME` before its runtime
//! is built, so every socket of the store lives there (how the CLI in the machine's namespace
//! reaches a lab's etcd on the lab's underlay); the calling threads stay where they are.
//!
//! **Faults.** When etcd is down or stopped, every call fails after at most
//! [`REQUEST_TIMEOUT`] with an error naming the store and what to check; watches do not fail
//! but keep reconnecting and resume after the last revision they delivered (see `watch`).
//!
//! **Limits** (etcd's): a transaction may not name the same key twice (a put and a delete of
//! one key, or a put under a prefix that it also deletes), and holds at most `--max-txn-ops`
//! operations (etcd's default 128; the lab starts etcd with more).

use std::time::Duration;

use crate::{Error, KeyValue, Result, Revision};

mod kv;
mod watch;
mod worker;

pub use kv::EtcdStore;

/// Bound of each request (and of the connection it may need to make).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound of establishing a TCP connection to an endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// HTTP/2 pings: a connection to an etcd that stopped answering (SIGSTOP, cable pulled) is
/// given up after `KEEPALIVE` + `KEEPALIVE` without an answer, so that watches reconnect.
const KEEPALIVE: Duration = Duration::from_secs(2);

/// A parsed `etcd://HOST:PORT[,HOST:PORT...][?netns=NAME]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdUrl {
    /// `HOST:PORT` of each member.
    pub endpoints: Vec<String>,
    /// Named network namespace (under /run/netns) that the store's sockets live in.
    pub netns: Option<String>,
}

impl EtcdUrl {
    /// Parses the URL; errors say what is wrong and how a good one looks.
    pub fn parse(url: &str) -> Result<EtcdUrl> {
        let bad = |why: &str| {
            Error::Backend(format!(
                "store {url}: {why}; write etcd://HOST:PORT[,HOST:PORT...][?netns=NAME]"
            ))
        };
        let rest = url
            .strip_prefix("etcd://")
            .ok_or_else(|| bad("not an etcd URL"))?;
        let (hosts, query) = match rest.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (rest, None),
        };
        let hosts = hosts.strip_suffix('/').unwrap_or(hosts);
        let mut endpoints = Vec::new();
        for ep in hosts.split(',') {
            let ep = ep.trim();
            let Some((host, port)) = ep.rsplit_once(':') else {
                return Err(bad(&format!("endpoint {ep:?} has no :PORT")));
            };
            if host.is_empty() || host.contains('/') || port.parse::<u16>().is_err() {
                return Err(bad(&format!("endpoint {ep:?} is not HOST:PORT")));
            }
            endpoints.push(ep.to_string());
        }
        let mut netns = None;
        for kv in query.into_iter().flat_map(|q| q.split('&')) {
            match kv.split_once('=') {
                Some(("netns", name))
                    if !name.is_empty() && !name.contains('/') && name != "." && name != ".." =>
                {
                    netns = Some(name.to_string())
                }
                _ => return Err(bad(&format!("unknown or invalid parameter {kv:?}"))),
            }
        }
        Ok(EtcdUrl { endpoints, netns })
    }

    /// The URL again, in its canonical form.
    pub fn to_url(&self) -> String {
        let mut s = format!("etcd://{}", self.endpoints.join(","));
        if let Some(ns) = &self.netns {
            s.push_str("?netns=");
            s.push_str(ns);
        }
        s
    }
}

/// The weft revision of an etcd revision (0 stays 0: "none", as in a deletion's create
/// revision).
pub(crate) fn to_weft(etcd: i64) -> Revision {
    (etcd - 1).max(0)
}

/// The etcd revision of a weft revision.
pub(crate) fn to_etcd(rev: Revision) -> i64 {
    rev + 1
}

/// A key-value of etcd in weft's terms.
pub(crate) fn kv_from_etcd(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    let key = kv
        .key_str()
        .map_err(|e| Error::Codec(format!("etcd key {:?} is not UTF-8: {e}", kv.key())))?;
    Ok(KeyValue {
        key: key.to_string(),
        value: kv.value().to_vec(),
        create_revision: to_weft(kv.create_revision()),
        mod_revision: to_weft(kv.mod_revision()),
        version: kv.version(),
    })
}

/// etcd's answer when a revision asked for is older than its compaction point.
pub(crate) fn is_compacted(e: &etcd_client::Error) -> bool {
    e.to_string()
        .contains("required revision has been compacted")
}

/// etcd's answer when a revision asked for is newer than its current one.
pub(crate) fn is_future(e: &etcd_client::Error) -> bool {
    e.to_string()
        .contains("required revision is a future revision")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = EtcdUrl::parse("etcd://198.51.100.2:2379?netns=weft-a-etcd").unwrap();
        assert_eq!(u.endpoints, ["198.51.100.2:2379"]);
        assert_eq!(u.netns.as_deref(), Some("weft-a-etcd"));
        assert_eq!(u.to_url(), "etcd://198.51.100.2:2379?netns=weft-a-etcd");
        let u = EtcdUrl::parse("etcd://a:1,b:2/").unwrap();
        assert_eq!(u.endpoints, ["a:1", "b:2"]);
        assert_eq!(u.netns, None);
        for bad in [
            "etcd://",
            "etcd://a",
            "etcd://a:x",
            "etcd://:1",
            "etcd://a:1,",
            "etcd://a:1?netns=",
            "etcd://a:1?netns=../x",
            "etcd://a:1?foo=1",
            "http://a:1",
        ] {
            assert!(EtcdUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn revision_mapping() {
        assert_eq!(to_weft(1), 0);
        assert_eq!(to_weft(0), 0);
        assert_eq!(to_weft(to_etcd(41)), 41);
    }
}
