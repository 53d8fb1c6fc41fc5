//! Checks, made once per variant outside the timed region, that an attached container can
//! send; and a guard that the machine's own network namespace was left alone.

use std::net::{Ipv4Addr, UdpSocket};

use anyhow::{bail, ensure, Context, Result};
use weft_netlink::{run_in_netns, Handle, Netns};

/// Checks the container side: `eth0` holds `ip`; with a `peer`, `eth0` is up with carrier,
/// the kernel routes `peer` out of `eth0`, and a UDP datagram to it leaves. Returns a one-line
/// description of what was seen.
pub fn container(cns: &Netns, ip: Ipv4Addr, peer: Option<Ipv4Addr>) -> Result<String> {
    let mut h = Handle::in_netns(cns)?;
    let eth0 = h
        .link_by_name("eth0")?
        .context("no eth0 in the container netns")?;
    let addrs = h.addresses(Some(eth0.index))?;
    let a = addrs
        .iter()
        .find(|a| a.addr.addr() == ip)
        .with_context(|| format!("eth0 does not hold {ip} (it holds {addrs:?})"))?;
    let mut out = format!(
        "eth0 {} {}, {}",
        if eth0.up { "up" } else { "down" },
        if eth0.oper_up {
            "carrier"
        } else {
            "no-carrier"
        },
        a.addr
    );
    let Some(peer) = peer else {
        return Ok(out);
    };
    ensure!(
        eth0.up && eth0.oper_up,
        "eth0 is not operationally up: {out}"
    );
    let r = h
        .route_get(peer)
        .with_context(|| format!("route get {peer} in the container"))?;
    if r.oif != Some(eth0.index) {
        bail!(
            "route get {peer} in the container leaves by {:?}, not eth0",
            r.oif
        );
    }
    out += &format!("; route get {peer}: ");
    if let Some(gw) = r.gateway {
        out += &format!("via {gw} ");
    }
    out += "dev eth0";
    let sent = run_in_netns(cns, move || -> std::io::Result<usize> {
        let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        s.send_to(b"weft-bench", (peer, 9))
    })?
    .with_context(|| format!("send a UDP datagram to {peer}:9 from the container"))?;
    out += &format!("; sent a {sent}-byte UDP datagram to {peer}:9");
    Ok(out)
}

/// Checks the node side: the node routes `ip` out of the device named `dev`.
pub fn node_route(node: &mut Handle, ip: Ipv4Addr, dev: &str) -> Result<String> {
    let link = node
        .link_by_name(dev)?
        .with_context(|| format!("no {dev} in the node netns"))?;
    let r = node
        .route_get(ip)
        .with_context(|| format!("route get {ip} in the node"))?;
    ensure!(
        r.oif == Some(link.index),
        "the node routes {ip} by {:?}, not {dev}",
        r.oif
    );
    Ok(format!("node: route get {ip}: dev {dev}"))
}

/// What of the root network namespace the bench could conceivably disturb.
#[derive(Debug, PartialEq, Eq)]
pub struct RootSnapshot {
    links: Vec<String>,
    ip_forward: String,
}

impl RootSnapshot {
    /// Reads the link names and `net.ipv4.ip_forward` of the namespace this (main) thread is
    /// in: the bench only ever joins other namespaces from short-lived threads.
    pub fn take() -> Result<RootSnapshot> {
        let mut h = Handle::new()?;
        let mut links: Vec<String> = h.links()?.into_iter().map(|l| l.name).collect();
        links.sort();
        let ip_forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .context("read /proc/sys/net/ipv4/ip_forward")?
            .trim()
            .to_string();
        Ok(RootSnapshot { links, ip_forward })
    }

    /// Fails if the bench's kind of link (`cni-bench0`, `cali…`, `veth…`) appeared in the root
    /// namespace or its IP forwarding changed.
    pub fn unchanged(&self) -> Result<()> {
        let now = RootSnapshot::take()?;
        let ours =
            |n: &str| n == crate::cni::BRIDGE || n.starts_with("cali") || n.starts_with("veth");
        let new: Vec<&String> = now
            .links
            .iter()
            .filter(|n| ours(n) && !self.links.contains(n))
            .collect();
        ensure!(
            new.is_empty(),
            "new links in the root network namespace: {new:?}; this should never happen, report it"
        );
        ensure!(
            now.ip_forward == self.ip_forward,
            "net.ipv4.ip_forward of the root netns changed from {} to {}; restore it with `sysctl -w net.ipv4.ip_forward={}`",
            self.ip_forward,
            now.ip_forward,
            self.ip_forward
        );
        Ok(())
    }
}
