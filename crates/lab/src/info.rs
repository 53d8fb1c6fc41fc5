//! The lab's own record (`<lab dir>/lab.json`): what was built, for `ls` and `down`.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use weft_model::{paths, ClusterConfig};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabNode {
    pub name: String,
    pub address: Ipv4Addr,
    pub agent_pid: Option<i32>,
    /// The node's underlay subnet when it is not the primary 198.51.100.0/24.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<Ipv4Net>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabInfo {
    pub name: String,
    pub nodes: Vec<LabNode>,
    pub config: ClusterConfig,
    pub created: u64,
    /// "up" once fully built.
    pub status: String,
    /// The lab's etcd, when its store is there (`lab up --store etcd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<crate::etcd::LabEtcd>,
    /// Underlay subnets besides the primary one, in the order their switches were made
    /// (`brK` and the gateway's `ethK` serve the K-th, from 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<Ipv4Net>,
}

pub(crate) fn info_path(lab: &str) -> PathBuf {
    paths::lab_dir(lab).join("lab.json")
}

pub(crate) fn save(info: &LabInfo) -> Result<()> {
    let path = info_path(&info.name);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(info)?)
        .with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

/// The record of lab `name`, if it exists.
pub fn load(name: &str) -> Result<Option<LabInfo>> {
    let path = info_path(name);
    match std::fs::read(&path) {
        Ok(b) => Ok(Some(
            serde_json::from_slice(&b).with_context(|| format!("decode {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

/// Every lab on this machine.
pub fn list() -> Result<Vec<LabInfo>> {
    let dir = paths::labs_dir();
    let mut out = vec![];
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("read {}", dir.display())),
    };
    for e in entries {
        let name = e?.file_name().to_string_lossy().into_owned();
        if let Some(info) = load(&name)? {
            out.push(info);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
