//! weft-dns: the name service each node runs for its containers.
//!
//! Containers point their `resolv.conf` at their node's server. It answers:
//!
//! - **container names** across all nodes (`NAME`, or `NAME.NETWORK`), case-insensitively, but
//!   only to askers that share the container's network (the asker is identified by its source
//!   address; an asker that is not a workload, such as the node itself, sees every name);
//! - **service names**: `NAME`, `NAME.NAMESPACE`, `NAME.NAMESPACE.svc` and
//!   `NAME.NAMESPACE.svc.cluster.local` give the service's cluster IP to everyone;
//! - **reverse lookups** (`PTR`) of workload and service addresses;
//! - unknown names that are weft's (single labels, anything under `cluster.local`, `X.NETWORK`,
//!   `X.NAMESPACE`, and reverse names in the pools and the service range) get `NXDOMAIN`;
//! - everything else is forwarded to an upstream server when one is configured, or `REFUSED`.
//!
//! [`Zone`] is the pure part: the names known at one store revision and the answer to one query
//! message. [`Server`] serves a zone over UDP and TCP and rebuilds it whenever the store changes,
//! swapping it in atomically so that no query is dropped during an update.
//!
//! # Why hickory-proto with our own server loop
//!
//! hickory-server is built on tokio and wants an authority/catalog model with async request
//! handlers; our answers are computed from an in-memory snapshot in microseconds and the rest of
//! weft is synchronous. So this crate uses `hickory-proto` only to decode and encode DNS messages
//! (the part worth not writing ourselves) and serves them with a few std threads: one receive
//! loop per UDP socket, one accept loop per TCP listener plus a thread per connection, and one
//! store watcher. Only forwarded queries block (on the upstream), and they run on threads of
//! their own, so a slow upstream never delays the answers for local names.

mod forward;
mod lookup;
mod message;
mod refresh;
mod server;
mod services;
mod tcp;
mod zone;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;

pub use forward::upstream_from_resolv_conf;
pub use server::Server;
pub use services::{services_from_store, services_of_state, ServiceName, SERVICES};
pub use zone::Zone;

/// The port DNS servers listen on.
pub const DNS_PORT: u16 = 53;
/// Time to live of the records weft answers with, in seconds, unless [`DnsOptions::ttl`] says
/// otherwise. Short, because containers come and go.
pub const DEFAULT_TTL: u32 = 5;
/// The cluster domain of service names (`NAME.NAMESPACE.svc.cluster.local`).
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// How a [`Server`] behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsOptions {
    /// Where names that are not weft's are forwarded (over UDP, then TCP if the answer was
    /// truncated and the client asked over TCP); `None` answers them with `REFUSED`.
    pub upstream: Option<SocketAddr>,
    /// Time to live of weft's own records, in seconds.
    pub ttl: u32,
}

impl Default for DnsOptions {
    fn default() -> Self {
        DnsOptions {
            upstream: None,
            ttl: DEFAULT_TTL,
        }
    }
}
