//! A node's dataplane: what the kernel of one node must hold, computed from the store, and the
//! code that makes the kernel hold it.
//!
//! - [`ClusterState`]: one consistent read of the store (nodes, networks, workloads, blocks).
//! - [`plan`]: the routes a node needs (blackhole per local block, one route per remote block,
//!   a /32 per local workload), pure and unit-tested.
//! - [`apply`]: diff the plan against the kernel's routes owned by weft and fix the difference.
//! - [`endpoint`]: the per-workload wiring done synchronously at `run` (veth, addresses, proxy ARP).
//! - [`bridge`], [`bridge_ipam`]: the same for bridge networks (bridge per network and node,
//!   a subnet per node).

pub mod bridge;
pub mod bridge_ipam;
mod bridge_routes;
pub mod endpoint;
pub mod ipip;
mod plan;
pub mod rules;
mod state;
pub mod vxlan;

pub use plan::{apply, owned_routes, plan, Applied, NodePlan, PlanInput};
pub use state::{Changes, ClusterState, StateCache};
