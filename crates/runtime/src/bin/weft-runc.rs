//! `weft-runc`: the runc-compatible command line of weft's runtime, as its own executable
//! (used by the tests and by engines such as podman: `podman --runtime .../weft-runc`); the
//! product reaches the same entry point when weft is invoked as `weft-runc`.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    std::process::exit(weft_runtime::runc::main(&args));
}
