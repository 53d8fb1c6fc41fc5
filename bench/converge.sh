#!/usr/bin/env bash
# Route convergence after a node joins, at 10 and 50 nodes (goal: <= 1 s at 50 nodes).
#
# For each lab size N: a lab of N nodes; then, per round, a node joins (`weft lab node add`)
# and its first container is started (`weft --node J run -d`), which claims the new node's
# first block in the store. Every one of the N older nodes runs `ip -ts monitor route`
# meanwhile, so the moment its agent installs the route to the new block is stamped by the
# kernel's notification, with no polling. Reported per round, from t0 = the start of that
# `weft run` (an upper bound for the moment the block was claimed):
#   first  the first node's route     last  the last node's route (= convergence)
#   spread last - first (the fan-out across the agents alone)
# The joiner is removed again after each round (`weft lab node rm --force`), so N stays fixed.
#
#   sudo bench/converge.sh [ROUNDS (5)] [SIZES ("10 50")]
#   WEFT=target/x86_64-unknown-linux-gnu/release/weft sudo -E bench/converge.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
rounds=${1:-5}
sizes=${2:-10 50}

if [ "$(id -u)" != 0 ]; then
    echo "converge.sh: needs root (it builds weft labs): sudo $0 $*" >&2
    exit 1
fi
if [ -z "${WEFT:-}" ]; then
    echo "converge.sh: cargo build --release -p weft" >&2
    (cd "$root" && cargo build --release -p weft >&2)
    WEFT="$(release_dir "$root")/weft"
fi

state=$(mktemp -d /tmp/weft-bench-converge.XXXXXX)
export WEFT_ROOT="$state"
lab="bcv$$"
monitors=()
w() { "$WEFT" --lab "$lab" "$@"; }

stop_monitors() {
    for p in "${monitors[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${monitors[@]}"; do wait "$p" 2>/dev/null || true; done
    monitors=()
}
cleanup() {
    stop_monitors
    w lab down >/dev/null 2>&1 || true
    rm -rf "$state"
}
trap cleanup EXIT

# Seconds of the day from "2026-12-07T14:50:01.123456[789]".
sod() { awk -F'[T:]' '{ printf "%.6f\n", $2 * 3600 + $3 * 60 + $4 }'; }
# The /26 holding an IPv4 address.
block26() { IFS=. read -r a b c d <<<"$1"; echo "$a.$b.$c.$((d / 64 * 64))/26"; }

declare -A summary
for n in $sizes; do
    echo "converge.sh: lab $lab with $n nodes" >&2
    w lab up --nodes "$n" >/dev/null
    w network create net1 >/dev/null
    w --node node1 run -d --name warm --net net1 toolbox sleep 100000 >/dev/null
    lasts=()
    for ((r = 1; r <= rounds; r++)); do
        j="join$r"
        mon="$state/mon-$n-$r"
        mkdir -p "$mon"
        for ((i = 1; i <= n; i++)); do
            ip -ts -n "weft-$lab-node$i" monitor route >"$mon/node$i" 2>/dev/null &
            monitors+=($!)
        done
        sleep 0.5
        w lab node add "$j" >/dev/null 2>&1 || { echo "converge.sh: lab node add $j failed" >&2; exit 1; }
        sleep 0.5 # the joiner's agent starts; not part of the measurement
        t0=$(date +%Y-%m-%dT%H:%M:%S.%N | sod)
        w --node "$j" run -d --name "c$r" --net net1 toolbox sleep 100000 >/dev/null
        t_run=$(date +%Y-%m-%dT%H:%M:%S.%N | sod)
        ip=$(w -o json inspect "c$r" | sed -n 's/.*"ip": *"\([0-9.]*\)".*/\1/p' | head -1)
        blk=$(block26 "$ip")
        for _ in $(seq 100); do
            missing=0
            for ((i = 1; i <= n; i++)); do
                grep -q "] $blk " "$mon/node$i" || { missing=1; break; }
            done
            [ $missing = 0 ] && break
            sleep 0.1
        done
        stop_monitors
        [ $missing = 0 ] || { echo "converge.sh: round $r: not every node got $blk within 10 s" >&2; exit 1; }
        read -r first last <<<"$(for ((i = 1; i <= n; i++)); do
            grep -m1 "] $blk " "$mon/node$i" | sed 's/^\[\([^]]*\)\].*/\1/' | sod
        done | sort -g | awk -v t0="$t0" 'NR == 1 { f = $1 } { l = $1 } END { printf "%.0f %.0f", (f - t0) * 1000, (l - t0) * 1000 }')"
        printf 'N=%-3s round %d: run %4.0f ms, first %4s ms, last %4s ms, spread %4s ms (%s)\n' \
            "$n" "$r" "$(awk -v a="$t0" -v b="$t_run" 'BEGIN { print (b - a) * 1000 }')" \
            "$first" "$last" "$((last - first))" "$blk" >&2
        lasts+=("$last")
        summary[$n]="${summary[$n]:-} $last/$((last - first))"
        w rm -f "c$r" >/dev/null
        w lab node rm "$j" --force >/dev/null 2>&1
    done
    w lab down >/dev/null 2>&1
done

stats() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.0f %.0f %.0f", a[1], m, a[NR]}'; }
echo
echo "machine: $(nproc) CPU, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -sr)"
echo "route convergence after a node joins, $rounds rounds, ms from the start of its first run"
printf '%-6s %-28s %-28s\n' nodes "last node: min/median/max" "spread: min/median/max"
for n in $sizes; do
    l=$(for x in ${summary[$n]}; do echo "${x%/*}"; done | tr '\n' ' ' | stats)
    s=$(for x in ${summary[$n]}; do echo "${x#*/}"; done | tr '\n' ' ' | stats)
    printf '%-6s %-28s %-28s\n' "$n" "${l// //}" "${s// //}"
done
echo "goal: last node <= 1000 ms at 50 nodes"
