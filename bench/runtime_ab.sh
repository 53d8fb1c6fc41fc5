#!/bin/sh
# A/B of two weft binaries on part a of bench/runtime.sh (create + start + delete of a
# busybox bundle), for changes smaller than the drift between two runs of runtime.sh:
# hyperfine measures both in each of BLOCKS blocks, alternating, and the ratio is taken per
# block.
#
#   sudo bench/runtime_ab.sh OLD_WEFT NEW_WEFT     env: RUNS (60 per block), BLOCKS (10)
#
# Needs root, hyperfine, python3, runc (for `runc spec`) and busybox-static. Everything lives
# in a temp dir, removed at exit.
set -eu
HERE=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/bench/lib.sh"
[ $# = 2 ] || { echo "usage: $0 OLD_WEFT NEW_WEFT" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "run as root (namespaces, cgroups, mounts)" >&2; exit 1; }
RUNS=${RUNS:-60}
BLOCKS=${BLOCKS:-10}
TMP=$(mktemp -d /tmp/weft-bench-ab.XXXXXX)
trap 'for r in A B; do "$TMP/$r/weft-runc" --root "$TMP/root" delete -f bench >/dev/null 2>&1; done; rm -rf "$TMP"' EXIT INT TERM
chmod 755 "$TMP"
mkdir -p "$TMP/A" "$TMP/B" "$TMP/root"
ln -s "$(realpath "$1")" "$TMP/A/weft-runc"
ln -s "$(realpath "$2")" "$TMP/B/weft-runc"
busybox_bundle "$TMP/bundle"
cyc() { runc_cycle "$1" "$TMP/root" "$TMP/bundle"; }
# As runtime.sh: in a mount namespace without the hybrid layout's cgroup2 mount.
unshare -m sh -c "
    umount /sys/fs/cgroup/unified 2>/dev/null || true
    for k in \$(seq $BLOCKS); do
        hyperfine -N --style none --warmup 20 --runs $RUNS --export-json $TMP/ab-\$k.json \
            -n A \"sh -c '$(cyc "$TMP/A/weft-runc")'\" -n B \"sh -c '$(cyc "$TMP/B/weft-runc")'\" >/dev/null
    done"
python3 - "$TMP" "$BLOCKS" <<'PY'
import json, statistics, sys
tmp, blocks = sys.argv[1], int(sys.argv[2])
ratios = []
for k in range(1, blocks + 1):
    r = {x['command']: statistics.median(x['times']) * 1e3
         for x in json.load(open(f'{tmp}/ab-{k}.json'))['results']}
    ratios.append(r['B'] / r['A'])
    print(f"block {k}: A {r['A']:.3f} ms  B {r['B']:.3f} ms  B/A {ratios[-1]:.3f}")
print(f"B/A over {blocks} blocks: min {min(ratios):.3f} median {statistics.median(ratios):.3f} "
      f"max {max(ratios):.3f}")
PY
