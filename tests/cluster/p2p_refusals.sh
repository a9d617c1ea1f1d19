#!/usr/bin/env bash
# What the cluster refuses, in network namespaces:
#  1. a release announcement signed by a key a node does not trust: refused and logged there,
#     while a node that trusts the key fetches it;
#  2. the data plane to a process without a cluster certificate, or with another CA's: the TLS
#     handshake fails (no byte of any blob);
#  3. a node whose disk fills: it reports the error in `cluster status` (seen from other nodes),
#     the others finish unaffected.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
: "${GAPSYNC:?set GAPSYNC to the gapsync binary}"
source "$HERE/netns.sh"
source "$HERE/p2p_lib.sh"
p2p_test p2p_refusals
p2p_cleanup() { if mountpoint -q "$WORK/n4/data"; then umount "$WORK/n4/data"; fi; }
N=4
p2p_setup $N
G keys generate --out "$WORK/keys" --name other >/dev/null
G ca init --out "$WORK/rogue-ca" --name rogue >/dev/null
G ca issue --ca "$WORK/rogue-ca" --node node-9 --out "$WORK/rogue" >/dev/null
cluster_up $N 100mbit
trap p2p_finish EXIT

# node-1 and node-3 trust both vendor keys, node-2 only "vendor"; node-4's data folder is a
# 24 MiB tmpfs.
P2P_TRUST[1]="$WORK/keys/vendor.pub, $WORK/keys/other.pub"
P2P_TRUST[3]="$WORK/keys/vendor.pub, $WORK/keys/other.pub"
p2p_config 1
for i in 2 3 4; do p2p_config $i 1; done
mkdir -p "$WORK/n4/data"
mount -t tmpfs -o size=24m tmpfs "$WORK/n4/data"
for i in 1 2 3 4; do p2p_start $i; done

echo "=== 1. an announcement signed by a key node-2 does not trust"
make_release "$WORK/b1" signed-by-other 1.0.0 2
# re-sign the same manifest with the other key (openssl, raw Ed25519)
openssl pkeyutl -sign -inkey "$WORK/keys/other.key" -rawin -in "$WORK/b1/manifest.pb" -out "$WORK/b1/manifest.sig"
G ingest "$WORK/b1" --agent "$WORK/n1/agent.sock" >/dev/null
wait_for 60 has_release 3 signed-by-other@1.0.0 || fail "node-3 (trusts the key) did not fetch it"
refused() { grep -q "release announcement signed-by-other@1.0.0 from node node-[13] refused: .*signature does not verify with any trusted key" "$WORK/n2/agent.log"; }
wait_for 30 refused || fail "node-2 did not log refusing the announcement"
grep -m1 "release announcement signed-by-other" "$WORK/n2/agent.log" | sed 's/^/    node-2: /'
status_of 2 | jq -e '[.nodes[0].releases[] | select(.release == "signed-by-other@1.0.0")] | length == 0' >/dev/null \
  || fail "node-2 lists the refused release"
[ "$(grep -c 'release announcement signed-by-other@1.0.0 from node node-1 refused' "$WORK/n2/agent.log")" = 1 ] \
  || fail "node-2 logged the refusal more than once per member"
echo "    node-3 holds it; node-2 refused it once per member and does not list it"

echo "=== 2. the data plane without a cluster certificate"
IH=$(release_field 1 signed-by-other@1.0.0 info_hash)
[ -n "$IH" ] || fail "no info hash in node-1's status"
client() { on 3 timeout 20 openssl s_client -connect "${CLUSTER_IP[1]}:7500" -servername "$IH" -CAfile "$WORK/ca/ca.crt" "$@" </dev/null 2>&1 || true; }
out=$(client -cert "$WORK/n3/node-3.crt" -key "$WORK/n3/node-3.key")
echo "$out" | grep -q "Verify return code: 0 (ok)" || fail "a cluster certificate was not accepted: $out"
echo "$out" | grep -q "CN = node-1" || fail "node-1 did not present its certificate"
# TLS 1.3 checks the client's certificate after the client finished its part of the handshake:
# -ign_eof keeps s_client reading until the server's verdict arrives.
out=$(client -ign_eof)
echo "$out" | grep -Eiq "alert" || fail "no certificate, yet the handshake succeeded: $out"
echo "    no certificate: $(echo "$out" | grep -Eio '[a-z ]*alert[a-z ]*|certificate required' | head -1)"
out=$(client -ign_eof -cert "$WORK/rogue/node-9.crt" -key "$WORK/rogue/node-9.key")
echo "$out" | grep -Eiq "alert" || fail "another CA's certificate, yet the handshake succeeded: $out"
echo "    another CA's certificate: $(echo "$out" | grep -Eio '[a-z ]*alert[a-z ]*' | head -1)"

echo "=== 3. node-4's disk fills"
make_release "$WORK/b3" big 1.0.0 16 16
G ingest "$WORK/b3" --agent "$WORK/n1/agent.sock" >/dev/null
others_done() { has_release 2 big@1.0.0 && has_release 3 big@1.0.0; }
wait_for 120 others_done || fail "node-2/3 did not finish"
reported() {
  status_of 1 | jq -e '.nodes[] | select(.node == "node-4") | .releases[] | select(.release == "big@1.0.0") | .error | test("no space left")' >/dev/null
}
wait_for 60 reported || fail "node-1 does not see node-4's disk-full error: $(status_of 1 | jq -c '.nodes[] | select(.node == "node-4")')"
G cluster status --agent "$WORK/n1/agent.sock" | grep -A1 "node node-4" | sed 's/^/    /'
for i in 2 3; do p2p_stop $i; G store fsck --store "$WORK/n$i/data/store" >/dev/null || fail "fsck node-$i"; done
echo "    node-2 and node-3 complete, fsck clean"
