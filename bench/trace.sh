#!/usr/bin/env bash
# Prediction time of `weft trace` for a cross-node path through a service, with many services and
# policies loaded, side by side (same run, interleaved) with what a person does by hand for the
# same hops: `ip route get` in each namespace of the path and `nft list table inet weft` on each
# node it crosses. Prints min/median/max (ms) of both and the ratio of the medians
# (goal: weft trace <= 50 ms).
#
#   sudo bench/trace.sh [ROUNDS (20)]
#   SERVICES=10000 POLICIES=1000 (defaults) pick the load;
#   WEFT=target/x86_64-unknown-linux-gnu/release/weft sudo -E bench/trace.sh   # use a weft binary already built
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
rounds=${1:-20}
services=${SERVICES:-10000}
policies=${POLICIES:-1000}

if [ "$(id -u)" != 0 ]; then
    echo "trace.sh: needs root (it builds a weft lab): sudo $0 $*" >&2
    exit 1
fi
command -v nft >/dev/null || { echo "trace.sh: nft not found: apt-get install nftables" >&2; exit 1; }
if [ -z "${WEFT:-}" ]; then
    echo "trace.sh: cargo build --release -p weft" >&2
    (cd "$root" && cargo build --release -p weft >&2)
    WEFT="$(release_dir "$root")/weft"
fi

lab="btr$$"
state=$(mktemp -d /tmp/weft-bench-trace.XXXXXX)
export WEFT_ROOT="$state"
w() { "$WEFT" --lab "$lab" "$@"; }
cleanup() {
    w lab down >/dev/null 2>&1 || true
    rm -rf "$state"
}
trap cleanup EXIT

echo "trace.sh: lab $lab (master, slave1), $services services, $policies policies" >&2
w lab up --nodes master,slave1 >/dev/null
w network create net1 --isolation none >/dev/null
w --node slave1 run -d --name web-b --net net1 --label app=web toolbox httpd >/dev/null
w --node master run -d --name client --net net1 --label role=client toolbox sleep 100000 >/dev/null

# The traced service and its endpoint on the other node; the others select workloads that do
# not exist (the table still holds each one: a map element and a no-endpoints entry).
{
    printf 'apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector:\n    app: web\n  ports:\n  - port: 80\n'
    for i in $(seq 2 "$services"); do
        printf -- '---\napiVersion: v1\nkind: Service\nmetadata:\n  name: s%05d\nspec:\n  selector:\n    app: a%05d\n  ports:\n  - port: 80\n' "$i" "$i"
    done
    # Policies, all selecting the endpoint, each allowing one team: the packet meets them all.
    for i in $(seq 1 "$policies"); do
        printf -- "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: p%04d\nspec:\n  order: %d\n  selector: app == 'web'\n  ingress:\n  - action: Allow\n    protocol: TCP\n    source:\n      selector: team == 't%04d'\n    destination:\n      ports:\n      - 80\n" "$i" "$i" "$i"
    done
    printf -- "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: zz-allow-client\nspec:\n  order: 100000\n  selector: app == 'web'\n  ingress:\n  - action: Allow\n    source:\n      selector: role == 'client'\n"
} >"$state/load.yaml"
t0=$(date +%s%N)
w apply -f "$state/load.yaml" >/dev/null
echo "trace.sh: applied in $(( ($(date +%s%N) - t0) / 1000000 )) ms; waiting for the agents" >&2

svc_ip=$(w -o json get svc web | sed -n 's/.*"clusterIP": *"\([0-9.]*\)".*/\1/p' | head -1)
ep_ip=$(w -o json inspect web-b | sed -n 's/.*"ip": *"\([0-9.]*\)".*/\1/p')
cl_ip=$(w -o json inspect client | sed -n 's/.*"ip": *"\([0-9.]*\)".*/\1/p')
cl_pid=$(w -o json inspect client | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
ep_pid=$(w -o json inspect web-b | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
ok=""
for _ in $(seq 1 120); do
    if w trace client svc:web --verify >"$state/verify.txt" 2>&1; then ok=1; break; fi
    sleep 1
done
[ -n "$ok" ] || { cat "$state/verify.txt" >&2; echo "trace.sh: the path never verified" >&2; exit 1; }
grep -q "prediction and observation agree" "$state/verify.txt"
echo "trace.sh: client -> svc:web ($svc_ip -> $ep_ip) verified; timing $rounds rounds" >&2

now() { date +%s%N; }
weft_run() { w trace client svc:web >/dev/null; }
hand_run() {
    nsenter --net="/proc/$cl_pid/ns/net" ip route get "$svc_ip" >/dev/null
    ip -n "weft-$lab-master" route get "$ep_ip" >/dev/null
    ip netns exec "weft-$lab-master" nft list table inet weft >/dev/null
    ip -n "weft-$lab-slave1" route get "$ep_ip" >/dev/null
    ip netns exec "weft-$lab-slave1" nft list table inet weft >/dev/null
    nsenter --net="/proc/$ep_pid/ns/net" ip route get "$cl_ip" >/dev/null
    ip -n "weft-$lab-slave1" route get "$cl_ip" >/dev/null
    ip -n "weft-$lab-master" route get "$cl_ip" >/dev/null
}
weft_run; hand_run # warm-up
: >"$state/weft.ms"
: >"$state/hand.ms"
for r in $(seq 1 "$rounds"); do
    for v in weft hand; do
        if [ $((r % 2)) = 0 ]; then v=$([ "$v" = weft ] && echo hand || echo weft); fi
        s=$(now)
        "${v}_run"
        echo "scale=3; ($(now) - $s) / 1000000" | bc >>"$state/$v.ms"
    done
done

stats() { sort -n "$1" | awk '{ a[NR] = $1 } END { printf "%.1f %.1f %.1f", a[1], (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2), a[NR] }'; }
read -r wmin wmed wmax <<<"$(stats "$state/weft.ms")"
read -r hmin hmed hmax <<<"$(stats "$state/hand.ms")"
echo "machine: $(nproc) CPU, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(uname -r)"
echo "load: $services services, $policies policies; path client (master) -> svc:web -> web-b (slave1), both legs"
printf '%-44s %8s %8s %8s\n' "variant (ms, $rounds rounds)" min median max
printf '%-44s %8s %8s %8s\n' "weft trace (prediction, whole command)" "$wmin" "$wmed" "$wmax"
printf '%-44s %8s %8s %8s\n' "by hand: 6x ip route get + 2x nft list table" "$hmin" "$hmed" "$hmax"
echo "ratio of medians weft/hand: $(echo "scale=3; $wmed / $hmed" | bc)   goal: weft median <= 50 ms"
