//! Wiring of one routed workload (Calico style), done synchronously when it starts, like a CNI ADD:
//!
//! - a veth pair: `caliXXXXXXXXXXX` on the node, `eth0` in the container;
//! - container: `IP/32` on `eth0`, `default via 169.254.1.1 dev eth0 onlink`, `lo` up, no IPv6
//!   address on `eth0` (`addrgenmode none`);
//! - node: host end with MAC ee:ee:ee:ee:ee:ee, proxy ARP on, proxy delay 0, forwarding on,
//!   and `IP/32 dev caliX scope link`.
//!
//! Everything is done by netlink requests on the node's handle and one handle in the container:
//! no sysctl writes, so no short-lived threads entering namespaces.
//!
//! Any failure undoes what was made, so a failed attach leaves no link behind.

use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use ipnet::Ipv4Net;
use weft_model::{HOST_IFACE_MAC, ROUTE_PROTO, WORKLOAD_GATEWAY};
use weft_netlink::{
    Batch, Handle, Link, LinkChange, Netns, Route, VethSpec, IPV4_DEVCONF_FORWARDING,
    IPV4_DEVCONF_PROXY_ARP,
};

/// What to wire.
#[derive(Clone, Debug)]
pub struct Endpoint<'a> {
    /// Host end name (`cali…`).
    pub host_iface: &'a str,
    pub ip: Ipv4Addr,
    /// MTU of both ends (None: kernel default).
    pub mtu: Option<u32>,
}

/// Name of the interface inside the container.
pub const CONTAINER_IFACE: &str = "eth0";

/// Wires `ep` between the node's netns and the container's. On error nothing is left behind.
/// `node` must be a handle in the node's netns (`_node_ns`, no longer needed: nothing is done
/// through sysctls).
pub fn attach(
    node: &mut Handle,
    _node_ns: &Netns,
    container_ns: &Netns,
    ep: &Endpoint,
) -> Result<()> {
    // One request makes both ends: host end with its MAC (and MTU), peer `eth0` in the container.
    let mut spec = VethSpec::new(ep.host_iface, CONTAINER_IFACE)
        .mac(HOST_IFACE_MAC)
        .up()
        .peer_ns(container_ns);
    if let Some(mtu) = ep.mtu {
        spec = spec.mtu(mtu);
    }
    with_veth(node, &spec, ep.host_iface, |node, host| {
        wire(node, container_ns, ep, host)
    })
}

/// Creates the veth of `spec` (host end `host_iface` in `node`'s namespace, `eth0` in the
/// container's) and runs `wire` on it; when that fails the veth is deleted again (both ends
/// go with it), so nothing is left behind.
pub(crate) fn with_veth(
    node: &mut Handle,
    spec: &VethSpec,
    host_iface: &str,
    wire: impl FnOnce(&mut Handle, &Link) -> Result<()>,
) -> Result<()> {
    let host = node
        .create_veth_with(spec)
        .with_context(|| format!("create veth {host_iface} <-> {CONTAINER_IFACE}"))?;
    let res = wire(node, &host);
    if res.is_err() {
        let _ = node.delete_link(host.index);
    }
    res
}

fn wire(node: &mut Handle, container_ns: &Netns, ep: &Endpoint, host: &Link) -> Result<()> {
    let iface = ep.host_iface;
    let ip32 = Ipv4Net::new(ep.ip, 32).expect("/32 is valid");
    // Node side, one datagram: proxy ARP + forwarding (RTM_SETLINK), proxy delay 0
    // (RTM_SETNEIGHTBL), the /32 route. No sysctl writes, so no thread enters a namespace.
    let node_side = Batch::new()
        .set_link(
            host.index,
            &LinkChange::new()
                .inet_conf(&[(IPV4_DEVCONF_PROXY_ARP, 1), (IPV4_DEVCONF_FORWARDING, 1)]),
        )
        .set_neigh_proxy_delay(host.index, 0)
        .replace_route(
            &Route::new(ip32)
                .dev(host.index)
                .scope_link()
                .proto(ROUTE_PROTO),
        );
    node.run_batch(&node_side).with_context(|| {
        format!("proxy ARP, forwarding, proxy delay and route {ip32} of {iface}")
    })?;

    // Container side, one datagram, run in order by the kernel.
    let eth0 = host
        .link
        .context("the kernel did not report the container end's index")?;
    let container_side = Batch::new()
        .set_up(weft_netlink::LOOPBACK_INDEX)
        // IPv4 only, like Docker on a network without IPv6: no IPv6 address generation on
        // eth0 (no link-local address, so no IPv6 traffic). Must precede bringing it up.
        .set_link(eth0, &LinkChange::new().no_ipv6_addr_gen())
        .add_address(eth0, ip32)
        .set_up(eth0)
        .add_route(
            &Route::new("0.0.0.0/0".parse().expect("constant"))
                .via(WORKLOAD_GATEWAY)
                .dev(eth0)
                .onlink(),
        );
    let mut c =
        Handle::in_netns(container_ns).context("netlink socket in the container's netns")?;
    c.run_batch(&container_side).with_context(|| {
        format!("lo up, eth0 {ip32} up, default via {WORKLOAD_GATEWAY} in the container")
    })?;
    Ok(())
}

/// Removes the workload's host end (its peer and the /32 route go with it). Absent is fine.
pub fn detach(node: &mut Handle, host_iface: &str) -> Result<()> {
    if let Some(link) = node.link_by_name(host_iface)? {
        match node.delete_link(link.index) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e).with_context(|| format!("delete {host_iface}")),
        }
    }
    Ok(())
}

/// Releases a routed workload's wiring on the node after its container's last process has
/// exited, without waiting for its veth: deletes the workload's `/32` route (so its address
/// may be given to another workload at once) and leaves the pair to the kernel, which removes
/// it with the dying namespace, in its own time.
///
/// Why not wait, or delete the veth here: either costs the kernel's RCU work, not ours:
/// measured on the 2-core test VM, 5-35 ms from a namespace's deletion until its veth is gone,
/// and 16-37 ms to delete a veth between two live namespaces. `weft run --rm` spent half its
/// time waiting for it (bench/README.md, "runtime"). Once its route is gone the old veth
/// carries nothing: no route leads to it, and traffic from it hits the fail-closed drop for
/// unknown workload interfaces. Only for a namespace that lives on (shared with another
/// container) must the veth be deleted: [`detach`].
pub fn unroute(node: &mut Handle, host_iface: &str, ip: Ipv4Addr) -> Result<()> {
    let Some(link) = node.link_by_name(host_iface)? else {
        return Ok(()); // already gone, with its route
    };
    let ip32 = Ipv4Net::new(ip, 32).expect("/32 is valid");
    match node.del_route(&Route::new(ip32).dev(link.index)) {
        Ok(()) => Ok(()),
        // Gone meanwhile (with the link), or never made.
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e).with_context(|| format!("delete the route {ip32} of {host_iface}")),
    }
}

/// Removes a workload's veth whose other end is in a network namespace being torn down (its
/// container's last process has exited): waits up to `grace` for the kernel to remove the
/// pair with that namespace, and deletes the link itself only if it is still there then (the
/// namespace is held elsewhere).
///
/// Why wait rather than delete at once: deleting a link ends in an RCU barrier, which right
/// after a container's exit waits for all the RCU work its teardown queued. Measured on the
/// 2-core test machine after `weft run --rm ... true`: 12-55 ms for the delete, 0-13 ms
/// until the kernel had removed the pair itself.
pub fn detach_after_teardown(
    node: &mut Handle,
    host_iface: &str,
    grace: std::time::Duration,
) -> Result<()> {
    let deadline = std::time::Instant::now() + grace;
    while node.link_by_name(host_iface)?.is_some() {
        if std::time::Instant::now() >= deadline {
            return detach(node, host_iface);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Named test namespaces, deleted on drop (also on panic).
    struct TestNs(Vec<String>);

    impl Drop for TestNs {
        fn drop(&mut self) {
            for n in &self.0 {
                let _ = Netns::delete_named(n);
            }
        }
    }

    fn proc_sys(ns: &Netns, key: &str) -> String {
        weft_netlink::sysctl_get(ns, key).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Root only: what `attach` leaves, as seen through /proc in the two namespaces.
    #[test]
    fn attach_settings_seen_through_proc() {
        if !is_root() {
            eprintln!("skipping attach_settings_seen_through_proc: needs root");
            return;
        }
        let pid = std::process::id();
        let names = [format!("weft-t{pid}-epnode"), format!("weft-t{pid}-epctr")];
        let guard = TestNs(names.to_vec());
        let node_ns = Netns::create_named(&guard.0[0]).unwrap_or_else(|e| panic!("{e}"));
        let ctr_ns = Netns::create_named(&guard.0[1]).unwrap_or_else(|e| panic!("{e}"));
        let mut node = Handle::in_netns(&node_ns).unwrap_or_else(|e| panic!("{e}"));
        let ep = Endpoint {
            host_iface: "calitest0000001",
            ip: Ipv4Addr::new(10, 244, 0, 7),
            mtu: None,
        };
        attach(&mut node, &node_ns, &ctr_ns, &ep).unwrap_or_else(|e| panic!("{e:#}"));
        let conf = "net/ipv4/conf/calitest0000001";
        assert_eq!(proc_sys(&node_ns, &format!("{conf}/proxy_arp")), "1");
        assert_eq!(proc_sys(&node_ns, &format!("{conf}/forwarding")), "1");
        assert_eq!(
            proc_sys(&node_ns, "net/ipv4/neigh/calitest0000001/proxy_delay"),
            "0"
        );
        // No IPv6 address on eth0 (`ip -6 addr`), even after addrconf had its chance.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let v6 = weft_netlink::run_in_netns(&ctr_ns, || {
            std::fs::read_to_string("/proc/thread-self/net/if_inet6")
        })
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_default();
        assert!(!v6.lines().any(|l| l.ends_with(" eth0")), "{v6}");
        let mut c = Handle::in_netns(&ctr_ns).unwrap_or_else(|e| panic!("{e}"));
        let eth0 = c
            .link_by_name(CONTAINER_IFACE)
            .unwrap_or_else(|e| panic!("{e}"))
            .expect("eth0");
        assert!(eth0.up, "{eth0:?}");
        detach(&mut node, ep.host_iface).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(
            node.link_by_name(ep.host_iface)
                .unwrap_or_else(|e| panic!("{e}")),
            None
        );
    }

    /// Root only: when the container's namespace goes away, the kernel removes the pair and
    /// `detach_after_teardown` only waits; when the namespace is still held, it deletes the
    /// veth itself once the grace has passed.
    #[test]
    fn detach_after_teardown_waits_for_the_kernel_or_deletes() {
        if !is_root() {
            eprintln!("skipping detach_after_teardown_waits_for_the_kernel_or_deletes: needs root");
            return;
        }
        let pid = std::process::id();
        let names = [
            format!("weft-t{pid}-tdnode"),
            format!("weft-t{pid}-tdc1"),
            format!("weft-t{pid}-tdc2"),
        ];
        let guard = TestNs(names.to_vec());
        let node_ns = Netns::create_named(&guard.0[0]).unwrap_or_else(|e| panic!("{e}"));
        let mut node = Handle::in_netns(&node_ns).unwrap_or_else(|e| panic!("{e}"));
        let gone = |node: &mut Handle, name: &str| {
            node.link_by_name(name)
                .unwrap_or_else(|e| panic!("{e}"))
                .is_none()
        };

        // The namespace dies (its last reference, the name, goes): the kernel removes the pair.
        let c1 = Netns::create_named(&guard.0[1]).unwrap_or_else(|e| panic!("{e}"));
        node.create_veth("weftteardown01", "eth0", Some(&c1))
            .unwrap_or_else(|e| panic!("{e}"));
        drop(c1);
        Netns::delete_named(&guard.0[1]).unwrap_or_else(|e| panic!("{e}"));
        let grace = std::time::Duration::from_secs(20);
        detach_after_teardown(&mut node, "weftteardown01", grace)
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert!(gone(&mut node, "weftteardown01"));

        // The namespace lives on: after the grace the veth is deleted here.
        let c2 = Netns::create_named(&guard.0[2]).unwrap_or_else(|e| panic!("{e}"));
        node.create_veth("weftteardown02", "eth0", Some(&c2))
            .unwrap_or_else(|e| panic!("{e}"));
        let start = std::time::Instant::now();
        let grace = std::time::Duration::from_millis(50);
        detach_after_teardown(&mut node, "weftteardown02", grace)
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert!(start.elapsed() >= grace);
        assert!(gone(&mut node, "weftteardown02"));
    }

    /// Root only: `unroute` takes the workload's route away at once and leaves its veth to
    /// the kernel, which removes it with the namespace.
    #[test]
    fn unroute_drops_the_route_and_leaves_the_veth_to_the_kernel() {
        if !is_root() {
            eprintln!(
                "skipping unroute_drops_the_route_and_leaves_the_veth_to_the_kernel: needs root"
            );
            return;
        }
        let pid = std::process::id();
        let names = [format!("weft-t{pid}-urnode"), format!("weft-t{pid}-urctr")];
        let guard = TestNs(names.to_vec());
        let node_ns = Netns::create_named(&guard.0[0]).unwrap_or_else(|e| panic!("{e}"));
        let ctr_ns = Netns::create_named(&guard.0[1]).unwrap_or_else(|e| panic!("{e}"));
        let mut node = Handle::in_netns(&node_ns).unwrap_or_else(|e| panic!("{e}"));
        let ip = Ipv4Addr::new(10, 244, 7, 9);
        let ep = Endpoint {
            host_iface: "caliunroute01",
            ip,
            mtu: None,
        };
        attach(&mut node, &node_ns, &ctr_ns, &ep).unwrap_or_else(|e| panic!("{e:#}"));
        let has_route = |node: &mut Handle| {
            node.routes(254)
                .unwrap_or_else(|e| panic!("{e}"))
                .iter()
                .any(|r| r.dst == Ipv4Net::new(ip, 32).unwrap())
        };
        assert!(has_route(&mut node));
        unroute(&mut node, "caliunroute01", ip).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(!has_route(&mut node), "the route goes at once");
        assert!(
            node.link_by_name("caliunroute01").unwrap().is_some(),
            "the veth is left to the kernel"
        );
        // Again, and for a veth already gone: nothing to do, no error.
        unroute(&mut node, "caliunroute01", ip).unwrap_or_else(|e| panic!("{e:#}"));
        unroute(&mut node, "calinosuchlnk", ip).unwrap_or_else(|e| panic!("{e:#}"));
        // The namespace dies: the kernel removes the pair.
        drop(ctr_ns);
        Netns::delete_named(&guard.0[1]).unwrap_or_else(|e| panic!("{e}"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while node.link_by_name("caliunroute01").unwrap().is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "the kernel removes the veth"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// True when running as root (`/proc/self` belongs to the effective uid).
    fn is_root() -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    }
}
