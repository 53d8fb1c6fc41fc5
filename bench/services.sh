#!/usr/bin/env bash
# Services benchmark: weft's nftables service maps vs a kube-proxy-iptables-shaped ruleset (see README.md).
# Builds weft-bench-services in release and runs it; arguments go to the bench (--help).
#
#   sudo bench/services.sh
#   sudo bench/services.sh --services 1000,10000 --latency-rounds 2
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
cd "$root"
if [ "$(id -u)" != 0 ]; then
    echo "services.sh: needs root (network namespaces, veths, nftables): sudo $0 $*" >&2
    exit 1
fi
command -v iptables-legacy-restore >/dev/null || echo "services.sh: iptables not installed (apt-get install iptables): the iptables-shaped variants will be skipped" >&2
echo "services.sh: cargo build --release -p weft-bench-services" >&2
cargo build --release -p weft-bench-services >&2
status=0
"$(release_dir "$root")/weft-bench-services" "$@" || status=$?
if ip netns list | grep -q '^weft-bsvc-'; then
    echo "services.sh: warning: namespaces left behind:" >&2
    ip netns list | grep '^weft-bsvc-' >&2
    status=1
fi
exit $status
