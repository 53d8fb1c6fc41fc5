//! What `state`, `list` and `features` print, in runc's shapes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::{State, Status};

/// The OCI runtime-spec version these states speak.
pub const OCI_VERSION: &str = "1.0.2";

/// `runc state` output (runc's `containerState`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuncState {
    /// OCI spec version.
    pub oci_version: String,
    /// Container id.
    pub id: String,
    /// Host pid of the container's init; 0 once stopped (as runc says).
    pub pid: i32,
    /// created | running | stopped.
    pub status: String,
    /// Absolute bundle path.
    pub bundle: PathBuf,
    /// Absolute rootfs path.
    pub rootfs: PathBuf,
    /// Creation time (RFC 3339).
    pub created: String,
    /// Owner (empty: the containers of root).
    pub owner: String,
    /// The bundle's annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl RuncState {
    /// The runc view of a weft container state; rootfs and annotations come from the
    /// bundle's config.json when it is still readable.
    pub fn from_state(st: &State) -> RuncState {
        let spec = oci_spec::runtime::Spec::load(st.bundle.join("config.json")).ok();
        let rootfs = spec
            .as_ref()
            .and_then(|s| s.root().as_ref().map(|r| r.path().clone()))
            .map(|p| absolute(&st.bundle, &p))
            .unwrap_or_else(|| st.bundle.join("rootfs"));
        let annotations = spec
            .as_ref()
            .and_then(|s| s.annotations().clone())
            .map(|a| a.into_iter().collect())
            .unwrap_or_default();
        RuncState {
            oci_version: OCI_VERSION.to_string(),
            id: st.id.clone(),
            pid: if st.status == Status::Stopped {
                0
            } else {
                st.pid
            },
            status: st.status.to_string(),
            bundle: st.bundle.clone(),
            rootfs,
            created: st.created.clone(),
            owner: String::new(),
            annotations,
        }
    }
}

fn absolute(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// `list` as a table: `ID PID STATUS BUNDLE CREATED OWNER`, columns padded like runc's
/// tabwriter.
pub fn table(states: &[RuncState]) -> String {
    let mut rows = vec![[
        "ID".to_string(),
        "PID".to_string(),
        "STATUS".to_string(),
        "BUNDLE".to_string(),
        "CREATED".to_string(),
        "OWNER".to_string(),
    ]];
    for s in states {
        rows.push([
            s.id.clone(),
            s.pid.to_string(),
            s.status.clone(),
            s.bundle.display().to_string(),
            s.created.clone(),
            if s.owner.is_empty() {
                "root".to_string()
            } else {
                s.owner.clone()
            },
        ]);
    }
    let mut widths = [0usize; 6];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}", w = widths[i] + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Mount options the runtime understands (those of the runtime's option parser).
const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "private",
    "rbind",
    "relatime",
    "remount",
    "ro",
    "rprivate",
    "rshared",
    "rslave",
    "runbindable",
    "rw",
    "shared",
    "slave",
    "strictatime",
    "suid",
    "sync",
    "unbindable",
];

/// `features` output (the OCI runtime features document, as `runc features` prints it).
pub fn features() -> serde_json::Value {
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": [],
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "uts"],
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false},
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
        },
        "annotations": {
            "io.github.weft.runtime": "weft",
            "io.github.weft.version": env!("CARGO_PKG_VERSION"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(status: Status) -> State {
        serde_json::from_value(serde_json::json!({
            "id": "c1", "status": status, "pid": 42, "shim_pid": 41,
            "bundle": "/nonexistent/b", "exit_code": null,
            "created": "2024-01-02T03:04:05.000000006Z", "started": null, "finished": null
        }))
        .expect("state")
    }

    #[test]
    fn runc_state_shape() {
        let v = serde_json::to_value(RuncState::from_state(&state(Status::Running))).expect("json");
        let keys: Vec<&str> = v
            .as_object()
            .expect("obj")
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "bundle",
                "created",
                "id",
                "ociVersion",
                "owner",
                "pid",
                "rootfs",
                "status"
            ]
        );
        assert_eq!(v["pid"], 42);
        assert_eq!(v["status"], "running");
        assert_eq!(v["rootfs"], "/nonexistent/b/rootfs");
        assert_eq!(v["owner"], "");
        let v = serde_json::to_value(RuncState::from_state(&state(Status::Stopped))).expect("json");
        assert_eq!(v["pid"], 0);
        assert_eq!(v["status"], "stopped");
    }

    #[test]
    fn list_table() {
        let t = table(&[RuncState::from_state(&state(Status::Created))]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("ID   PID   STATUS    BUNDLE"), "{t}");
        assert!(
            lines[1].starts_with("c1   42    created   /nonexistent/b"),
            "{t}"
        );
        assert!(lines[1].ends_with("root"), "{t}");
    }

    #[test]
    fn features_doc() {
        let f = features();
        assert_eq!(f["ociVersionMin"], "1.0.0");
        assert!(f["linux"]["namespaces"]
            .as_array()
            .expect("ns")
            .contains(&"network".into()));
    }
}
