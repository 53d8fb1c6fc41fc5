//! weft-trace: the path of a packet through a weft cluster, predicted from the live state of
//! every namespace on it and checked against the real thing.
//!
//! - [`endpoints`]: FROM / TO (a container, `node:NAME`, `ext`, `gw`, an IP) to a namespace.
//! - [`snapshot`]: one namespace's links, addresses, routes, neighbours and sysctls, read once.
//! - [`world`]: the lab's namespaces, veth peers and bridge segments, read lazily.
//! - [`lookup`], [`arp`]: route lookup and next-hop resolution as the kernel does them.
//! - [`simulate`]: hop by hop; each leg ends in a [`Disposition`] with its fix.
//! - [`render`]: text with tcpdump-like lines; JSON (schema in `SCHEMA.md`).
//! - [`verify`]: a real probe, packet captures on the predicted interfaces, compared hop by hop.
//! - [`doctor`]: checks every node for the faults that break paths, each with its fix.
//!
//! ```no_run
//! let t = weft_trace::trace("default", "web1", "b-web1", &weft_trace::TraceOptions::default())?;
//! print!("{}", weft_trace::render::text(&t));
//! # Ok::<(), anyhow::Error>(())
//! ```

pub mod arp;
pub mod disposition;
pub mod doctor;
pub mod endpoints;
pub mod flow;
mod kquery;
pub mod live;
pub mod lookup;
pub mod model;
pub mod netfilter;
pub mod pcap;
pub mod render;
mod run;
pub mod service_target;
pub mod simulate;
pub mod snapshot;
pub mod svg;
pub mod verify;
pub mod world;

#[cfg(test)]
mod testkit;

pub use disposition::{Disposition, Verdict};
pub use doctor::{doctor, DoctorReport, Finding};
pub use model::{Endpoint, Hop, Leg, Proto, Step, StepDetail, Trace};
pub use run::{probe_flow, trace, TraceOptions};
