#!/usr/bin/env bash
# Smoke test of the multi-node harness (tests/cluster/netns.sh): 4 namespaces on a bridge,
# 40 Mbit/s tbf links. Proves all-pairs reachability, isolation from everything outside the
# run, the shaped rate of a real TCP transfer, link down/up, and complete cleanup.
# Needs root, iproute2, ethtool, iputils-ping, socat (deploy/install-deps.sh).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=netns.sh
source "$HERE/netns.sh"

RATE_MBIT=40
BYTES=10000000
PORT=5001
passed=0 failed=0

pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
# check DESC CMD...: PASS/FAIL line from CMD's exit status
check() { local d=$1; shift; if "$@"; then pass "$d"; else fail "$d"; fi; }
die() { fail "$*"; echo "$passed passed, $failed failed"; exit 1; }

for t in ip tc ethtool ping socat ss; do
  command -v "$t" >/dev/null || die "missing tool $t (run deploy/install-deps.sh)"
done
[ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces)"

TMP=$(mktemp -d /tmp/gapsync-netns.XXXXXX)
trap 'rm -rf "$TMP"' EXIT          # cluster_up chains its own cleanup in front of this

cluster_up 4 "${RATE_MBIT}mbit" || die "cluster_up 4 ${RATE_MBIT}mbit"
S=$CLUSTER_SUFFIX
pass "cluster_up 4 ${RATE_MBIT}mbit (suffix $S: ${CLUSTER_NS[*]})"

reachable() { on "$1" ping -c1 -W2 -q "${CLUSTER_IP[$2]}" >/dev/null 2>&1; }
reachable_fast() { on "$1" ping -c1 -W1 -q "${CLUSTER_IP[$2]}" >/dev/null 2>&1; }

# --- every node reaches every other node
bad=()
for a in 1 2 3 4; do
  for b in 1 2 3 4; do
    [ "$a" = "$b" ] && continue
    reachable "$a" "$b" || bad+=("$a->$b")
  done
done
if [ ${#bad[@]} -eq 0 ]; then pass "all 12 ordered pairs ping"; else fail "unreachable: ${bad[*]}"; fi

# --- nothing outside the run is reachable
# (outputs are captured before grep: `cmd | grep -q` may fail under pipefail through SIGPIPE)
has() { grep -Eq -- "$1" <<<"$2"; }
root_routes() { ! has '(^|[ /])198\.1[89]\.' "$(ip -4 route show table all)"; }
check "root namespace has no 198.18/15 route" root_routes
check "bridge $CLUSTER_BRIDGE has no address" test -z "$(ip -o addr show dev "$CLUSTER_BRIDGE")"
host_addrs() {
  local i
  for i in 1 2 3 4; do [ -z "$(ip -o addr show dev "${CLUSTER_HOSTIF[i]}")" ] || return 1; done
}
check "root-side veths have no address" host_addrs
only_subnet_route() {
  local i r
  for i in 1 2 3 4; do
    r=$(on "$i" ip -4 route show)
    if [ "$(printf '%s\n' "$r" | grep -c .)" -ne 1 ] || [[ "$r" != "198.18.0.0/15 dev ${CLUSTER_IF[i]} "* ]]; then
      echo "    node $i routes: $r"; return 1
    fi
    r=$(on "$i" ip -6 route show 2>/dev/null || true)
    [ -z "$r" ] || { echo "    node $i has IPv6 routes: $r"; return 1; }
    # a route lookup only (sends nothing): an outside address has no route at all
    if on "$i" ip route get 192.0.2.1 >/dev/null 2>&1; then
      echo "    node $i has a route to 192.0.2.1"; return 1
    fi
  done
}
check "each namespace routes only 198.18.0.0/15 (no default route, no IPv6)" only_subnet_route

# --- both veth ends shaped, offloads off
shaped() {
  local i
  for i in 1 2 3 4; do
    has "tbf .*rate ${RATE_MBIT}Mbit" "$(tc qdisc show dev "${CLUSTER_HOSTIF[i]}")" || return 1
    has "tbf .*rate ${RATE_MBIT}Mbit" "$(_cluster_nsexec "${CLUSTER_NS[i]}" tc qdisc show dev "${CLUSTER_IF[i]}")" \
      || return 1
    local k_host k_ns f
    k_host=$(ethtool -k "${CLUSTER_HOSTIF[i]}") k_ns=$(on "$i" ethtool -k "${CLUSTER_IF[i]}")
    for f in tcp-segmentation-offload generic-segmentation-offload generic-receive-offload; do
      has "^$f: off" "$k_host" || { echo "    ${CLUSTER_HOSTIF[i]}: $f not off"; return 1; }
      has "^$f: off" "$k_ns" || { echo "    node $i ${CLUSTER_IF[i]}: $f not off"; return 1; }
    done
  done
}
check "tbf ${RATE_MBIT}mbit on both ends of every veth, TSO/GSO/GRO off" shaped

# --- bulk TCP transfer 1 -> 2 runs at the link rate
tbf_sent() { # tbf_sent NETNS|"" DEV: bytes the qdisc has sent
  if [ -n "$1" ]; then _cluster_nsexec "$1" tc -s qdisc show dev "$2"; else tc -s qdisc show dev "$2"; fi \
    | awk '/^ *Sent /{print $2; exit}'
}
listening() { [ -n "$(on "$1" ss -Htln "sport = :$2")" ]; }
sent_n1_before=$(tbf_sent "${CLUSTER_NS[1]}" "${CLUSTER_IF[1]}")
sent_h2_before=$(tbf_sent "" "${CLUSTER_HOSTIF[2]}")
on 2 bash -c "socat -u TCP-LISTEN:$PORT,bind=${CLUSTER_IP[2]},reuseaddr - | wc -c > '$TMP/bytes'" &
recv_pid=$!
wait_for 5 listening 2 "$PORT" || die "receiver on node 2 not listening on :$PORT"
t0=${EPOCHREALTIME/./}
head -c "$BYTES" /dev/zero | on 1 socat -u - "TCP:${CLUSTER_IP[2]}:$PORT" \
  || die "sender socat failed"
wait "$recv_pid" || die "receiver failed"
t1=${EPOCHREALTIME/./}
got=$(cat "$TMP/bytes")
if [ "$got" -eq "$BYTES" ]; then pass "node 2 received all $BYTES bytes"
else fail "node 2 received $got of $BYTES bytes"; fi
us=$(( t1 - t0 ))
rate_x100=$(( got * 800 / us ))          # bits per microsecond = Mbit/s, times 100
rate=$(printf '%d.%02d' $((rate_x100 / 100)) $((rate_x100 % 100)))
echo "    measured: $got bytes in $(printf '%d.%03d' $((us / 1000000)) $((us / 1000 % 1000))) s = $rate Mbit/s (link ${RATE_MBIT} Mbit/s)"
if [ "$rate_x100" -ge 2500 ] && [ "$rate_x100" -le 4500 ]; then
  pass "TCP transfer rate $rate Mbit/s within 25..45"
else
  fail "TCP transfer rate $rate Mbit/s outside 25..45"
fi
d_n1=$(( $(tbf_sent "${CLUSTER_NS[1]}" "${CLUSTER_IF[1]}") - sent_n1_before ))
d_h2=$(( $(tbf_sent "" "${CLUSTER_HOSTIF[2]}") - sent_h2_before ))
if [ "$d_n1" -ge "$BYTES" ] && [ "$d_h2" -ge "$BYTES" ]; then
  pass "the transfer went through node 1's uplink tbf ($d_n1 B) and node 2's downlink tbf ($d_h2 B)"
else
  fail "tbf counters: node 1 uplink $d_n1 B, node 2 downlink $d_h2 B (want >= $BYTES each)"
fi

# --- link down / up
link_down 2
if wait_for 5 ! reachable_fast 1 2; then pass "link_down 2: node 1 no longer reaches node 2"
else fail "link_down 2: node 1 still reaches node 2"; fi
check "link_down 2: node 1 still reaches node 3" reachable 1 3
link_up 2
if wait_for 10 reachable_fast 1 2; then pass "link_up 2: node 1 reaches node 2 again"
else fail "link_up 2: node 2 still unreachable"; fi

# --- cleanup leaves nothing behind
{ on 3 sleep 300; } 2>/dev/null &     # a straggler that cluster_down has to kill
straggler_job=$!
ns3_pids() { [ -n "$(ip netns pids "${CLUSTER_NS[3]}")" ]; }
wait_for 5 ns3_pids || die "background process did not start in node 3"
straggler=$(ip netns pids "${CLUSTER_NS[3]}" | head -n1)
leftovers() {
  { ip netns list | awk '{print $1}'; ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//'; } \
    | grep -- "gs$S-" || true
}
check "before cluster_down the run's names exist" test -n "$(leftovers)"
check "cluster_down succeeds" cluster_down
check "after cluster_down no namespace or interface named gs$S-* remains" test -z "$(leftovers)"
alive() { kill -0 "$1" 2>/dev/null; }
check "cluster_down killed the process left in a namespace" wait_for 5 ! alive "$straggler"
wait "$straggler_job" 2>/dev/null || true
check "cluster_down is idempotent" cluster_down

echo "$passed passed, $failed failed"
if [ "$failed" -ne 0 ]; then echo "FAIL: $(basename "$0")"; exit 1; fi
echo "PASS: $(basename "$0")"
