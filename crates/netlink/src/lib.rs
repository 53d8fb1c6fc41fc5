//! weft-netlink: synchronous rtnetlink and network-namespace handles.
//!
//! - [`Netns`]: a handle on a network namespace (`/proc/<pid>/ns/net`,
//!   `/run/netns/<name>`), with `ip netns add/delete`-like helpers.
//! - [`run_in_netns`]: run a closure on a short-lived thread that joined a
//!   namespace (no thread is ever left in a foreign namespace).
//! - [`sysctl_set`] / [`sysctl_get`]: per-namespace sysctls.
//! - [`Handle`]: a blocking `NETLINK_ROUTE` socket bound to one namespace, for
//!   links (veth, bridge, vxlan), IPv4 addresses, routes, neighbours and fdb entries;
//!   [`Batch`] sends several requests in one datagram.
//!
//! Every fallible function returns [`Error`], which names the operation, the object
//! and the OS errno, e.g. `create veth cali1234 (peer eth0): File exists (os error 17)`.
//!
//! No external program is ever run.

mod addr;
mod batch;
mod error;
mod handle;
mod link;
mod link_spec;
mod mac;
mod neigh;
mod netns;
mod route;
mod sysctl;

#[cfg(test)]
mod msg_tests;

pub use addr::Address;
pub use batch::Batch;
pub use error::{Error, Result};
pub use handle::Handle;
pub use link::Link;
pub use link_spec::{LinkChange, VethSpec, IPV4_DEVCONF_FORWARDING, IPV4_DEVCONF_PROXY_ARP};
pub use mac::{format_mac, parse_mac};
pub use neigh::{FdbEntry, Neighbour, NUD_NOARP, NUD_PERMANENT, NUD_REACHABLE, NUD_STALE};
pub use netns::{run_in_netns, Netns, NETNS_RUN_DIR};
pub use route::{
    Route, RouteKind, RouteScope, RTPROT_BOOT, RTPROT_KERNEL, RTPROT_STATIC, TABLE_LOCAL,
    TABLE_MAIN,
};
pub use sysctl::{sysctl_get, sysctl_set, sysctls_set};

pub use ipnet::Ipv4Net;

/// Interface index of `lo` in every network namespace.
pub const LOOPBACK_INDEX: u32 = 1;
