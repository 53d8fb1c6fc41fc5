# Shell helpers sourced by the bench scripts.

# release_dir ROOT prints where `cargo build --release` puts binaries. .cargo/config.toml
# builds for the host triple explicitly (the static link needs it), so that is
# target/<host triple>/release, not target/release.
release_dir() {
    triple=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')
    [ -n "$triple" ] || triple="$(uname -m)-unknown-linux-gnu"
    echo "${CARGO_TARGET_DIR:-$1/target}/$triple/release"
}

# busybox_bundle DIR makes the OCI bundle of runtime.sh's part a in DIR: Debian's
# busybox-static as /bin/busybox, `true` and `sh` links to it, `runc spec` with
# `terminal: false` and args `true`.
busybox_bundle() {
    mkdir -p "$1/rootfs/bin"
    cp /bin/busybox "$1/rootfs/bin/busybox"
    ln -s busybox "$1/rootfs/bin/true"
    ln -s busybox "$1/rootfs/bin/sh"
    (cd "$1" && runc spec)
    sed -i -e 's/"terminal": true/"terminal": false/' -e 's/^\(\t*\)"sh"$/\1"true"/' "$1/config.json"
    grep -q '"true"' "$1/config.json" || { echo "could not set args in $1/config.json" >&2; return 1; }
}

# runc_cycle RUNTIME ROOT BUNDLE prints part a's measured command line: create, start and
# delete of container `bench`.
runc_cycle() {
    echo "$1 --root $2 create --bundle $3 bench >/dev/null </dev/null && $1 --root $2 start bench && $1 --root $2 delete -f bench"
}
