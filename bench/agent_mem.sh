#!/usr/bin/env bash
# Agent memory at 50 nodes x 20 containers (goal: <= 20 MiB per agent).
#
# A lab of NODES nodes; PER containers (`toolbox sleep`, real containers with their shims,
# veths, addresses and routes) on every node, started JOBS at a time; then, once every node's
# agent has converged (a route to every other node's block), the memory of every agent
# process from /proc/PID/smaps_rollup:
#   Rss      resident pages, shared ones (the weft binary's text) counted in full
#   Pss      proportional: shared pages divided among the processes sharing them
#   Private  pages only this process has (what one more agent really costs)
# for the worker (`weft agent --no-supervise`, the daemon that holds the cluster state) and for
# its supervisor (the parent that restarts it), min/median/max over the nodes, in MiB.
#
#   sudo bench/agent_mem.sh [NODES (50)] [PER (20)] [JOBS (2)]
#   WEFT=target/x86_64-unknown-linux-gnu/release/weft sudo -E bench/agent_mem.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
nodes=${1:-50}
per=${2:-20}
jobs=${3:-2}

if [ "$(id -u)" != 0 ]; then
    echo "agent_mem.sh: needs root (it builds a weft lab): sudo $0 $*" >&2
    exit 1
fi
if [ -z "${WEFT:-}" ]; then
    echo "agent_mem.sh: cargo build --release -p weft" >&2
    (cd "$root" && cargo build --release -p weft >&2)
    WEFT="$(release_dir "$root")/weft"
fi

state=$(mktemp -d /tmp/weft-bench-mem.XXXXXX)
export WEFT_ROOT="$state" WEFT
lab="bmem$$"
export lab
w() { "$WEFT" --lab "$lab" "$@"; }
cleanup() {
    w lab down >/dev/null 2>&1 || true
    rm -rf "$state"
}
trap cleanup EXIT

start=$(date +%s)
echo "agent_mem.sh: lab $lab with $nodes nodes" >&2
w lab up --nodes "$nodes" >/dev/null
w network create net1 >/dev/null
w --node node1 run -d --name warm --net net1 toolbox sleep 100000 >/dev/null
echo "agent_mem.sh: starting $((nodes * per)) containers, $jobs at a time" >&2
for ((i = 1; i <= nodes; i++)); do
    for ((k = 1; k <= per; k++)); do echo "node$i c$i-$k"; done
done | xargs -P "$jobs" -L 1 sh -c '"$WEFT" --lab "$lab" --node "$0" run -d --name "$1" --net net1 toolbox sleep 100000 >/dev/null || echo "run $1 on $0 failed" >&2'
w rm -f warm >/dev/null
started=$(w ps | grep -c ' running ' || true)
echo "agent_mem.sh: $started containers running after $(($(date +%s) - start)) s" >&2

# Converged: every node has a weft route (proto 80) for every node's block.
blocks=$(w ipam show --show-blocks | grep -c '/26' || true)
for _ in $(seq 300); do
    ok=1
    for ((i = 1; i <= nodes; i++)); do
        n=$(ip -n "weft-$lab-node$i" -4 route show proto 80 | grep -c '/26' || true)
        [ "$n" -ge "$blocks" ] || { ok=0; break; }
    done
    [ $ok = 1 ] && break
    sleep 1
done
[ $ok = 1 ] || echo "agent_mem.sh: warning: not every node had all $blocks block routes" >&2
sleep 2

kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/smaps_rollup"; }
declare -A col
for ((i = 1; i <= nodes; i++)); do
    worker=$(cat "$state/labs/$lab/nodes/node$i/agent.pid")
    sup=$(w -o json lab ls | tr -d ' \n' | grep -o "\"name\":\"node$i\",\"address\":\"[0-9.]*\",\"agent_pid\":[0-9]*" | sed 's/.*://')
    for role in worker sup; do
        pid=${!role}
        rss=$(kib "$pid" Rss)
        pss=$(kib "$pid" Pss)
        priv=$(($(kib "$pid" Private_Clean) + $(kib "$pid" Private_Dirty)))
        col[$role-rss]="${col[$role-rss]:-} $rss"
        col[$role-pss]="${col[$role-pss]:-} $pss"
        col[$role-priv]="${col[$role-priv]:-} $priv"
    done
done

stats() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1/1024} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.1f/%.1f/%.1f", a[1], m, a[NR]}'; }
echo
echo "machine: $(nproc) CPU, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -sr)"
echo "$nodes nodes x $per containers ($started running, $blocks blocks), agent memory in MiB, min/median/max over nodes"
printf '%-11s %-18s %-18s %-18s\n' process Rss Pss Private
for role in worker sup; do
    printf '%-11s %-18s %-18s %-18s\n' "$([ $role = sup ] && echo supervisor || echo worker)" \
        "$(echo "${col[$role-rss]}" | stats)" "$(echo "${col[$role-pss]}" | stats)" \
        "$(echo "${col[$role-priv]}" | stats)"
done
echo "goal: <= 20 MiB per agent"
