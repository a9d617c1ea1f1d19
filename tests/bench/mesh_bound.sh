#!/usr/bin/env bash
# What the emulated network itself allows: the cluster benchmark's setup (1 seed + N receivers,
# every link tbf-shaped both ways), but no BitTorrent, no TLS, no store and no causality. Every
# byte is placed in advance: the seed sends a slice of S/N to each receiver and every receiver
# sends a slice of S/N to each other receiver, all at once, as plain TCP streams of zeros
# (tests/bench/mesh_node.py). Each receiver then gets S and uploads (N-1)/N of S, as in a perfect
# swarm. Its finish time / (S / B_eff) bounds what any peer-to-peer design can reach here.
#
#   tests/bench/mesh_bound.sh        # ~2 min; BENCH_N (16), BENCH_RATE (40mbit), BENCH_RUNS (1),
#                                    # MESH_RCVBUF (32768, as gapsync; 0 = kernel autotuning)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
N=${BENCH_N:-16}
RATE=${BENCH_RATE:-40mbit}
RUNS=${BENCH_RUNS:-1}
S=$((128 * 1048576))
SLICE=$((S / N))
"$REPO/deploy/install-deps.sh" >/dev/null
source "$REPO/tests/cluster/netns.sh"
WORK=$(mktemp -d /var/tmp/gapsync-meshbound.XXXXXX)
source "$REPO/tests/bench/bench_lib.sh"
finish() {
  local rc=$?
  cluster_down
  rm -rf "$WORK"
  exit $rc
}
trap finish EXIT
say() { echo "mesh_bound: $*" >&2; }
NODES=$((N + 1))
PORT=9100
cluster_up $NODES "$RATE" >/dev/null 2>&1
be=$(beff $NODES "$RATE")
floor=$(awk -v s=$S -v b="$be" 'BEGIN { printf "%.2f", s / b }')
say "B_eff $(awk -v b="$be" 'BEGIN { printf "%.1f", b * 8 / 1e6 }') Mbit/s, floor ${floor} s"
for run in $(seq 1 "$RUNS"); do
  rm -f "$WORK"/done.*
  rx=()
  for j in $(seq 2 $NODES); do
    on "$j" env MESH_RCVBUF="${MESH_RCVBUF:-32768}" python3 "$REPO/tests/bench/mesh_node.py" recv "${CLUSTER_IP[j]}" $PORT $S > "$WORK/done.$j" &
    rx+=($!)
  done
  all_listening() {
    local j
    for j in $(seq 2 $NODES); do [ -n "$(on "$j" ss -Htln "sport = :$PORT")" ] || return 1; done
  }
  wait_for 30 all_listening || { say "receivers did not listen"; exit 1; }
  t0=$EPOCHREALTIME
  tx=()
  for i in $(seq 1 $NODES); do
    targets=()
    for j in $(seq 2 $NODES); do [ "$j" != "$i" ] && targets+=("${CLUSTER_IP[j]}:$PORT"); done
    on "$i" python3 "$REPO/tests/bench/mesh_node.py" send $SLICE "${targets[@]}" &
    tx+=($!)
  done
  for p in "${rx[@]}" "${tx[@]}"; do wait "$p"; done
  times=$(for j in $(seq 2 $NODES); do awk -v t0="$t0" '{ printf "%.3f\n", $1 - t0 }' "$WORK/done.$j"; done | sort -n)
  last=$(echo "$times" | tail -1)
  median=$(echo "$times" | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
  first=$(echo "$times" | head -1)
  say "run $run: $N receivers, $RATE: first $first s, median $median s ($(awk -v m="$median" -v f="$floor" 'BEGIN { printf "%.3f", m / f }')x), last $last s ($(awk -v m="$last" -v f="$floor" 'BEGIN { printf "%.3f", m / f }')x the floor)"
done
