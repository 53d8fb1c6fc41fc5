#!/usr/bin/env bash
# Network-attach benchmark: weft vs the CNI reference plugins (bridge + host-local) vs a floor.
# Builds weft-bench-attach in release, checks what it needs (installs nothing), runs it and
# prints the table. Arguments go to the bench: --iterations N (200), --warmup W (20), --json.
#
#   sudo bench/attach.sh
#   sudo bench/attach.sh --iterations 500 --json > attach.json
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
cd "$root"

if [ "$(id -u)" != 0 ]; then
    echo "attach.sh: needs root (it creates network namespaces and veth pairs): sudo $0 $*" >&2
    exit 1
fi
command -v cargo >/dev/null || { echo "attach.sh: cargo not found (install Rust: https://rustup.rs)" >&2; exit 1; }

found=""
IFS=: read -r -a dirs <<<"${CNI_PATH:-/usr/lib/cni}"
for d in "${dirs[@]}"; do
    if [ -x "$d/bridge" ] && [ -x "$d/host-local" ]; then found=$d; break; fi
done
if [ -z "$found" ]; then
    echo "attach.sh: CNI plugins bridge + host-local not found in ${CNI_PATH:-/usr/lib/cni};" \
         "the cni variant will be skipped. Install them with: apt-get install containernetworking-plugins" >&2
else
    echo "attach.sh: CNI plugins from $found" \
         "($(dpkg-query -W -f='containernetworking-plugins ${Version}' containernetworking-plugins 2>/dev/null || echo 'version unknown'))" >&2
fi

echo "attach.sh: cargo build --release -p weft-bench-attach" >&2
cargo build --release -p weft-bench-attach >&2
bin="$(release_dir "$root")/weft-bench-attach"

status=0
"$bin" "$@" || status=$?

if command -v ip >/dev/null && ip netns list | grep -q '^weft-bench-'; then
    echo "attach.sh: warning: namespaces left behind:" >&2
    ip netns list | grep '^weft-bench-' >&2
    status=1
fi
exit $status
