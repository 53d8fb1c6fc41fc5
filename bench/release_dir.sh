# Sourced by the bench scripts: release_dir ROOT prints where `cargo build --release` puts
# binaries. .cargo/config.toml builds for the host triple explicitly (the static link needs
# it), so that is target/<host triple>/release, not target/release.
release_dir() {
    triple=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')
    [ -n "$triple" ] || triple="$(uname -m)-unknown-linux-gnu"
    echo "${CARGO_TARGET_DIR:-$1/target}/$triple/release"
}
