//! Per-namespace sysctls, written and read by a short-lived thread that has
//! joined the namespace (the values under `/proc/sys/net` follow the netns of the
//! thread that opens them).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use crate::error::{Context, Error, Result};
use crate::netns::{run_in_netns, Netns};

/// Sets one sysctl in `ns`. `key` is a path under `/proc/sys`, like
/// `net/ipv4/ip_forward` or `net/ipv4/conf/cali1234/proxy_arp`; the dotted form
/// (`net.ipv4.ip_forward`) is accepted when the key has no `/`.
pub fn sysctl_set(ns: &Netns, key: &str, value: &str) -> Result<()> {
    sysctls_set(ns, &[(key, value)])
}

/// Sets several sysctls in `ns`, in order, on one thread. Stops at the first failure.
pub fn sysctls_set(ns: &Netns, kv: &[(&str, &str)]) -> Result<()> {
    let paths = kv
        .iter()
        .map(|(k, _)| sysctl_path(k, "write sysctl"))
        .collect::<Result<Vec<_>>>()?;
    run_in_netns(ns, || {
        for ((key, value), path) in kv.iter().zip(&paths) {
            let object = || format!("{key}={value} in {ns}");
            let mut f = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| Error::new("write sysctl", object(), e))?;
            f.write_all(value.as_bytes())
                .map_err(|e| Error::new("write sysctl", object(), e))?;
        }
        Ok(())
    })?
}

/// Reads one sysctl in `ns`, without the trailing newline.
pub fn sysctl_get(ns: &Netns, key: &str) -> Result<String> {
    let path = sysctl_path(key, "read sysctl")?;
    let s = run_in_netns(ns, || std::fs::read_to_string(&path))?
        .ctx("read sysctl", &format_args!("{key} in {ns}"))?;
    Ok(s.trim_end_matches('\n').to_string())
}

/// Checks a sysctl key and returns its path under `/proc/sys`.
pub(crate) fn sysctl_path(key: &str, op: &str) -> Result<PathBuf> {
    let k = if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    };
    let bad = k.is_empty()
        || k.starts_with('/')
        || k.contains('\0')
        || k.split('/').any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(Error::from_errno(op, format!("{key:?}"), libc::EINVAL)
            .with_detail("a sysctl key looks like net/ipv4/ip_forward"));
    }
    Ok(PathBuf::from("/proc/sys").join(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_proc_sys() {
        assert_eq!(
            sysctl_path("net/ipv4/ip_forward", "t").ok(),
            Some(PathBuf::from("/proc/sys/net/ipv4/ip_forward"))
        );
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward", "t").ok(),
            Some(PathBuf::from("/proc/sys/net/ipv4/ip_forward"))
        );
        // Interface names may hold dots: the slash form keeps them.
        assert_eq!(
            sysctl_path("net/ipv4/conf/eth0.100/proxy_arp", "t").ok(),
            Some(PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/proxy_arp"))
        );
    }

    #[test]
    fn bad_keys_are_refused() {
        for bad in ["", "/net/ipv4", "net/../etc", "net//x", "net/ipv4/", "a\0b"] {
            assert!(sysctl_path(bad, "t").is_err(), "{bad:?}");
        }
    }
}
