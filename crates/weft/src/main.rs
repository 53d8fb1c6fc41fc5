//! The `weft` binary: parses the command line and calls the crates. Also a multi-call binary:
//! run as `ping`, `wget`, `nc`, `httpd` or `nslookup` it is that tool (inside the toolbox image).

mod cli;
mod commands;
mod demo;
mod output;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let argv0 = args
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
        .unwrap_or_default();
    // Invoked as `weft-runc`: a runc-compatible OCI runtime (for podman, conmon, ...).
    if argv0 == "weft-runc" {
        return ExitCode::from(weft_runtime::runc::main(&args).clamp(0, 255) as u8);
    }
    if let Some(code) = weft_applets::dispatch(&argv0, &args[1..]) {
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    // `weft tool NAME ARGS...` runs a toolbox applet from the host (e.g. ping in `lab exec`).
    if args.get(1).map(String::as_str) == Some("tool") {
        let Some(name) = args.get(2) else {
            eprintln!(
                "usage: weft tool {} [ARGS...]",
                weft_applets::applet_names().join("|")
            );
            return ExitCode::from(2);
        };
        return match weft_applets::dispatch(name, &args[3..]) {
            Some(code) => ExitCode::from(code.clamp(0, 255) as u8),
            None => {
                eprintln!(
                    "weft tool: no tool {name:?}; tools: {}",
                    weft_applets::applet_names().join(", ")
                );
                ExitCode::from(2)
            }
        };
    }
    if args.get(1).map(String::as_str) == Some("shim") {
        return ExitCode::from(weft_runtime::shim_main(&args[2..]).clamp(0, 255) as u8);
    }
    match commands::dispatch(cli::parse()) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::from(1)
        }
    }
}
