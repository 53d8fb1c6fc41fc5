#!/bin/sh
# The runtime benchmarks of bench/README.md ("runtime"), side by side with the anchors:
#   a) create + start + delete of one busybox bundle: weft-runc vs runc vs crun
#   b) `weft run --rm toolbox sh -c true` (routed network, in a lab) vs `podman run --rm
#      --network none` of the same image
#   c) Pss of weft's shims vs conmon, 100 idle containers each
#
#   sudo bench/runtime.sh [a] [b] [c]      (default: all three)
#   env: RUNS (default 200), WARMUP (20), N_IDLE (100), WEFT (release weft binary)
#
# Needs root, hyperfine, runc, crun, busybox-static, podman, conmon, python3. Everything it
# makes lives in a temp dir, a lab named weft-bench-rt and a private podman root; all of it
# is removed at the end, also on failure or Ctrl-C.
set -eu

RUNS=${RUNS:-200}
WARMUP=${WARMUP:-20}
N_IDLE=${N_IDLE:-100}
HERE=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/bench/lib.sh"
WEFT=${WEFT:-$(release_dir "$HERE")/weft}
LAB=weft-bench-rt
# podman's OCI runtime (runc by default; where runc cannot set the rlimits podman asks
# for, e.g. in a sandbox, PODMAN_RUNTIME=weft-runc measures podman + conmon around weft).
PODMAN_RUNTIME=${PODMAN_RUNTIME:-runc}
PARTS=${*:-a b c}

[ "$(id -u)" = 0 ] || { echo "run as root (namespaces, cgroups, mounts)" >&2; exit 1; }
for p in hyperfine runc crun podman conmon python3; do
    command -v "$p" >/dev/null || { echo "missing $p (apt-get install $p)" >&2; exit 1; }
done
[ -x /bin/busybox ] || { echo "missing /bin/busybox (apt-get install busybox-static)" >&2; exit 1; }
if [ ! -x "$WEFT" ]; then
    echo "building $WEFT (cargo build --release -p weft)" >&2
    (cd "$HERE" && cargo build --release -p weft >&2)
fi

TMP=$(mktemp -d /tmp/weft-bench-rt.XXXXXX)
chmod 755 "$TMP"
ln -s "$WEFT" "$TMP/weft-runc"
[ "$PODMAN_RUNTIME" = weft-runc ] && PODMAN_RUNTIME=$TMP/weft-runc
PM_BASE=$TMP/podman
# podman asks for limits above this machine's hard limits, which the runtime cannot set:
# give the containers the limits we have.
ULIMITS="--ulimit nofile=$(ulimit -Sn):$(ulimit -Hn) --ulimit nproc=$(awk '/^Max processes/ {gsub("unlimited", "-1"); print $3 ":" $4}' /proc/self/limits)"

podman_() {
    podman --root "$PM_BASE/storage" --runroot "$PM_BASE/run" --tmpdir "$PM_BASE/tmp" \
        --storage-driver overlay --cgroup-manager cgroupfs --events-backend file --runtime $PODMAN_RUNTIME "$@"
}

cleanup() {
    set +e
    if [ -d "$PM_BASE" ]; then
        podman_ rm -af -t 0 >/dev/null 2>&1
        podman_ rmi -af >/dev/null 2>&1
        podman_ system reset -f >/dev/null 2>&1
    fi
    "$WEFT" --lab $LAB lab down >/dev/null 2>&1
    for r in weft-runc runc crun; do
        for id in $(ls "$TMP/root-$r" 2>/dev/null); do
            case $r in
                weft-runc) "$TMP/weft-runc" --root "$TMP/root-$r" delete -f "$id" ;;
                *) $r --root "$TMP/root-$r" delete -f "$id" ;;
            esac
        done >/dev/null 2>&1
    done
    grep " $TMP" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# min/median/max (ms) of hyperfine's JSON export, and ratios to the reference command.
summary() { # JSON REFERENCE-NAME...
    python3 - "$@" <<'EOF'
import json, statistics, sys
data = json.load(open(sys.argv[1]))["results"]
refs = sys.argv[2:]
by = {r["command"]: r for r in data}
med = lambda r: statistics.median(r["times"]) * 1e3
print(f"  {'command':<16} {'n':>4} {'min':>8} {'median':>8} {'max':>8}  (ms)")
for r in data:
    t = [x * 1e3 for x in r["times"]]
    print(f"  {r['command']:<16} {len(t):>4} {min(t):8.2f} {med(r):8.2f} {max(t):8.2f}")
first = data[0]
if refs:
    best = min((by[n] for n in refs if n in by), key=med)
    print(f"  ratio of medians {first['command']} / {best['command']} (the faster anchor): "
          f"{med(first) / med(best):.2f}")
EOF
}

machine() {
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr)"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# --- a) create + start + delete of the same busybox bundle ------------------------------
part_a() {
    echo "== a) create + start + delete of a busybox bundle ($RUNS runs, $WARMUP warm-up)"
    B=$TMP/bundle
    busybox_bundle "$B" || exit 1
    mkdir -p "$TMP/root-weft-runc" "$TMP/root-runc" "$TMP/root-crun"
    cycle() { runc_cycle "$1" "$2" "$B"; } # RUNTIME-COMMAND ROOT
    # crun 1.8 refuses the hybrid cgroup layout of this machine: all three run in a mount
    # namespace where /sys/fs/cgroup/unified is unmounted.
    unshare -m sh -c "
        umount /sys/fs/cgroup/unified 2>/dev/null || true
        hyperfine -N --style basic --warmup $WARMUP --runs $RUNS --export-json $TMP/a.json \
            -n weft-runc \"sh -c '$(cycle "$TMP/weft-runc" "$TMP/root-weft-runc")'\" \
            -n runc \"sh -c '$(cycle runc "$TMP/root-runc")'\" \
            -n crun \"sh -c '$(cycle crun "$TMP/root-crun")'\" \
            -n floor \"unshare -m -u -i -n -p -f /bin/true\"
    " >"$TMP/a.log" 2>&1 || { cat "$TMP/a.log" >&2; exit 1; }
    summary "$TMP/a.json" runc crun
    echo "  (each command runs in sh -c: one shell start is in every figure alike)"
}

# --- b) weft run --rm vs podman run --rm --------------------------------------------------
part_b() {
    echo "== b) weft run --rm toolbox sh -c true (routed network) vs podman run --rm --network none ($RUNS runs)"
    "$WEFT" --lab $LAB lab up --nodes n1 >/dev/null 2>&1
    "$WEFT" --lab $LAB network create bnet >/dev/null
    # The same image for podman: the toolbox's root filesystem, imported.
    "$WEFT" --lab $LAB --node n1 run --rm --net bnet toolbox sh -c true
    ROOTFS=$(python3 -c "import json,sys; print([i for i in json.load(sys.stdin) if i['name']=='toolbox'][0]['rootfs'])" \
        <<EOF
$("$WEFT" -o json image ls)
EOF
)
    tar -C "$ROOTFS" -cf "$TMP/toolbox.tar" .
    podman_ import "$TMP/toolbox.tar" localhost/toolbox:bench >/dev/null
    podman_ run --rm $ULIMITS --network none localhost/toolbox:bench sh -c true
    hyperfine -N --style basic --warmup $((WARMUP / 4 + 1)) --runs "$RUNS" --export-json "$TMP/b.json" \
        -n "weft run" "$WEFT --lab $LAB --node n1 run --rm --net bnet toolbox sh -c true" \
        -n "podman run" "podman --root $PM_BASE/storage --runroot $PM_BASE/run --tmpdir $PM_BASE/tmp --storage-driver overlay --cgroup-manager cgroupfs --events-backend file --runtime $PODMAN_RUNTIME run --rm $ULIMITS --network none localhost/toolbox:bench sh -c true" \
        >"$TMP/b.log" 2>&1 || { cat "$TMP/b.log" >&2; exit 1; }
    summary "$TMP/b.json" "podman run"
    echo "  podman's runtime: $PODMAN_RUNTIME"
}

# --- c) memory of the shims: weft's shim vs conmon --------------------------------------
pss_of() { # PIDS... -> total Pss in kB, and count
    for p in "$@"; do awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null; done |
        awk '{s += $1; n++} END {printf "%d %d\n", s, n}'
}

part_c() {
    echo "== c) private memory (Pss) of the per-container process, $N_IDLE idle containers each"
    if ! "$WEFT" --lab $LAB network inspect bnet >/dev/null 2>&1; then
        "$WEFT" --lab $LAB lab up --nodes n1 >/dev/null 2>&1 || true
        "$WEFT" --lab $LAB network create bnet >/dev/null
    fi
    podman_ image exists localhost/busybox:bench 2>/dev/null || {
        mkdir -p "$TMP/bb/bin"
        cp /bin/busybox "$TMP/bb/bin/" && ln -s busybox "$TMP/bb/bin/sleep"
        tar -C "$TMP/bb" -cf "$TMP/bb.tar" .
        podman_ import "$TMP/bb.tar" localhost/busybox:bench >/dev/null
    }
    i=0
    while [ $i -lt "$N_IDLE" ]; do
        "$WEFT" --lab $LAB --node n1 run -d --name idle$i --net bnet toolbox sleep 100000 >/dev/null
        podman_ run -d $ULIMITS --network none --name idle$i localhost/busybox:bench sleep 100000 >/dev/null
        i=$((i + 1))
    done
    sleep 2
    # Processes by command line: weft's shims of this lab, conmons of this podman.
    procs() { # shim|conmon
        python3 - "$1" "$LAB" "$PM_BASE" <<'EOF'
import os, sys
kind, lab, pm = sys.argv[1:]
for p in filter(str.isdigit, os.listdir("/proc")):
    try:
        args = open(f"/proc/{p}/cmdline", "rb").read().decode(errors="replace").split("\0")
        comm = open(f"/proc/{p}/comm").read().strip()
    except OSError:
        continue
    if kind == "shim" and len(args) > 2 and args[1] == "shim" and f"/{lab}/" in args[2]:
        print(p)
    if kind == "conmon" and comm == "conmon" and any(pm in a for a in args):
        print(p)
EOF
    }
    shims=$(procs shim)
    conmons=$(procs conmon)
    set -- $(pss_of $shims)
    w_kb=$1 w_n=$2
    set -- $(pss_of $conmons)
    c_kb=$1 c_n=$2
    per() { python3 -c "print(f'{$1 / max($2, 1):.0f}')"; }
    echo "  weft shim: $w_n processes, Pss total $w_kb kB, $(per "$w_kb" "$w_n") kB each"
    echo "  conmon:    $c_n processes, Pss total $c_kb kB, $(per "$c_kb" "$c_n") kB each"
    python3 -c "print(f'  ratio weft shim / conmon (totals): {$w_kb / max($c_kb, 1):.2f}')"
    for p in $shims; do echo "$p"; done | head -1 | while read -r p; do
        echo "  one shim's smaps_rollup: $(grep -E '^(Rss|Pss|Private_Clean|Private_Dirty|Shared_Clean):' /proc/$p/smaps_rollup | tr -s ' ' | tr '\n' ' ')"
    done
    for p in $conmons; do echo "$p"; done | head -1 | while read -r p; do
        echo "  one conmon's smaps_rollup: $(grep -E '^(Rss|Pss|Private_Clean|Private_Dirty|Shared_Clean):' /proc/$p/smaps_rollup | tr -s ' ' | tr '\n' ' ')"
    done
}

machine
for p in $PARTS; do "part_$p"; done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
