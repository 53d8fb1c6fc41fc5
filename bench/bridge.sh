#!/usr/bin/env bash
# Bridge-network throughput, side by side in one run (iperf3, TCP, one stream):
#   published  ext -> NODE:5201 (-p 5201:5201, DNAT)  vs  direct  ext -> the container's address
#   bridge     container -> container on one node's bridge (iperf3 run in the two containers'
#              network namespaces)  vs  veth  a bare veth pair between two namespaces (the
#              physical limit here)
#   bridge-exec  the same path with iperf3 inside the containers (`weft exec`, the runtime's
#              sandbox included), for information
# Each round runs the four in a rotating order; prints min/median/max per variant and the
# ratios of the medians (goals: published >= 0.95 x direct, bridge >= 0.9 x veth).
#
#   sudo bench/bridge.sh [ROUNDS (5)] [SECONDS per measurement (3)]
#   WEFT=target/x86_64-unknown-linux-gnu/debug/weft sudo -E bench/bridge.sh     # use a weft binary already built
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
# shellcheck source=bench/iperf_lib.sh
. "$root/bench/iperf_lib.sh"
rounds=${1:-5}
secs=${2:-3}

if [ "$(id -u)" != 0 ]; then
    echo "bridge.sh: needs root (it builds a weft lab and network namespaces): sudo $0 $*" >&2
    exit 1
fi
command -v iperf3 >/dev/null || { echo "bridge.sh: iperf3 not found: apt-get install iperf3" >&2; exit 1; }
if [ -z "${WEFT:-}" ]; then
    echo "bridge.sh: cargo build --release -p weft" >&2
    (cd "$root" && cargo build --release -p weft >&2)
    WEFT="$(release_dir "$root")/weft"
fi
iperf=$(command -v iperf3)

lab="bbr$$"
state=$(mktemp -d /tmp/weft-bench-bridge.XXXXXX)
ns_a="weft-bench-$$-a"
ns_b="weft-bench-$$-b"
export WEFT_ROOT="$state"
w() { "$WEFT" --lab "$lab" "$@"; }

cleanup() {
    w lab down >/dev/null 2>&1 || true
    ip netns del "$ns_a" 2>/dev/null || true
    ip netns del "$ns_b" 2>/dev/null || true
    rm -rf "$state"
}
trap cleanup EXIT

echo "bridge.sh: lab $lab (one node n1), image iperf3 from $iperf" >&2
w lab up --nodes n1 >/dev/null
w image build iperf3 --from-host "$iperf" >/dev/null
w network create bnet --driver bridge --subnet 10.50.0.0/16 >/dev/null
w --node n1 run -d --name srv --net bnet -p 5201:5201 iperf3 iperf3 -s >/dev/null
w --node n1 run -d --name cli --net bnet iperf3 iperf3 -s >/dev/null
w --node n1 run -d --name peer --net bnet iperf3 iperf3 -s >/dev/null
field() { w -o json inspect "$1" | sed -n "s/.*\"$2\": *\"\{0,1\}\([0-9.]*\).*/\1/p" | head -1; }
srv_ip=$(field srv ip)
peer_ip=$(field peer ip)
peer_net="/proc/$(field peer pid)/ns/net"
cli_net="/proc/$(field cli pid)/ns/net"
subnet="${srv_ip%.*}.0/24"
# ext reaches the container's own address through n1 (like another host with a route to it).
w lab exec ext -- ip route add "$subnet" via 198.51.100.11 >/dev/null

# The anchor: a bare veth pair between two namespaces.
veth_anchor
ip netns exec "$ns_b" "$iperf" -s -D -1 >/dev/null 2>&1 || true

measure() {
    case $1 in
        published) w lab exec ext -- "$iperf" -c 198.51.100.11 -p 5201 -t "$secs" -f m | mbps ;;
        direct) w lab exec ext -- "$iperf" -c "$srv_ip" -p 5201 -t "$secs" -f m | mbps ;;
        bridge)
            nsenter --net="$peer_net" "$iperf" -s -D -1 -p 5202 >/dev/null 2>&1 || true
            sleep 0.3
            nsenter --net="$cli_net" "$iperf" -c "$peer_ip" -p 5202 -t "$secs" -f m | mbps ;;
        bridge-exec) w exec cli iperf3 -c "$peer_ip" -p 5201 -t "$secs" -f m | mbps ;;
        veth) veth_measure ;;
    esac
}

variants=(published direct bridge veth bridge-exec)
run_rounds bridge.sh
print_table 12
awk -v p="${med[published]}" -v d="${med[direct]}" -v b="${med[bridge]}" -v e="${med[veth]}" 'BEGIN {
    printf "published / direct = %.3f (goal >= 0.95)\n", p / d
    printf "bridge / veth      = %.3f (goal >= 0.90)\n", b / e
}'
