//! The agent's configuration file: what a host's `weft agent` runs with when flags and
//! environment variables do not say (for hosts run by a service manager).
//!
//! ```yaml
//! # /etc/weft/agent.yaml
//! store: etcd://10.0.0.10:2379,10.0.0.11:2379
//! cluster: prod        # the --lab name: where state lives under $WEFT_ROOT/labs/
//! node: host-a         # the node's name in the store (default: the host name)
//! resync: 60           # seconds between full resyncs
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

/// Where the file is looked for when `--config` and `$WEFT_CONFIG` do not name one.
pub const DEFAULT_PATH: &str = "/etc/weft/agent.yaml";

/// The settings of the file; every one is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Store URL (`etcd://HOST:PORT[,HOST:PORT]`, `sqlite:///path`).
    pub store: Option<String>,
    /// Cluster name (the `--lab` of the command line).
    pub cluster: Option<String>,
    /// The node's name in the store.
    pub node: Option<String>,
    /// Seconds between full resyncs.
    pub resync: Option<u64>,
}

impl AgentConfig {
    /// Reads `path`; a file named explicitly must exist, the default one may be absent.
    pub fn load(path: Option<&Path>) -> Result<AgentConfig> {
        let (path, required): (PathBuf, bool) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_PATH), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(AgentConfig::default())
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("read the agent configuration {}", path.display()))
            }
        };
        Self::parse(&text).with_context(|| {
            format!(
                "agent configuration {}: expected YAML with the keys store, cluster, node, resync",
                path.display()
            )
        })
    }

    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<AgentConfig> {
        if text.trim().is_empty() {
            return Ok(AgentConfig::default());
        }
        Ok(serde_yaml_ng::from_str(text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key_and_refuses_unknown_ones() {
        let c = AgentConfig::parse(
            "store: etcd://10.0.0.10:2379,10.0.0.11:2379\ncluster: prod\nnode: host-a\nresync: 30\n",
        )
        .unwrap();
        assert_eq!(
            c.store.as_deref(),
            Some("etcd://10.0.0.10:2379,10.0.0.11:2379")
        );
        assert_eq!(
            (c.cluster.as_deref(), c.node.as_deref(), c.resync),
            (Some("prod"), Some("host-a"), Some(30))
        );
        let err = AgentConfig::parse("stor: etcd://x:2379\n").unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown field `stor`"),
            "{err:#}"
        );
        assert_eq!(AgentConfig::parse("\n").unwrap(), AgentConfig::default());
    }

    #[test]
    fn a_named_file_must_exist_the_default_may_not() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("agent.yaml");
        let err = AgentConfig::load(Some(&missing)).unwrap_err();
        assert!(format!("{err:#}").contains("agent.yaml"), "{err:#}");
        std::fs::write(&missing, "node: n7\n").unwrap();
        assert_eq!(
            AgentConfig::load(Some(&missing)).unwrap().node.as_deref(),
            Some("n7")
        );
    }
}
