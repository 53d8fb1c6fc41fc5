//! Calico's IPIP mode: each node's `tunl0` holds its tunnel address (from its own block, IPAM
//! handle `ipip-tunnel-addr-<node>`), and routes to remote blocks go `via <node's underlay
//! address> dev tunl0 onlink`: the kernel wraps each packet in an outer IPv4 header from this
//! node's address to that one. Nothing per peer is kept on the device; the route plan places
//! the routes (see [`crate::vxlan::pool_tunnel`], which decides for both tunnels).
//!
//! IPIP needs the kernel's `ipip` module. [`kernel_support`] finds out before anything is
//! made, and every failure for want of it says so in the same words ([`missing`]).

use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Context, Result};
use weft_ipam::Ipam;
use weft_model::{ipip_tunnel_handle, keys, Node, IPIP_DEVICE, IPIP_OVERHEAD};
use weft_netlink::{Handle, Link, Netns};
use weft_store::Store;

// Linux errno values a kernel without the ipip module answers link creation with.
const ENOENT: i32 = 2;
const ENODEV: i32 = 19;
const EOPNOTSUPP: i32 = 95;
const EAFNOSUPPORT: i32 = 97;

/// The error for a kernel without IPIP, `detail` saying how that was found.
pub fn missing(detail: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "IPIP needs the ipip kernel module, which this kernel does not have ({detail}); use --encap vxlan (Calico's VXLAN mode) instead"
    )
}

/// Whether a netlink error from creating an IPIP link means the kernel has no IPIP.
fn means_missing(e: &weft_netlink::Error) -> bool {
    matches!(e.errno(), Some(EOPNOTSUPP | ENODEV | EAFNOSUPPORT | ENOENT))
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Finds out whether this kernel has IPIP, changing nothing outside a namespace of its own:
/// yes when the module is loaded (or built in, `/sys/module/ipip`); otherwise an IPIP link is
/// created in a throwaway namespace, which makes the kernel load the module if it can.
/// `Err` is [`missing`] when it has not, or a failure to find out.
pub fn kernel_support() -> Result<()> {
    if Path::new("/sys/module/ipip").exists() {
        return Ok(());
    }
    let name = format!("weft.ipip-probe-{}", std::process::id());
    let ns = Netns::create_named(&name).context("create a namespace to probe for IPIP")?;
    let probe = (|| -> Result<()> {
        let mut h = Handle::in_netns(&ns)?;
        if h.link_by_name(IPIP_DEVICE)?.is_some() {
            return Ok(());
        }
        match h.create_ipip("weft.probe") {
            Ok(_) => Ok(()),
            Err(e) if means_missing(&e) => Err(missing(&format!(
                "kernel {}: no /sys/module/ipip, and creating an ipip link failed: {}",
                kernel_release(),
                e.io()
            ))),
            Err(e) => Err(anyhow::Error::new(e).context("probe for IPIP")),
        }
    })();
    drop(ns);
    if let Err(e) = Netns::delete_named(&name) {
        eprintln!("weft: remove the IPIP probe namespace {name}: {e}");
    }
    probe
}

/// Makes the node's `tunl0` exist (the kernel's fallback device, or one made here when the
/// namespace has none) up, with MTU the underlay's less 20 and exactly the node's IPIP tunnel
/// address, taken from `pool` under the handle `ipip-tunnel-addr-<node>` the first time. The
/// device comes first, so a kernel without IPIP fails ([`missing`]) before any address is
/// taken.
pub fn ensure(store: &dyn Store, h: &mut Handle, node: &str, pool: &str) -> Result<Link> {
    let (me, _) = weft_store::get_json::<Node>(store, &keys::node(node))?
        .with_context(|| format!("node {node} is not in the store"))?;
    let underlay = h
        .link_by_name(&me.interface)?
        .with_context(|| format!("underlay interface {} missing on {node}", me.interface))?;
    let link = match h.link_by_name(IPIP_DEVICE)? {
        Some(l) => l,
        None => match h.create_ipip(IPIP_DEVICE) {
            Ok(l) => l,
            Err(e) if means_missing(&e) => {
                return Err(missing(&format!(
                    "kernel {}: creating {IPIP_DEVICE} on node {node} failed: {}",
                    kernel_release(),
                    e.io()
                )))
            }
            Err(e) => return Err(anyhow::Error::new(e).context("create the IPIP device")),
        },
    };
    let tunnel = tunnel_address(store, node, pool)?;
    let mtu = underlay.mtu.saturating_sub(IPIP_OVERHEAD);
    crate::vxlan::settle_device(h, link, mtu, tunnel)
}

/// The node's IPIP tunnel address: the one its handle holds, or a new one from `pool`.
fn tunnel_address(store: &dyn Store, node: &str, pool: &str) -> Result<Ipv4Addr> {
    let ipam = Ipam::new(store);
    let handle = ipip_tunnel_handle(node);
    if let Some(ip) = ipam
        .handle(&handle)?
        .and_then(|h| h.addresses.first().copied())
    {
        return Ok(ip);
    }
    let ip = ipam
        .allocate(&handle, node, pool, None)
        .context("allocate the node's IPIP tunnel address")?;
    tracing::info!(tunnel = %ip, "IPIP tunnel address");
    Ok(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_missing_module_message_names_the_module_and_the_alternative() {
        let m = missing("kernel 6.1: no /sys/module/ipip").to_string();
        assert!(m.starts_with("IPIP needs the ipip kernel module"), "{m}");
        assert!(m.contains("kernel 6.1"), "{m}");
        assert!(m.contains("use --encap vxlan"), "{m}");
    }

    #[test]
    fn unsupported_link_kinds_mean_missing_other_errors_do_not() {
        let err = |errno| weft_netlink::Error::from_errno("create ipip", "tunl0", errno);
        assert!(means_missing(&err(EOPNOTSUPP)));
        assert!(means_missing(&err(ENODEV)));
        assert!(!means_missing(&err(1))); // EPERM: a permission problem, said as such
        assert!(!means_missing(&err(17))); // EEXIST
    }
}
