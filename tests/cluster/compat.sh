#!/usr/bin/env bash
# Today's code on what the code of eae3f3c wrote (tests/fixtures/eae3f3c, made by
# tests/fixtures/make_compat_fixture.sh with that binary): its data_dir opens, lists, checks and
# serves unchanged (the kept Offer's torrent is the one today's code builds, so a mixed cluster
# shares one swarm), the ingest it left half done finishes from its progress, and every --json form
# it printed is printed again (the same values where they are deterministic, the same keys and
# types everywhere).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
: "${GAPSYNC:?set GAPSYNC to the gapsync binary}"
source "$HERE/netns.sh"
source "$HERE/p2p_lib.sh"
F=$HERE/../fixtures/eae3f3c
p2p_test compat
REL=fixture@1.0.0

p2p_setup 2
P2P_TRUST[1]=$F/vendor.pub
P2P_TRUST[2]=$F/vendor.pub
cluster_up 2
trap p2p_finish EXIT
tar -C "$WORK/n1" -xzf "$F/data_dir.tar.gz"
tar -C "$WORK" -xzf "$F/bundle-1.1.0.tar.gz"
cp -a "$WORK/n1/data" "$WORK/pristine"
B=$WORK/bundle-1.1.0

# The keys and value types of a JSON document; an array's elements as the set of their shapes.
shape() { jq -S 'def shape: if type == "object" then with_entries(.value |= shape)
  elif type == "array" then (map(shape) | unique) else type end; shape'; }
# same_json NAME FILE [FILTER]: FILE holds the same JSON as the fixture's json/NAME (both through
# the jq FILTER, which drops what differs between runs: paths).
same_json() {
  local f=${3:-.}
  diff <(jq -S "$f" "$F/json/$1") <(jq -S "$f" "$2") >/dev/null ||
    fail "$1 differs from what eae3f3c printed: $(diff <(jq -S "$f" "$F/json/$1") <(jq -S "$f" "$2") | head -20)"
  same_shape "$1" "$2"
}
same_shape() {
  diff <(shape < "$F/json/$1") <(shape < "$2") >/dev/null || fail "$1: keys or types differ from what eae3f3c printed: $(diff <(shape < "$F/json/$1") <(shape < "$2") | head -20)"
}

echo "--- the store opens as it was: ls, fsck (a partial blob), bundle inspect and verify"
G store ls --store "$WORK/n1/data/store" --json > "$WORK/ls.json"
same_json store-ls.json "$WORK/ls.json"
G store fsck --store "$WORK/n1/data/store" --json > "$WORK/fsck.json"
same_json store-fsck.json "$WORK/fsck.json"
G bundle inspect "$B" --json > "$WORK/inspect.json"
same_json bundle-inspect.json "$WORK/inspect.json"
G bundle verify "$B" --trust "$F/vendor.pub" --json > "$WORK/verify.json"
same_json bundle-verify.json "$WORK/verify.json" 'del(.signer)' 

echo "--- gc, export and the rest of the stopped ingest on a copy"
G store gc --store "$WORK/pristine/store" --json > "$WORK/gc.json"
same_json store-gc.json "$WORK/gc.json"
G store export --store "$WORK/pristine/store" --release $REL --component web --oci "$WORK/oci" --json > "$WORK/export.json"
same_json store-export.json "$WORK/export.json" 'del(.oci)' 
G ingest "$B" --store "$WORK/pristine/store" --trust "$F/vendor.pub" --json > "$WORK/ingest-store.json"
same_json ingest-store.json "$WORK/ingest-store.json"
mkdir -p "$WORK/app"
echo hello > "$WORK/app/hello.txt"
printf 'app: tiny\nversion: 1.0.0\ncomponents:\n  - name: hello\n    artifact: hello.txt\n' > "$WORK/app/app.yaml"
G bundle create --template "$WORK/app/app.yaml" --key "$WORK/keys/vendor.key" --out "$WORK/tiny" --json > "$WORK/create.json"
same_shape bundle-create.json "$WORK/create.json"

echo "--- node-1 serves the old data_dir's release with the Offer it kept; node-2 fetches it"
offer=$(cd "$WORK/n1/data/offers" && ls *.pb)
cp "$WORK/n1/data/offers/$offer" "$WORK/kept-offer.pb"
P2P_TLS=false p2p_config 1
P2P_TLS=false p2p_config 2 1
p2p_start 1
p2p_start 2
wait_for 60 has_release 2 $REL || fail "node-2 did not fetch $REL: $(release_field 2 $REL percent) %"
both_seen() { status_of "$1" | jq -e '[.nodes[] | select(.reachable) | .releases[] | select(.complete)] | length == 2' >/dev/null; }
wait_for 30 both_seen 1 || fail "node-1 does not see both nodes complete"
wait_for 30 both_seen 2 || fail "node-2 does not see both nodes complete"
cmp -s "$WORK/kept-offer.pb" "$WORK/n1/data/offers/$offer" || fail "node-1 replaced the Offer eae3f3c kept"
[ "$(release_field 1 $REL info_hash)" = "$(release_field 2 $REL info_hash)" ] || fail "the two nodes have other torrents"
status_of 1 > "$WORK/status-1.json"
status_of 2 > "$WORK/status-2.json"
same_shape cluster-status-1.json "$WORK/status-1.json"
same_shape cluster-status-2.json "$WORK/status-2.json"

p2p_stop 2

echo "--- the stopped ingest finishes through node-1's agent, from the progress eae3f3c kept"
G ingest "$B" --agent "$WORK/n1/agent.sock" --json > "$WORK/ingest-agent.json"
same_json ingest-store.json "$WORK/ingest-agent.json"
p2p_stop 1
for i in 1 2; do
  G store fsck --store "$WORK/n$i/data/store" --json | jq -e '.clean and .partial_blobs == 0' >/dev/null || fail "fsck on node-$i"
done
G store ls --store "$WORK/n1/data/store" --json | jq -e '[.releases[] | .app + "@" + .version] == ["fixture@1.0.0", "fixture@1.1.0"]' \
  >/dev/null || fail "node-1's releases: $(G store ls --store "$WORK/n1/data/store" --json | jq -c '[.releases[].version]')"
echo "    eae3f3c's data_dir opened, served and finished; every --json form as it was"
