//! What `docker run` means in weft: image → bundle → runtime create → network attach → start,
//! and the rest of a container's life (stop, rm, ps, inspect, logs, exec), over the store.

mod bridge_net;
mod cluster;
mod container;
pub mod inspect;
mod network;
pub mod resources;
pub mod services;
mod view;

pub use cluster::{require_root, Cluster, NodeRef};
pub use container::{
    exec, inspect, kill, logs, ps, remove, run, stats, stop, wait_for_agents, RunOptions,
    RunOutcome,
};
pub use network::{create_network, inspect_network, list_networks, remove_network, NetworkOptions};
pub use view::{ContainerView, State};
