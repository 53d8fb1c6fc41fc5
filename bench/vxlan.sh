#!/usr/bin/env bash
# Cross-node throughput, side by side in one run (iperf3, TCP, one stream):
#   vxlan   container on n1 -> container on n2, lab with --encap vxlan (weft.vxlan, MTU 1450)
#   direct  the same in a lab with --encap none (routes via the peer node, no encapsulation)
#   veth    a bare veth pair between two namespaces (the physical limit here)
# iperf3 runs in the containers' network namespaces (nsenter), so the numbers measure the
# network path, not the runtime's sandbox. Each round runs the three in a rotating order;
# prints min/median/max per variant and the ratios of the medians (goal: vxlan >= 0.7 x direct).
#
#   sudo bench/vxlan.sh [ROUNDS (5)] [SECONDS per measurement (3)]
#   WEFT=target/x86_64-unknown-linux-gnu/debug/weft sudo -E bench/vxlan.sh     # use a weft binary already built
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
# shellcheck source=bench/iperf_lib.sh
. "$root/bench/iperf_lib.sh"
rounds=${1:-5}
secs=${2:-3}

if [ "$(id -u)" != 0 ]; then
    echo "vxlan.sh: needs root (it builds weft labs and network namespaces): sudo $0 $*" >&2
    exit 1
fi
command -v iperf3 >/dev/null || { echo "vxlan.sh: iperf3 not found: apt-get install iperf3" >&2; exit 1; }
if [ -z "${WEFT:-}" ]; then
    echo "vxlan.sh: cargo build --release -p weft" >&2
    (cd "$root" && cargo build --release -p weft >&2)
    WEFT="$(release_dir "$root")/weft"
fi
iperf=$(command -v iperf3)

state=$(mktemp -d /tmp/weft-bench-vxlan.XXXXXX)
ns_a="weft-bench-$$-a"
ns_b="weft-bench-$$-b"
export WEFT_ROOT="$state"
declare -A lab=([vxlan]="bvx$$" [direct]="bvd$$")

cleanup() {
    for l in "${lab[@]}"; do "$WEFT" --lab "$l" lab down >/dev/null 2>&1 || true; done
    ip netns del "$ns_a" 2>/dev/null || true
    ip netns del "$ns_b" 2>/dev/null || true
    rm -rf "$state"
}
trap cleanup EXIT

field() { "$WEFT" --lab "$1" -o json inspect "$2" | sed -n "s/.*\"$3\": *\"\{0,1\}\([0-9.]*\).*/\1/p" | head -1; }
declare -A srv_ip srv_net cli_net
for v in vxlan direct; do
    l=${lab[$v]}
    encap=$([ "$v" = vxlan ] && echo vxlan || echo none)
    echo "vxlan.sh: lab $l (nodes n1, n2, --encap $encap)" >&2
    "$WEFT" --lab "$l" lab up --nodes n1,n2 --encap "$encap" >/dev/null
    "$WEFT" --lab "$l" network create net1 >/dev/null
    "$WEFT" --lab "$l" --node n2 run -d --name srv --net net1 toolbox sleep 100000 >/dev/null
    "$WEFT" --lab "$l" --node n1 run -d --name cli --net net1 toolbox sleep 100000 >/dev/null
    srv_ip[$v]=$(field "$l" srv ip)
    srv_net[$v]="/proc/$(field "$l" srv pid)/ns/net"
    cli_net[$v]="/proc/$(field "$l" cli pid)/ns/net"
    for _ in $(seq 50); do
        "$WEFT" --lab "$l" exec cli ping -c 1 -W 1 "${srv_ip[$v]}" >/dev/null 2>&1 && break
        sleep 0.2
    done
done

# The anchor: a bare veth pair between two namespaces.
veth_anchor

measure() {
    case $1 in
        vxlan | direct)
            nsenter --net="${srv_net[$1]}" "$iperf" -s -D -1 >/dev/null 2>&1 || true
            sleep 0.3
            nsenter --net="${cli_net[$1]}" "$iperf" -c "${srv_ip[$1]}" -t "$secs" -f m | mbps ;;
        veth) veth_measure ;;
    esac
}

variants=(vxlan direct veth)
run_rounds vxlan.sh
print_table 8
awk -v x="${med[vxlan]}" -v d="${med[direct]}" -v e="${med[veth]}" 'BEGIN {
    printf "vxlan / direct = %.3f (goal >= 0.70)\n", x / d
    printf "direct / veth  = %.3f\n", d / e
    printf "vxlan / veth   = %.3f\n", x / e
}'
