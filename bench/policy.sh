#!/usr/bin/env bash
# Policy-at-scale benchmark: weft's nftables table vs iptables-shaped rulesets (see README.md).
# Builds weft-bench-policy in release and runs it; arguments go to the bench (--help).
#
#   sudo bench/policy.sh
#   sudo bench/policy.sh --endpoints 10,2000 --conn-rounds 2 --no-agent
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
cd "$root"
if [ "$(id -u)" != 0 ]; then
    echo "policy.sh: needs root (network namespaces, veths, nftables): sudo $0 $*" >&2
    exit 1
fi
command -v iptables-legacy-restore >/dev/null || echo "policy.sh: iptables not installed (apt-get install iptables): the iptables-shaped variants will be skipped" >&2
echo "policy.sh: cargo build --release -p weft-bench-policy" >&2
cargo build --release -p weft-bench-policy >&2
"$(release_dir "$root")/weft-bench-policy" "$@"
status=$?
if ip netns list | grep -q '^weft-bpol-'; then
    echo "policy.sh: warning: namespaces left behind:" >&2
    ip netns list | grep '^weft-bpol-' >&2
    status=1
fi
exit $status
