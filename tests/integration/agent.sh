#!/usr/bin/env bash
# The agent: config checks, ingest through the local API, cluster status, refusals, and SIGTERM
# in the middle of an ingest (stops at once, keeps progress; the next ingest finishes it).
source "$(dirname "$0")/lib.sh"
make_fixture "$WORK/f"
S=$WORK/f/src; K=$WORK/f/keys; B=$WORK/bundle
G bundle create --template "$S/app.yaml" --key "$K/vendor.key" --out "$B" --volume-size 300K >/dev/null
SOCK=$WORK/run/agent.sock
cat > "$WORK/agent.yaml" <<YAML
node: node-1
data_dir: $WORK/data
api_socket: $SOCK
trust: [$K/vendor.pub]
YAML

log "config errors name file and line"
printf 'node: n1\ndata_dir: d\ntrust: [%s]\ncolour: red\n' "$K/vendor.pub" > "$WORK/bad1.yaml"
expect_error 'bad1.yaml:4: unknown key "colour"' "$GAPSYNC" agent run --config "$WORK/bad1.yaml"
printf 'node: n1\ndata_dir: d\ntrust: [/nonexistent.pub]\n' > "$WORK/bad2.yaml"
expect_error 'bad2.yaml:3: trust file "/nonexistent.pub" does not exist' "$GAPSYNC" agent run --config "$WORK/bad2.yaml"
printf 'node: n1\ndata_dir: d\ntrust: [%s]\nlisten: 10.0.0.1\n' "$K/vendor.pub" > "$WORK/bad3.yaml"
expect_error 'bad3.yaml:4: address "10.0.0.1": expected IPv4:PORT' "$GAPSYNC" agent run --config "$WORK/bad3.yaml"
expect_error 'no gapsync agent at .*agent.sock' G cluster status --agent "$SOCK"

start_agent() {
  "$GAPSYNC" agent run --config "$WORK/agent.yaml" >>"$WORK/agent.log" 2>&1 &
  AGENT_PID=$!
  cleanup_hooks+=("kill $AGENT_PID 2>/dev/null")
  local deadline=$((SECONDS + 30))
  until G cluster status --agent "$SOCK" >/dev/null 2>&1; do
    kill -0 "$AGENT_PID" 2>/dev/null || { cat "$WORK/agent.log"; fail "agent exited"; }
    [ $SECONDS -lt $deadline ] || fail "agent did not answer within 30 s"
  done
}
stop_agent() {
  kill -TERM "$AGENT_PID"
  local rc=0; wait "$AGENT_PID" || rc=$?
  [ $rc -eq 0 ] || fail "agent exited $rc on SIGTERM"
  [ ! -e "$SOCK" ] || fail "agent left its socket behind"
}

log "ingest through the agent, rerun is a no-op, status shows the release"
start_agent
G ingest "$B" --agent "$SOCK" --json | jq -e '.complete and .blobs_new == .blobs' >/dev/null || fail "ingest via agent"
G ingest "$B" --agent "$SOCK" --json | jq -e '.already_present' >/dev/null || fail "rerun via agent"
G cluster status --agent "$SOCK" --json | jq -e '.nodes[0].node == "node-1" and .nodes[0].reachable and
  (.nodes[0].store.releases | map(.app + "@" + .version)) == ["shop@1.0.0"]' >/dev/null || fail "cluster status"
log "refusals come back as one line with the CLI's exit codes"
cp -r "$B" "$WORK/unsigned"; rm "$WORK/unsigned/manifest.sig"
expect_error 'manifest.sig: signature missing' G ingest "$WORK/unsigned" --agent "$SOCK"
expect_error 'another gapsync agent is already listening|store .* is in use' "$GAPSYNC" agent run --config "$WORK/agent.yaml"
stop_agent

log "SIGTERM in the middle of an ingest: the ingest stops (exit 3), the agent exits 0, the next run finishes it"
printf 'app: big\nversion: 1.0.0\ncomponents:\n  - name: data\n    artifact: big.bin\n' > "$S/big.yaml"
head -c $((600 << 20)) /dev/urandom > "$S/big.bin"
G bundle create --template "$S/big.yaml" --key "$K/vendor.key" --out "$WORK/bigb" >/dev/null
rm "$S/big.bin"
start_agent
( rc=0; G ingest "$WORK/bigb" --agent "$SOCK" 2>"$WORK/big.err" || rc=$?; echo $rc > "$WORK/big.rc" ) &
deadline=$((SECONDS + 60))
until G cluster status --agent "$SOCK" --json | jq -e '.nodes[0].ingest.bytes_done > 0' >/dev/null 2>&1; do
  [ ! -e "$WORK/big.rc" ] || fail "the ingest finished before it could be interrupted"
  [ $SECONDS -lt $deadline ] || fail "ingest never showed progress"
done
stop_agent
deadline=$((SECONDS + 30)); until [ -s "$WORK/big.rc" ]; do [ $SECONDS -lt $deadline ] || fail "CLI hung"; done
[ "$(cat "$WORK/big.rc")" = 3 ] || fail "interrupted ingest exit $(cat "$WORK/big.rc"): $(cat "$WORK/big.err")"
grep -q 'stopped before it finished' "$WORK/big.err" || fail "no 'stopped' message: $(cat "$WORK/big.err")"
G store ls --store "$WORK/data/store" --json | jq -e '[.releases[].app] == ["shop"]' >/dev/null || fail "half an ingest became visible"
assert_fsck_clean "$WORK/data/store"
start_agent
G ingest "$WORK/bigb" --agent "$SOCK" --json | jq -e '.complete and .bytes_new < (600 * 1048576)' >/dev/null \
  || fail "the rerun did not finish from the kept progress"
stop_agent
assert_fsck_clean "$WORK/data/store"
