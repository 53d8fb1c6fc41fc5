//! A lab's etcd (`weft lab up --store etcd`): Debian's etcd-server in its own namespace
//! `weft-<lab>-etcd`, plugged into the switch at [`ETCD_ADDR`] like a separate machine, with its
//! data under the lab's directory.
//!
//! The CLI (in the machine's namespace) reaches it as
//! `etcd://198.51.100.2:2379?netns=weft-<lab>-etcd` (recorded in the lab's `store.url`); each
//! node's agent reaches it over the underlay as `etcd://198.51.100.2:2379` (given in
//! `$WEFT_STORE`).

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use weft_model::paths;
use weft_netlink::{Handle, Netns};

use crate::info::{save, LabInfo};
use crate::members::{in_netns_command, GW_ADDR, UNDERLAY_PREFIX};
use crate::up::plug;

/// The lab member's name (its namespace is `weft-<lab>-etcd`).
pub const ETCD_MEMBER: &str = "etcd";
/// The etcd's address on the lab's underlay.
pub const ETCD_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// Its client port.
pub const ETCD_PORT: u16 = 2379;
/// How long `start` waits for etcd to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The lab's record of its etcd.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabEtcd {
    pub address: Ipv4Addr,
    /// The running etcd-server's pid (None while stopped).
    pub pid: Option<i32>,
    /// The store URL as the CLI opens it.
    pub url: String,
}

/// The store URL of the lab's etcd from the machine's namespace.
pub fn cli_url(lab: &str) -> String {
    format!(
        "etcd://{ETCD_ADDR}:{ETCD_PORT}?netns={}",
        paths::lab_netns(lab, ETCD_MEMBER)
    )
}

/// The store URL of the lab's etcd from inside a node (over the underlay).
pub fn node_url() -> String {
    format!("etcd://{ETCD_ADDR}:{ETCD_PORT}")
}

/// The store URL to give a node's agent in `$WEFT_STORE`, when the lab runs on etcd.
pub(crate) fn agent_store_url(lab: &str) -> Option<String> {
    crate::load(lab).ok().flatten()?.etcd.map(|_| node_url())
}

fn data_dir(lab: &str) -> PathBuf {
    paths::lab_dir(lab).join("etcd")
}

fn etcd_binary() -> Result<PathBuf> {
    ["/usr/bin/etcd", "/usr/local/bin/etcd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .context("etcd is not installed; install it (Debian: apt-get install etcd-server) or use --store sqlite")
}

/// Plugs the lab's etcd member into the switch, starts etcd and records it (in `info` and in
/// the lab's `store.url`); returns the store URL for the CLI.
pub(crate) fn create(
    fabric: &mut Handle,
    br: u32,
    lab: &str,
    info: &mut LabInfo,
) -> Result<String> {
    let addr = Ipv4Net::new(ETCD_ADDR, UNDERLAY_PREFIX)?;
    // Its default route via the gateway reaches nodes on other subnets (`--subnet`).
    plug(
        fabric,
        br,
        lab,
        ETCD_MEMBER,
        ETCD_MEMBER,
        addr,
        Some(GW_ADDR),
    )?;
    info.etcd = Some(LabEtcd {
        address: ETCD_ADDR,
        pid: None,
        url: cli_url(lab),
    });
    save(info)?;
    start(lab)?;
    *info = crate::load(lab)?.context("the lab's record vanished")?;
    let file = paths::lab_store_url_file(lab);
    std::fs::write(&file, cli_url(lab)).with_context(|| format!("write {}", file.display()))?;
    Ok(cli_url(lab))
}

/// Starts the lab's etcd in its (already plugged) namespace, records its pid in the lab's
/// record, and waits until it answers.
pub fn start(lab: &str) -> Result<i32> {
    let mut info = crate::load(lab)?.with_context(|| {
        format!("lab {lab:?} is not up; start it with `weft lab up --lab {lab} --store etcd`")
    })?;
    let Some(mut rec) = info.etcd.clone() else {
        bail!("lab {lab:?} keeps its store in SQLite, not etcd (it was made without --store etcd)");
    };
    if let Some(pid) = rec.pid.filter(|p| is_our_etcd(*p, lab)) {
        bail!("the etcd of lab {lab} already runs (pid {pid})");
    }
    let ns = Netns::named(&paths::lab_netns(lab, ETCD_MEMBER))
        .with_context(|| format!("the etcd namespace of lab {lab} is missing; rebuild the lab"))?;
    let bin = etcd_binary()?;
    let dir = data_dir(lab);
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let log_path = paths::lab_dir(lab).join("etcd.log");
    let log = File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("open {}", log_path.display()))?;
    let client = format!("http://{ETCD_ADDR}:{ETCD_PORT}");
    // Peers talk on the namespace's loopback: a one-member cluster.
    let peer = "http://127.0.0.1:2380";
    let mut cmd = in_netns_command(&ns, ETCD_MEMBER, &bin.to_string_lossy());
    cmd.args(["--name", &format!("weft-{lab}"), "--data-dir"])
        .arg(&dir)
        .args([
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
        ])
        .args([
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
        ])
        .args(["--initial-cluster", &format!("weft-{lab}={peer}")])
        // IPAM and `delete -f` may write many keys in one transaction.
        .args(["--max-txn-ops", "10000"])
        .args([
            "--logger",
            "zap",
            "--log-outputs",
            "stderr",
            "--log-level",
            "warn",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    let child = cmd
        .spawn()
        .with_context(|| format!("start etcd ({}) for lab {lab}", bin.display()))?;
    let pid = child.id() as i32;
    rec.pid = Some(pid);
    info.etcd = Some(rec);
    save(&info)?;
    wait_ready(lab, pid, &log_path)?;
    Ok(pid)
}

fn wait_ready(lab: &str, pid: i32, log: &Path) -> Result<()> {
    let store = weft_store::open(&cli_url(lab))?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        // Reap it if it died at once (it is our child while `lab up` runs).
        let _ = nix::sys::wait::waitpid(
            nix::unistd::Pid::from_raw(pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        if !is_our_etcd(pid, lab) {
            bail!("etcd of lab {lab} exited at start; see {}", log.display());
        }
        match store.revision() {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                bail!(
                    "etcd of lab {lab} does not answer: {e}; see {}",
                    log.display()
                )
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Stops the lab's etcd (by its recorded pid), keeping its data; `start` brings it back.
/// Returns whether one was running.
pub fn stop(lab: &str) -> Result<bool> {
    let Some(mut info) = crate::load(lab)? else {
        return Ok(false);
    };
    let Some(mut rec) = info.etcd.clone() else {
        bail!("lab {lab:?} keeps its store in SQLite, not etcd");
    };
    let running = rec.pid.filter(|p| is_our_etcd(*p, lab));
    if let Some(pid) = running {
        crate::down::stop_pid(pid);
    }
    rec.pid = None;
    info.etcd = Some(rec);
    save(&info)?;
    Ok(running.is_some())
}

/// Whether `pid` is the etcd of `lab` (its command line names the lab's data directory).
pub(crate) fn is_our_etcd(pid: i32, lab: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let dir = data_dir(lab);
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    args.contains(&dir.to_string_lossy().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let u = weft_store::etcd::EtcdUrl::parse(&cli_url("t1")).unwrap();
        assert_eq!(u.netns.as_deref(), Some("weft-t1-etcd"));
        assert_eq!(u.endpoints, ["198.51.100.2:2379"]);
        let u = weft_store::etcd::EtcdUrl::parse(&node_url()).unwrap();
        assert_eq!(u.netns, None);
    }
}
