//! Snapshots read from the kernel: each member's namespace is opened on first use and kept
//! open for the trace (so a container exiting mid-trace cannot recycle its path).

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use weft_netlink::Netns;

use crate::kquery::{nsid_of, route_mtu};
use crate::snapshot::NsSnapshot;
use crate::world::{Member, Source};

/// Reads members' namespaces from their paths.
pub struct LiveSource {
    paths: HashMap<String, PathBuf>,
    open: HashMap<String, Netns>,
    ids: HashMap<(String, String), Option<i32>>,
}

impl LiveSource {
    /// A source for members whose namespaces are at `paths` (member key → path).
    pub fn new(paths: HashMap<String, PathBuf>) -> LiveSource {
        LiveSource {
            paths,
            open: HashMap::new(),
            ids: HashMap::new(),
        }
    }

    /// The open namespace of a member.
    pub fn netns(&mut self, key: &str) -> Result<&Netns> {
        if !self.open.contains_key(key) {
            let path = self
                .paths
                .get(key)
                .with_context(|| format!("{key} has no known network namespace"))?;
            let ns = Netns::open(path).with_context(|| {
                format!("open the network namespace of {key} at {}", path.display())
            })?;
            self.open.insert(key.to_string(), ns);
        }
        self.open
            .get(key)
            .with_context(|| format!("{key} has no known network namespace"))
    }
}

impl Source for LiveSource {
    fn load(&mut self, m: &Member) -> Result<NsSnapshot> {
        let ns = self.netns(&m.key)?;
        NsSnapshot::read(ns)
    }

    fn nsid_is(&mut self, from: &Member, nsid: i32, candidate: &Member) -> Option<bool> {
        let k = (from.key.clone(), candidate.key.clone());
        if let Some(id) = self.ids.get(&k) {
            return id.map(|id| id == nsid).or(Some(false));
        }
        let from_ns = self.netns(&from.key).ok()?.try_clone().ok()?;
        let cand_ns = self.netns(&candidate.key).ok()?;
        let id = nsid_of(&from_ns, cand_ns).ok()?;
        self.ids.insert(k, id);
        // No id assigned: no veth of `from` can point into `candidate`.
        Some(id == Some(nsid))
    }

    fn route_mtu(&mut self, m: &Member, dst: std::net::Ipv4Addr) -> Option<u32> {
        let ns = self.netns(&m.key).ok()?;
        route_mtu(ns, dst).ok().flatten()
    }
}
