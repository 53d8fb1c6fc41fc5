//! `iptables-restore` in a namespace, for the iptables-shaped anchors of the benchmarks:
//! the x_tables flavor (`iptables-legacy-restore`) and Debian's default, iptables-nft.

use std::io::Write as _;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// Which iptables: the x_tables one (linear rule blobs) or Debian's default, iptables-nft
/// (the same rules as nf_tables expressions, still one after the other).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Legacy,
    Nft,
}

impl Flavor {
    pub fn restore_cmd(self) -> &'static str {
        match self {
            Flavor::Legacy => "iptables-legacy-restore",
            Flavor::Nft => "iptables-nft-restore",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Flavor::Legacy => "iptables-legacy",
            Flavor::Nft => "iptables-nft",
        }
    }

    /// The flavors installed here.
    pub fn available() -> Vec<Flavor> {
        [Flavor::Legacy, Flavor::Nft]
            .into_iter()
            .filter(|f| {
                Command::new(f.restore_cmd())
                    .arg("--version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false)
            })
            .collect()
    }

    /// `<flavor>-restore` of `text` in the namespace `ns_name`.
    pub fn restore(self, ns_name: &str, text: &str) -> Result<()> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns_name, self.restore_cmd()])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| {
                format!(
                    "run `ip netns exec … {}` (Debian package iptables)",
                    self.restore_cmd()
                )
            })?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(text.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "{} failed: {}",
                self.restore_cmd(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}
