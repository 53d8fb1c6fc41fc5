//! Running the CNI reference plugins (`bridge` with `host-local` IPAM) the way a runtime does:
//! the plugin binary with the CNI environment and the network config on stdin.
//!
//! The plugin process joins the bench's node namespace before it execs (`setns` in
//! `pre_exec`), so the bridge it makes, the sysctls it writes and the host ends of its veths all
//! live there: the machine's own network namespace is never touched.

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{bail, Context, Result};
use weft_netlink::Netns;

/// Default plugin directory of the Debian package `containernetworking-plugins`.
const DEFAULT_CNI_PATH: &str = "/usr/lib/cni";
/// The bridge the plugin makes (inside the node namespace).
pub const BRIDGE: &str = "cni-bench0";

/// Where the plugins are and where host-local keeps its state.
#[derive(Debug)]
pub struct Cni {
    bridge: PathBuf,
    cni_path: String,
    /// The network configuration given on stdin (made once, outside the timed region).
    config: String,
}

/// What an ADD reported.
#[derive(Debug)]
pub struct AddResult {
    pub ip: Ipv4Addr,
    pub gateway: Option<Ipv4Addr>,
}

fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

impl Cni {
    /// Finds `bridge` and `host-local` in `$CNI_PATH` (default `/usr/lib/cni`); `None` when
    /// either is missing. host-local's data directory goes under `tmp`.
    pub fn locate(tmp: &Path) -> Result<Option<Cni>> {
        let cni_path = search_path();
        let find = |name: &str| {
            cni_path
                .split(':')
                .map(|d| Path::new(d).join(name))
                .find(|p| executable(p))
        };
        let (Some(bridge), Some(_)) = (find("bridge"), find("host-local")) else {
            return Ok(None);
        };
        let data_dir = tmp.join("host-local");
        std::fs::create_dir(&data_dir).with_context(|| format!("create {}", data_dir.display()))?;
        Ok(Some(Cni {
            bridge,
            cni_path,
            config: config(&data_dir),
        }))
    }

    /// Runs the plugin with `CNI_COMMAND=command` inside `node_ns` until it exits; fails (with
    /// its output) unless it exits with status 0.
    pub fn run(
        &self,
        node_ns: &Netns,
        command: &str,
        container_id: &str,
        netns_path: &Path,
    ) -> Result<Output> {
        let fd = node_ns.fd().as_raw_fd();
        let mut cmd = Command::new(&self.bridge);
        cmd.env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
            )
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", container_id)
            .env("CNI_NETNS", netns_path)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", &self.cni_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: the closure only calls setns(2) on a descriptor that stays open until the
        // child has exec'd, and reads errno: async-signal-safe, no allocation.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let what = || format!("{} (CNI_COMMAND={command})", self.bridge.display());
        let mut child = cmd.spawn().with_context(|| format!("start {}", what()))?;
        {
            let mut stdin = child.stdin.take().context("plugin stdin")?;
            stdin
                .write_all(self.config.as_bytes())
                .with_context(|| format!("write the config to {}", what()))?;
        }
        let out = child
            .wait_with_output()
            .with_context(|| format!("wait for {}", what()))?;
        if !out.status.success() {
            bail!(
                "{} failed ({}) for {container_id}\nstdout: {}\nstderr: {}",
                what(),
                out.status,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(out)
    }
}

/// The plugin directories: `$CNI_PATH` (colon-separated) or `/usr/lib/cni`.
pub fn search_path() -> String {
    std::env::var("CNI_PATH")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_CNI_PATH.to_string())
}

/// The network configuration: a bridge `cni-bench0` acting as gateway, no masquerade, and
/// host-local addresses from 10.88.0.0/16 kept in `data_dir`.
fn config(data_dir: &Path) -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "benchnet",
        "type": "bridge",
        "bridge": BRIDGE,
        "isGateway": true,
        "ipMasq": false,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": "10.88.0.0/16"}]],
            "dataDir": data_dir.to_string_lossy(),
        }
    })
    .to_string()
}

/// Reads the first IPv4 address (and its gateway) of an ADD result.
pub fn parse_add(stdout: &[u8]) -> Result<AddResult> {
    let v: serde_json::Value =
        serde_json::from_slice(stdout).context("the plugin's result is not JSON")?;
    let first = v
        .get("ips")
        .and_then(|ips| ips.get(0))
        .context("the plugin's result has no ips")?;
    let addr = first
        .get("address")
        .and_then(|a| a.as_str())
        .context("the plugin's first ip has no address")?;
    let ip = addr
        .split('/')
        .next()
        .unwrap_or(addr)
        .parse()
        .with_context(|| format!("address {addr:?} in the plugin's result"))?;
    let gateway = first
        .get("gateway")
        .and_then(|g| g.as_str())
        .and_then(|g| g.parse().ok());
    Ok(AddResult { ip, gateway })
}
