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
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;

/// Where the file is looked for when `--config` and `$WEFT_CONFIG` do not name one.
pub const DEFAULT_PATH: &str = "/etc/weft/agent.yaml";

/// The settings of the file (or of the command line); every one is optional.
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

    /// The settings to run with: these (the command line's), what they leave open taken from
    /// `file`, then the defaults (cluster `default`, resync 60 s, the cluster's own store). The
    /// node has no default.
    pub fn resolve(self, file: AgentConfig) -> Result<Settings> {
        Ok(Settings {
            cluster: self
                .cluster
                .or(file.cluster)
                .unwrap_or_else(|| "default".into()),
            node: self
                .node
                .or(file.node)
                .context("weft agent needs --node NODE (or `node:` in its configuration file)")?,
            resync: Duration::from_secs(self.resync.or(file.resync).unwrap_or(60)),
            store: self.store.or(file.store),
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

/// What the agent runs with, once the command line, the file and the defaults are merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub cluster: String,
    pub node: String,
    pub resync: Duration,
    /// `None`: the cluster's own store (a lab's).
    pub store: Option<String>,
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
    fn the_command_line_wins_over_the_file_and_the_file_over_the_defaults() {
        let file =
            AgentConfig::parse("store: etcd://f:2379\ncluster: prod\nnode: n-file\nresync: 30\n")
                .unwrap();
        let flags = AgentConfig {
            node: Some("n-flag".into()),
            ..AgentConfig::default()
        };
        let s = flags.resolve(file).unwrap();
        assert_eq!(s.node, "n-flag");
        assert_eq!(
            (s.cluster.as_str(), s.resync),
            ("prod", Duration::from_secs(30))
        );
        assert_eq!(s.store.as_deref(), Some("etcd://f:2379"));
        let s = AgentConfig {
            node: Some("n".into()),
            ..AgentConfig::default()
        }
        .resolve(AgentConfig::default())
        .unwrap();
        assert_eq!(
            (s.cluster.as_str(), s.resync, s.store),
            ("default", Duration::from_secs(60), None)
        );
        let err = AgentConfig::default()
            .resolve(AgentConfig::default())
            .unwrap_err();
        assert!(format!("{err:#}").contains("--node"), "{err:#}");
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
