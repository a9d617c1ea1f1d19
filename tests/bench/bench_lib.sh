# Shared by the cluster benchmarks (source after tests/cluster/netns.sh, with WORK set).

# beff NODES RATE -> bytes/s of one plain TCP stream from node 1 to node 2
beff() {
  local bytes=$((64 * 1048576)) port=7999 t0 t1
  [ "$2" = 40mbit ] && bytes=$((32 * 1048576))
  on 2 bash -c "socat -u TCP-LISTEN:$port,bind=${CLUSTER_IP[2]},reuseaddr - | wc -c > '$WORK/beff'" &
  local rx=$!
  listening() { [ -n "$(on 2 ss -Htln "sport = :$port")" ]; }
  wait_for 10 listening
  t0=${EPOCHREALTIME/./}
  head -c "$bytes" /dev/zero | on 1 socat -u - "TCP:${CLUSTER_IP[2]}:$port"
  wait "$rx"
  t1=${EPOCHREALTIME/./}
  [ "$(cat "$WORK/beff")" = "$bytes" ] || { say "B_eff transfer incomplete"; return 1; }
  awk -v b="$bytes" -v us=$((t1 - t0)) 'BEGIN { printf "%.0f", b / (us / 1e6) }'
}
