//! A secondary backend that drives the `nft` program with a generated script
//! (`nft -f -`). It is a reference for the netlink backend and a comparison
//! point for tests; weft itself never runs a program to program nftables.
//!
//! Names of chains, sets and maps must not be nft keywords (`fwd`, `input`,
//! ...), which `nft` cannot parse as names.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use weft_netlink::Netns;

use crate::model::{Family, Table};
use crate::summary::Summary;
use crate::{Backend, Error, NetlinkBackend, Result};

/// Programs tables by running `nft` (in a network namespace, when given).
#[derive(Debug)]
pub struct NftCli {
    program: PathBuf,
    netns: Option<Netns>,
}

impl NftCli {
    /// Runs `nft` from `PATH` in the calling process's network namespace.
    pub fn new() -> NftCli {
        NftCli {
            program: PathBuf::from("nft"),
            netns: None,
        }
    }

    /// Runs `nft` inside `ns` (the child joins it before it starts).
    pub fn in_netns(ns: &Netns) -> Result<NftCli> {
        Ok(NftCli {
            program: PathBuf::from("nft"),
            netns: Some(ns.try_clone()?),
        })
    }

    /// Uses another `nft` binary.
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> NftCli {
        self.program = program.into();
        self
    }

    /// The script that replaces `table` in one transaction: create (no-op if it
    /// exists), delete, and define it again.
    pub fn script(table: &Table) -> String {
        let id = format!("{} {}", table.family.nft_name(), table.name);
        format!("table {id} {{}}\ndelete table {id}\n{table}\n")
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<Output> {
        let shown = format!("{} {}", self.program.display(), args.join(" "));
        let mut cmd = Command::new(&self.program);
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(ns) = &self.netns {
            let fd = ns.fd().as_raw_fd();
            // SAFETY: runs in the forked child before exec; setns(2) is
            // async-signal-safe and changes only the child's namespace.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().map_err(|e| Error::Cli {
            op: shown.clone(),
            message: format!("cannot start it: {e}; is nftables installed?"),
        })?;
        if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
            input.write_all(text.as_bytes()).map_err(|e| Error::Cli {
                op: shown.clone(),
                message: format!("writing the script: {e}"),
            })?;
        }
        child.wait_with_output().map_err(|e| Error::Cli {
            op: shown,
            message: format!("waiting for it: {e}"),
        })
    }

    fn check(&self, args: &[&str], stdin: Option<&str>) -> Result<()> {
        let out = self.run(args, stdin)?;
        if out.status.success() {
            return Ok(());
        }
        Err(Error::Cli {
            op: format!("{} {}", self.program.display(), args.join(" ")),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

impl Default for NftCli {
    fn default() -> NftCli {
        NftCli::new()
    }
}

impl Backend for NftCli {
    fn apply(&mut self, table: &Table) -> Result<()> {
        // Same checks as the netlink backend, before anything runs.
        Summary::of(table)?;
        self.check(&["-f", "-"], Some(&NftCli::script(table)))
    }

    fn delete(&mut self, family: Family, name: &str) -> Result<()> {
        if !self.exists(family, name)? {
            return Ok(());
        }
        self.check(&["delete", "table", family.nft_name(), name], None)
    }

    fn exists(&mut self, family: Family, name: &str) -> Result<bool> {
        Ok(self
            .run(&["list", "table", family.nft_name(), name], None)?
            .status
            .success())
    }

    /// Reads through netlink (nft's output is not parsed).
    fn read(&mut self, family: Family, name: &str) -> Result<Summary> {
        let mut nl = match &self.netns {
            Some(ns) => NetlinkBackend::in_netns(ns)?,
            None => NetlinkBackend::new()?,
        };
        nl.read(family, name)
    }
}
