#!/usr/bin/env bash
# The 4-node scenario: a release ingested on node-1 spreads to every node over the BitTorrent data
# plane (mutual TLS), node-2..4 knowing only node-1 as a peer. Every node ends with the release
# complete, `store fsck` clean and the same blobs; node-1's `cluster status` shows all four.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
: "${GAPSYNC:?set GAPSYNC to the gapsync binary}"
source "$HERE/netns.sh"
source "$HERE/p2p_lib.sh"
p2p_test spread
N=4
REL=big@1.0.0

p2p_setup $N
cluster_up $N "${SPREAD_RATE:-200mbit}"
trap p2p_finish EXIT
p2p_config 1
for i in 2 3 4; do p2p_config $i 1; done
for i in $(seq 1 $N); do p2p_start $i; done

echo "--- bundle: 5 artifacts, 40 MiB, ingested on node-1"
make_release "$WORK/bundle" big 1.0.0 16 8 8 4 4
G ingest "$WORK/bundle" --agent "$WORK/n1/agent.sock" >/dev/null
has_release 1 $REL || fail "node-1 does not hold $REL after ingest"

echo "--- every node ends with the release complete"
start=$EPOCHREALTIME
all_complete() { for i in $(seq 1 $N); do has_release $i $REL || return 1; done; }
wait_for 120 all_complete || fail "not complete everywhere: $(for i in $(seq 1 $N); do echo -n "node-$i=$(release_field $i $REL percent)% "; done)"
echo "    all $N nodes complete after $(echo "$EPOCHREALTIME - $start" | bc) s"

echo "--- node-1's cluster status shows every node with the release complete"
everyone_seen() {
  status_of 1 | jq -e --arg r $REL '[.nodes[] | select(.reachable) | .releases[] | select(.release == $r and .complete and .percent == 100)] | length == 4' >/dev/null
}
wait_for 20 everyone_seen || fail "node-1's view: $(status_of 1 | jq -c '[.nodes[] | {node, releases: [.releases[] | {release, percent}]}]')"
G cluster status --agent "$WORK/n1/agent.sock" | sed 's/^/    /'
up=$(status_of 1 | jq --arg r $REL '[.nodes[] | select(.self) | .releases[] | select(.release == $r) | .uploaded] | .[0]')
echo "    node-1 uploaded $up payload bytes (the release is $((40 * 1048576 + 15 * 4099)) bytes)"

echo "--- stop every agent; fsck is clean and every store holds the same blobs"
for i in $(seq 1 $N); do p2p_stop $i; done
G store ls --store "$WORK/n1/data/store" --json | jq -c '{blobs, bytes, releases: [.releases[].release_digest]}' > "$WORK/blobs-1"
for i in $(seq 1 $N); do
  G store fsck --store "$WORK/n$i/data/store" >/dev/null || fail "fsck on node-$i"
  G store ls --store "$WORK/n$i/data/store" --json | jq -c '{blobs, bytes, releases: [.releases[].release_digest]}' > "$WORK/blobs-$i"
  cmp -s "$WORK/blobs-1" "$WORK/blobs-$i" || fail "node-$i: $(cat "$WORK/blobs-$i") != node-1: $(cat "$WORK/blobs-1")"
  G store ls --store "$WORK/n$i/data/store" --json | jq -e --arg r $REL '[.releases[] | select(.app + "@" + .version == $r)] | length == 1' >/dev/null \
    || fail "node-$i: release not in its store"
done
echo "    fsck clean on $N nodes, each: $(cat "$WORK/blobs-1")"
grep -h "complete: every blob verified" "$WORK"/n*/agent.log | sed 's/^/    /'
