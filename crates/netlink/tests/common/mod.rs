//! Helpers of the root-only integration tests: skip unless root, unique names,
//! namespaces deleted on drop (also on panic), and a check that the machine's own
//! network namespace was left alone.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use weft_netlink::{Handle, Netns, Route};

/// True when the tests may create namespaces; prints why not otherwise.
pub fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        true
    } else {
        eprintln!("skipping {test}: needs root");
        false
    }
}

/// A name unique to this process and call, like `weft-t1234-3-tag`.
pub fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("weft-t{}-{n}-{tag}", std::process::id())
}

/// A named namespace deleted when dropped.
pub struct TestNs {
    pub name: String,
    pub ns: Netns,
}

impl TestNs {
    /// Creates `weft-t<pid>-<n>-<tag>`.
    pub fn new(tag: &str) -> TestNs {
        let name = unique(tag);
        let ns = Netns::create_named(&name).unwrap_or_else(|e| panic!("{e}"));
        TestNs { name, ns }
    }

    /// A netlink handle inside the namespace.
    pub fn handle(&self) -> Handle {
        Handle::in_netns(&self.ns).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        if let Err(e) = Netns::delete_named(&self.name) {
            eprintln!("cleanup of netns {}: {e}", self.name);
        }
    }
}

/// What the root namespace looked like; compare at the end of a test.
pub struct RootState {
    links: Vec<String>,
    routes: Vec<Route>,
    ip_forward: String,
}

impl RootState {
    pub fn capture() -> RootState {
        let mut h = Handle::new().unwrap_or_else(|e| panic!("{e}"));
        let mut links: Vec<_> = h
            .links()
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|l| {
                format!(
                    "{} {} {:?} mtu {} up {} master {:?}",
                    l.index, l.name, l.kind, l.mtu, l.up, l.master
                )
            })
            .collect();
        links.sort();
        let mut routes = h.routes(254).unwrap_or_else(|e| panic!("{e}"));
        routes.sort_by_key(|r| r.to_string());
        let ip_forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .unwrap_or_else(|e| panic!("read root ip_forward: {e}"));
        RootState {
            links,
            routes,
            ip_forward,
        }
    }

    pub fn assert_unchanged(&self) {
        let now = RootState::capture();
        assert_eq!(now.links, self.links, "root netns links changed");
        assert_eq!(now.routes, self.routes, "root netns routes changed");
        assert_eq!(now.ip_forward, self.ip_forward, "root ip_forward changed");
    }
}

/// Parses a prefix in tests.
pub fn net(s: &str) -> weft_netlink::Ipv4Net {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// Parses an address in tests.
pub fn ip(s: &str) -> std::net::Ipv4Addr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}
