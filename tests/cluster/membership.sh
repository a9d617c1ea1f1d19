#!/usr/bin/env bash
# Membership over the mutually authenticated control plane, in network namespaces: node-2 and
# node-3 each know only node-1, yet every node ends up knowing (and reaching) every other; a node
# that stops is seen as unreachable. Also: a node whose certificate is from another CA is never
# admitted.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
: "${GAPSYNC:?set GAPSYNC to the gapsync binary}"
source "$HERE/netns.sh"
WORK=$(mktemp -d /var/tmp/gapsync-members.XXXXXX)
fail() { echo "FAIL: $*" >&2; for i in 1 2 3 4; do [ -f "$WORK/n$i/agent.log" ] && { echo "--- node $i log"; cat "$WORK/n$i/agent.log"; }; done; exit 1; }
finish() { local rc=$?; cluster_down; rm -rf "$WORK"; [ $rc -eq 0 ] && echo "PASS: membership.sh" || echo "FAIL: membership.sh"; }
G() { "$GAPSYNC" -q "$@"; }

G keys generate --out "$WORK/keys" --name vendor >/dev/null
G ca init --out "$WORK/ca" --name test >/dev/null
G ca init --out "$WORK/rogue-ca" --name rogue >/dev/null
for i in 1 2 3; do G ca issue --ca "$WORK/ca" --node node-$i --out "$WORK/n$i" >/dev/null; done
G ca issue --ca "$WORK/rogue-ca" --node node-4 --out "$WORK/n4" >/dev/null

cluster_up 4
trap finish EXIT
# cluster_up's own trap was replaced by finish(), which calls cluster_down.
config() {  # config I PEER...
  local i=$1; shift
  {
    echo "node: node-$i"
    echo "data_dir: $WORK/n$i/data"
    echo "api_socket: $WORK/n$i/agent.sock"
    echo "trust: [$WORK/keys/vendor.pub]"
    echo "listen: ${CLUSTER_IP[i]}:7400"
    echo "tls: {ca: $WORK/n$i/ca.crt, cert: $WORK/n$i/node-$i.crt, key: $WORK/n$i/node-$i.key}"
    if [ $# -gt 0 ]; then echo "peers: [$(IFS=,; echo "$*")]"; fi
  } > "$WORK/n$i/agent.yaml"
}
config 1
config 2 "${CLUSTER_IP[1]}:7400"
config 3 "${CLUSTER_IP[1]}:7400"
config 4 "${CLUSTER_IP[1]}:7400"   # rogue: certificate from another CA
for i in 1 2 3 4; do
  on $i "$GAPSYNC" agent run --config "$WORK/n$i/agent.yaml" >"$WORK/n$i/agent.log" 2>&1 &
done

members_of() {  # members_of I -> "node-1:true node-2:true ..." (reachable flags, self excluded)
  G cluster status --agent "$WORK/n$1/agent.sock" --json 2>/dev/null \
    | jq -r '[.nodes[0].members[] | select(.self | not) | "\(.node):\(.reachable)"] | sort | join(" ")'
}
knows_all() {
  [ "$(members_of 1)" = "node-2:true node-3:true" ] && [ "$(members_of 2)" = "node-1:true node-3:true" ] \
    && [ "$(members_of 3)" = "node-1:true node-2:true" ]
}
echo "--- every node learns every other from node-1 alone"
wait_for 45 knows_all || fail "membership did not converge: 1=[$(members_of 1)] 2=[$(members_of 2)] 3=[$(members_of 3)]"
echo "    1=[$(members_of 1)] 2=[$(members_of 2)] 3=[$(members_of 3)]"
echo "--- the node with another CA's certificate is never admitted"
rogue_refused() { grep -Eq "control plane: dropped ${CLUSTER_IP[4]//./\\.}:[0-9]+: " "$WORK/n1/agent.log"; }
wait_for 20 rogue_refused || fail "node-1 did not log refusing node-4"
grep -E "control plane: dropped ${CLUSTER_IP[4]//./\\.}:" "$WORK/n1/agent.log" | head -1 | sed 's/^/    /' 
for i in 1 2 3; do members_of $i | grep -q node-4 && fail "node $i admitted node-4"; done
echo "--- a node that stops is seen as unreachable"
kill -TERM "$(ip netns pids "${CLUSTER_NS[3]}" | head -1)"
gone() { [ "$(members_of 2)" = "node-1:true node-3:false" ]; }
wait_for 45 gone || fail "node-2 still sees node-3 as reachable: [$(members_of 2)]"
echo "    2=[$(members_of 2)]"
