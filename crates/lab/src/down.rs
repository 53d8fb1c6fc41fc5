//! `weft lab down`: remove everything a lab made — containers, agents, namespaces, state.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use weft_model::paths;
use weft_netlink::Netns;

/// Tears lab `name` down. Works on half-built labs too; finding nothing is not an error.
pub fn down(name: &str, progress: &mut dyn FnMut(&str)) -> Result<()> {
    crate::validate_lab_name(name)?;
    let dir = paths::lab_dir(name);
    let info = crate::load(name).ok().flatten();

    // 1. Containers of every node (their shims reap them; their mounts die with them).
    let nodes_dir = dir.join("nodes");
    if let Ok(entries) = std::fs::read_dir(&nodes_dir) {
        for e in entries.flatten() {
            let node = e.file_name().to_string_lossy().into_owned();
            let root = paths::runtime_root(name, &node);
            let Ok(states) = weft_runtime::list(&root) else {
                continue;
            };
            if !states.is_empty() {
                progress(&format!(
                    "removing {} container(s) of node {node}",
                    states.len()
                ));
            }
            for st in states {
                if let Err(e) = weft_runtime::delete(&root, &st.id, true) {
                    eprintln!("weft: remove container {} of node {node}: {e:#}", st.id);
                }
            }
        }
    }

    // 2. Agents, by the pids the lab recorded (checked to still be our agents).
    for n in info.iter().flat_map(|i| i.nodes.iter()) {
        if let Some(pid) = n.agent_pid {
            if is_our_agent(pid, name) {
                progress(&format!("stopping the agent of {}", n.name));
                stop_pid(pid);
            }
        }
    }

    // 2b. The lab's etcd, by its recorded pid (its data goes with the lab's directory).
    if let Some(pid) = info
        .as_ref()
        .and_then(|i| i.etcd.as_ref())
        .and_then(|e| e.pid)
    {
        if crate::etcd::is_our_etcd(pid, name) {
            progress("stopping the lab's etcd");
            stop_pid(pid);
        }
    }

    // 3. Whatever else still runs in the lab's namespaces (e.g. left by `lab exec`), then
    //    the namespaces themselves (links inside go with them).
    let prefix = paths::lab_netns_prefix(name);
    let ours: Vec<String> = Netns::list_named()?
        .into_iter()
        .filter(|ns| ns.starts_with(&prefix))
        .collect();
    kill_processes_in(&ours, progress);
    for ns in Netns::list_named()? {
        if ns.starts_with(&prefix) {
            progress(&format!("deleting network namespace {ns}"));
            Netns::delete_named(&ns).with_context(|| format!("delete netns {ns}"))?;
        }
    }

    // 4. State.
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
    }
    Ok(())
}

pub(crate) fn is_our_agent(pid: i32, lab: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    args.contains(&b"agent".as_slice()) && args.contains(&lab.as_bytes())
}

pub(crate) fn stop_pid(pid: i32) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let p = Pid::from_raw(pid);
    let _ = kill(p, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        // Reap it if it is our child (as in `weft demo`), then see whether it is gone.
        let _ = nix::sys::wait::waitpid(p, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        if kill(p, None).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = kill(p, Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(p, None);
}

/// Kills every process whose network namespace is one of `names` (they can only have been
/// started inside the lab).
pub(crate) fn kill_processes_in(names: &[String], progress: &mut dyn FnMut(&str)) {
    use std::os::unix::fs::MetadataExt;
    let inodes: Vec<u64> = names
        .iter()
        .filter_map(|n| std::fs::metadata(format!("/run/netns/{n}")).ok())
        .map(|m| m.ino())
        .collect();
    if inodes.is_empty() {
        return;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(ns) = std::fs::metadata(format!("/proc/{pid}/ns/net")) else {
            continue;
        };
        if inodes.contains(&ns.ino()) && pid != std::process::id() as i32 {
            progress(&format!("stopping process {pid} left in the lab"));
            stop_pid(pid);
        }
    }
}
