//! A container as `ps` and `inspect` show it: the store's record joined with the runtime's state.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Serialize;
use weft_model::Workload;

/// Life-cycle state as users know it from Docker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Created,
    Running,
    Exited,
    /// The record exists but its node has no runtime state for it.
    Unknown,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Created => "created",
            State::Running => "running",
            State::Exited => "exited",
            State::Unknown => "unknown",
        })
    }
}

/// One container, for output (`ps -o json` is an array of these, `inspect -o json` one).
#[derive(Clone, Debug, Serialize)]
pub struct ContainerView {
    pub name: String,
    pub id: String,
    pub node: String,
    pub network: String,
    pub ip: Option<Ipv4Addr>,
    pub state: State,
    pub pid: Option<i32>,
    pub exit_code: Option<i32>,
    /// The kernel's OOM killer ended it (memory limit reached).
    pub oom_killed: bool,
    pub restart_count: u32,
    /// Why the runtime stopped it, when it did not exit by itself.
    pub error: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub image: String,
    pub command: Vec<String>,
    pub host_iface: String,
    pub created: u64,
    /// Published ports, like docker ps: `0.0.0.0:8080->80/tcp`.
    pub ports: Vec<String>,
}

impl ContainerView {
    pub fn new(w: &Workload, rt: Option<&weft_runtime::State>) -> ContainerView {
        let oom_killed = rt.is_some_and(|s| s.oom_killed);
        let restart_count = rt.map(|s| s.restart_count).unwrap_or(0);
        let error = rt.and_then(|s| s.error.clone());
        let (state, pid, exit_code) = match rt {
            None => (State::Unknown, None, None),
            Some(s) => {
                let st = match s.status {
                    weft_runtime::Status::Created => State::Created,
                    weft_runtime::Status::Running => State::Running,
                    weft_runtime::Status::Stopped => State::Exited,
                };
                let pid = (st == State::Running || st == State::Created).then_some(s.pid);
                (st, pid, s.exit_code)
            }
        };
        ContainerView {
            name: w.name.clone(),
            id: w.id.clone(),
            node: w.node.clone(),
            network: w.network.clone(),
            ip: w.ip,
            state,
            pid,
            exit_code,
            oom_killed,
            restart_count,
            error,
            labels: w.labels.clone(),
            image: w.image.clone(),
            command: w.command.clone(),
            host_iface: w.host_iface.clone(),
            created: w.created,
            ports: vec![],
        }
    }
}
