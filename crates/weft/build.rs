//! Links the `weft` binary as a position-dependent executable (`-no-pie`).
//!
//! weft starts many short-lived processes of itself: `weft-runc create|start|delete` once
//! each per container, a shim per container, the toolbox applets. As a position-independent
//! executable the dynamic loader must apply about 35,000 relative relocations at every start
//! and copy-on-write some 600 KB of relocated data per process; a position-dependent one has
//! them resolved at link time. Measured on a 2-core VM: 0.8 ms less per start (2.5 → 1.7 ms
//! for `weft-runc list`), and about 600 KB less private memory in every idle shim
//! (bench/README.md, "runtime"). The price is that the binary's own image is not randomized
//! (ASLR still applies to its heap, stack and libraries), as in runc's static builds.
fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
