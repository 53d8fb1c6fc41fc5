//! A multi-node cluster on one machine, out of network namespaces (DESIGN.md, "Lab"):
//!
//! - `weft-<lab>-fabric`: a bridge, the switch every member plugs into;
//! - `weft-<lab>-<node>`: one per node, `eth0` on 198.51.100.0/24 (.11, .12, … in node order),
//!   an agent running inside; nodes given another subnet (`--subnet NODE=CIDR`) sit on a
//!   segment of their own that the gateway routes to (see [`subnets`]);
//! - `weft-<lab>-gw`: the default gateway 198.51.100.1, owning 203.0.113.1 ("the internet");
//! - `weft-<lab>-ext`: an outside client at 198.51.100.200;
//! - `weft-<lab>-etcd`: with `--store etcd`, the cluster's etcd at 198.51.100.2.
//!
//! The machine's own network namespace is never touched: every link, address, route and sysctl
//! is made inside the lab's namespaces, and `down` removes all of them with the lab's state.

mod down;
pub mod etcd;
mod info;
mod isolate;
mod join;
mod leave;
mod members;
pub mod subnets;
mod up;

pub use down::down;
pub use info::{list, load, LabInfo, LabNode};
pub use join::{agent_pid_file, agent_worker_pid, node_add};
pub use leave::{forget_node, node_rm};
pub use members::{exec, member_netns, EXT_ADDR, GW_ADDR, INTERNET_ADDR};
pub use up::{up, up_with_store, LabOptions, LabStore};

/// Lab names become part of namespace and path names: keep them short and plain.
pub fn validate_lab_name(name: &str) -> anyhow::Result<()> {
    Ok(weft_model::validate_lab_name(name)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn lab_names() {
        assert!(super::validate_lab_name("default").is_ok());
        assert!(super::validate_lab_name("t-123").is_ok());
        assert!(super::validate_lab_name("").is_err());
        assert!(super::validate_lab_name("A").is_err());
        assert!(super::validate_lab_name("a/b").is_err());
        assert!(super::validate_lab_name(&"a".repeat(25)).is_err());
    }
}
