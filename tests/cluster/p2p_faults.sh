#!/usr/bin/env bash
# Data-plane faults in network namespaces (links shaped to 40 Mbit/s):
#  1. a peer that uploads corrupt bytes: its pieces are rejected, it is banned, the others finish
#     from the healthy seed, nothing corrupt is stored (fsck clean);
#  2. kill -9 of a receiving node mid-transfer: the others finish; restarted, it resumes from the
#     verified pieces it had stored;
#  3. a node cut off (link down) mid-transfer and reconnected: it converges.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
: "${GAPSYNC:?set GAPSYNC to the gapsync binary}"
source "$HERE/netns.sh"
source "$HERE/p2p_lib.sh"
p2p_test p2p_faults
N=5
p2p_setup $N
cluster_up $N 40mbit
trap p2p_finish EXIT
fsck_all() { local i; for i in "$@"; do p2p_stop "$i"; G store fsck --store "$WORK/n$i/data/store" >/dev/null || fail "fsck on node-$i"; done; }
percent() { local p; p=$(release_field "$1" "$2" percent); echo "${p:-0}"; }
at_least() { awk -v a="$(percent "$1" "$2")" -v b="$3" 'BEGIN { exit !(a >= b) }'; }

echo "=== 1. a peer that uploads corrupt pieces (t=${SECONDS}s)"
# node-1 and node-2 both hold the release; node-2 flips a byte in every block it sends.
p2p_config 1
for i in 2 3 4; do p2p_config $i 1; done
P2P_ENV[2]="GAPSYNC_TEST_CORRUPT_UPLOADS=1"
for i in 1 2; do p2p_start $i; done
make_release "$WORK/b1" one 1.0.0 8 8 4
for i in 1 2; do G ingest "$WORK/b1" --agent "$WORK/n$i/agent.sock" >/dev/null; done
for i in 3 4; do p2p_start $i; done
done_34() { has_release 3 one@1.0.0 && has_release 4 one@1.0.0; }
wait_for 120 done_34 || fail "receivers did not finish: node-3 $(percent 3 one@1.0.0)%, node-4 $(percent 4 one@1.0.0)%"
for i in 3 4; do
  grep -q "banned peer ${CLUSTER_IP[2]}:[0-9]*: " "$WORK/n$i/agent.log" || fail "node-$i did not ban the corrupting node-2"
  grep "banned peer ${CLUSTER_IP[2]}:[0-9]*: " "$WORK/n$i/agent.log" | head -1 | sed "s/^/    node-$i: /"
done
echo "    $(grep -c 'failed its hash check' "$WORK/n3/agent.log") pieces rejected on node-3, $(grep -c 'failed its hash check' "$WORK/n4/agent.log") on node-4 (t=${SECONDS}s)"
fsck_all 1 2 3 4
echo "    both receivers complete, fsck clean on every node (t=${SECONDS}s)"

echo "=== 2. kill -9 of a receiving node mid-transfer, then restart (t=${SECONDS}s)"
for i in 1 2 3 4; do rm -rf "$WORK/n$i/data" "$WORK/n$i/agent.log"; done
unset 'P2P_ENV[2]'
for i in 1 2 3; do p2p_start $i; done
make_release "$WORK/b2" two 1.0.0 16 8 8
G ingest "$WORK/b2" --agent "$WORK/n1/agent.sock" >/dev/null
wait_for 120 at_least 3 two@1.0.0 30 || fail "node-3 never got to 30 %"
echo "    node-3 at $(percent 3 two@1.0.0) %: kill -9 (t=${SECONDS}s)"
p2p_kill 3
wait_for 120 has_release 2 two@1.0.0 || fail "node-2 did not finish without node-3"
echo "    node-2 finished without it (t=${SECONDS}s)"
p2p_start 3
held=$(grep -o "release two@1.0.0: [0-9]* blobs, [0-9]* pieces, [0-9]* of" "$WORK/n3/agent.log" | tail -1 | awk '{print $(NF-1)}')
[ "${held:-0}" -gt 0 ] || fail "node-3 restarted without the pieces it had verified"
echo "    restarted node-3 resumes with $held verified bytes kept (t=${SECONDS}s)"
wait_for 120 has_release 3 two@1.0.0 || fail "node-3 did not finish after restart: $(percent 3 two@1.0.0)%"
fsck_all 1 2 3
echo "    node-3 complete, fsck clean (t=${SECONDS}s)"

echo "=== 3. a node cut off mid-transfer, then reconnected (t=${SECONDS}s)"
for i in 1 2 3 5; do rm -rf "$WORK/n$i/data" "$WORK/n$i/agent.log"; done
p2p_config 5 1
for i in 1 2 5; do p2p_start $i; done
make_release "$WORK/b3" three 1.0.0 16 8
G ingest "$WORK/b3" --agent "$WORK/n1/agent.sock" >/dev/null
wait_for 120 at_least 5 three@1.0.0 20 || fail "node-5 never got to 20 %"
link_down 5
echo "    node-5 at $(percent 5 three@1.0.0) %: link down (t=${SECONDS}s)"
wait_for 120 has_release 2 three@1.0.0 || fail "node-2 did not finish while node-5 was cut off"
was=$(percent 5 three@1.0.0)
! has_release 5 three@1.0.0 || fail "node-5 finished while cut off"
link_up 5
echo "    node-2 finished; node-5 stuck at $was %: link up (t=${SECONDS}s)"
wait_for 120 has_release 5 three@1.0.0 || fail "node-5 did not converge after reconnecting: $(percent 5 three@1.0.0)%"
fsck_all 1 2 5
echo "    node-5 complete, fsck clean (t=${SECONDS}s)"
