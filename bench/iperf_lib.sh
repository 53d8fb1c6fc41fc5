# Shared by bench/bridge.sh and bench/vxlan.sh (sourced, not run): the bare veth anchor,
# iperf3's result, interleaved rounds and the min/median/max table.
#
# The sourcing script sets: iperf (the iperf3 path), secs, rounds, ns_a, ns_b, the array
# `variants`, and a function `measure VARIANT` that prints Mbit/s (it may call veth_measure).

# A bare veth pair between the namespaces $ns_a (10.99.0.1) and $ns_b (10.99.0.2).
veth_anchor() {
    ip netns add "$ns_a"
    ip netns add "$ns_b"
    ip -n "$ns_a" link add veth-a type veth peer name veth-b netns "$ns_b"
    ip -n "$ns_a" addr add 10.99.0.1/24 dev veth-a
    ip -n "$ns_b" addr add 10.99.0.2/24 dev veth-b
    ip -n "$ns_a" link set veth-a up
    ip -n "$ns_b" link set veth-b up
    ip -n "$ns_a" link set lo up
    ip -n "$ns_b" link set lo up
}

# Mbit/s received, from iperf3's text output.
mbps() { awk '/receiver/ { for (i = 1; i <= NF; i++) if ($i == "Mbits/sec") print $(i-1) }' | tail -1; }

# One measurement over the veth anchor.
veth_measure() {
    ip netns exec "$ns_b" "$iperf" -s -D -1 >/dev/null 2>&1 || true
    sleep 0.3
    ip netns exec "$ns_a" "$iperf" -c 10.99.0.2 -t "$secs" -f m | mbps
}

# $rounds rounds of every variant, in an order rotating by round; results[VARIANT] collects
# the figures. $1 names the script in messages.
declare -A results
run_rounds() {
    local r k v x
    for ((r = 0; r < rounds; r++)); do
        for ((k = 0; k < ${#variants[@]}; k++)); do
            v=${variants[$(((k + r) % ${#variants[@]}))]}
            x=$(measure "$v")
            [ -n "$x" ] || { echo "$1: $v gave no result" >&2; exit 1; }
            results[$v]="${results[$v]:-} $x"
            echo "round $((r + 1)) $v $x Mbit/s" >&2
        done
    done
}

stats() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.0f %.0f %.0f", a[1], m, a[NR]}'; }

# The machine, then min/median/max per variant (column width $1); med[VARIANT] = the median.
declare -A med
print_table() {
    local v lo md hi
    echo
    echo "machine: $(nproc) CPU, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -sr)"
    echo "iperf3 TCP, 1 stream, ${secs}s x $rounds rounds, Mbit/s received"
    printf "%-${1}s %10s %10s %10s\n" variant min median max
    for v in "${variants[@]}"; do
        read -r lo md hi <<<"$(echo "${results[$v]}" | stats)"
        med[$v]=$md
        printf "%-${1}s %10s %10s %10s\n" "$v" "$lo" "$md" "$hi"
    done
}
