//! weft-applets: the small network tools of the `toolbox` image, run when the multi-call
//! `weft` binary is invoked under their name (argv[0]): `ping`, `wget`, `nc`, `httpd`,
//! `nslookup`. Their options and output follow busybox / iputils so that users and tests can
//! rely on them.

pub mod dns;
pub mod getopt;
pub mod httpd;
pub mod nc;
pub mod nslookup;
pub mod ping;
pub mod resolve;
pub mod wget;

use std::path::Path;

const APPLETS: &[&str] = &["ping", "wget", "nc", "httpd", "nslookup"];

/// The names under which the `weft` binary runs an applet.
pub fn applet_names() -> &'static [&'static str] {
    APPLETS
}

/// Runs the applet named by the basename of `argv0` with `args` (the arguments after argv[0])
/// and returns its exit code; `None` if `argv0` names no applet.
pub fn dispatch(argv0: &str, args: &[String]) -> Option<i32> {
    let name = Path::new(argv0).file_name()?.to_str()?;
    let code = match name {
        "ping" => ping::main(args),
        "wget" => wget::main(args),
        "nc" => nc::main(args),
        "httpd" => httpd::main(args),
        "nslookup" => nslookup::main(args),
        _ => return None,
    };
    Some(code)
}

/// The text of an I/O error without Rust's ` (os error N)` suffix, as C tools print it
/// (`Connection refused`).
pub fn os_err_msg(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_dispatch() {
        assert_eq!(applet_names(), &["ping", "wget", "nc", "httpd", "nslookup"]);
        assert_eq!(dispatch("/usr/bin/weft", &[]), None);
        assert_eq!(dispatch("cat", &[]), None);
        // A usage error runs the applet and returns its code without touching the network.
        assert_eq!(dispatch("/bin/ping", &[]), Some(2));
        assert_eq!(dispatch("nc", &["-x".to_string()]), Some(1));
    }

    #[test]
    fn error_text() {
        let e = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(os_err_msg(&e), "Connection refused");
    }
}
