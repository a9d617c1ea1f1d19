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
printf 'node: n1\ndata_dir: d\ntrust: [%s]\ndata_plane_receive_buffer: 32k\n' "$K/vendor.pub" > "$WORK/bad4.yaml"
expect_error 'bad4.yaml:4: data_plane_receive_buffer "32k": bytes, 0' "$GAPSYNC" agent run --config "$WORK/bad4.yaml"
printf 'node: n1\ndata_dir: d\ntrust: [%s]\ndata_plane_receive_buffer: 100\n' "$K/vendor.pub" > "$WORK/bad5.yaml"
expect_error 'bad5.yaml:4: data_plane_receive_buffer "100": .* 4096 to 67108864' "$GAPSYNC" agent run --config "$WORK/bad5.yaml"
expect_error 'no gapsync agent at .*agent.sock' G cluster status --agent "$SOCK"

start_agent() {
  "$GAPSYNC" agent run --config "$WORK/agent.yaml" >>"$WORK/agent.log" 2>&1 &
  AGENT_PID=$!
  cleanup_hooks+=("kill -KILL $AGENT_PID 2>/dev/null; wait $AGENT_PID 2>/dev/null")
  local deadline=$((SECONDS + 30))
  until G cluster status --agent "$SOCK" >/dev/null 2>&1; do
    kill -0 "$AGENT_PID" 2>/dev/null || { cat "$WORK/agent.log"; fail "agent exited"; }
    [ $SECONDS -lt $deadline ] || fail "agent did not answer within 30 s"
  done
}
stop_agent() {
  kill -TERM "$AGENT_PID"
  local deadline=$((SECONDS + 60))
  while kill -0 "$AGENT_PID" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { kill -KILL "$AGENT_PID"; fail "agent did not stop within 60 s of SIGTERM"; }
  done
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
sed "s|data_dir: .*|data_dir: $WORK/data2|" "$WORK/agent.yaml" > "$WORK/agent2.yaml"
expect_error 'agent.sock: another gapsync agent is already listening there' "$GAPSYNC" agent run --config "$WORK/agent2.yaml"
expect_error 'data/store is in use by another gapsync process' "$GAPSYNC" agent run --config "$WORK/agent.yaml"
expect_error '--trust and --sync-every go with --store' G ingest "$B" --agent "$SOCK" --trust "$K/vendor.pub"
printf 'not a socket\n' > "$WORK/plainfile"
sed "s|api_socket: .*|api_socket: $WORK/plainfile|; s|data_dir: .*|data_dir: $WORK/data3|" "$WORK/agent.yaml" > "$WORK/agent3.yaml"
expect_error 'plainfile: exists and is not a socket; not removing it' "$GAPSYNC" agent run --config "$WORK/agent3.yaml"
[ "$(cat "$WORK/plainfile")" = "not a socket" ] || fail "the agent removed a file in its socket's place"
stop_agent

log "SIGTERM in the middle of an ingest: the ingest stops (exit 3), the agent exits 0, the next run finishes it"
printf 'app: big\nversion: 1.0.0\ncomponents:\n  - name: data\n    artifact: data\n' > "$S/big.yaml"
mkdir -p "$S/data"; for i in 1 2 3 4; do head -c $((24 << 20)) /dev/urandom > "$S/data/part$i.bin"; done
G bundle create --template "$S/big.yaml" --key "$K/vendor.key" --out "$WORK/bigb" >/dev/null
rm -rf "$S/data"
# the agent pauses its ingest after 40 MB until it is told to stop: the stop lands mid-ingest every time
GAPSYNC_TEST_PAUSE_AFTER_BYTES=40000000 start_agent
( rc=0; G ingest "$WORK/bigb" --agent "$SOCK" 2>"$WORK/big.err" || rc=$?; echo $rc > "$WORK/big.rc" ) &
CLI_PID=$!
cleanup_hooks+=("kill $CLI_PID 2>/dev/null")
deadline=$((SECONDS + 60))
until G cluster status --agent "$SOCK" --json | jq -e '.nodes[0].ingest.bytes_done >= 40000000' >/dev/null 2>&1; do
  [ ! -e "$WORK/big.rc" ] || fail "the ingest ended before it could be interrupted: $(cat "$WORK/big.err")"
  [ $SECONDS -lt $deadline ] || fail "ingest never reached the pause point"
done
stop_agent
wait "$CLI_PID" || true
[ "$(cat "$WORK/big.rc")" = 3 ] || fail "interrupted ingest exit $(cat "$WORK/big.rc"): $(cat "$WORK/big.err")"
grep -q 'stopped before it finished' "$WORK/big.err" || fail "no 'stopped' message: $(cat "$WORK/big.err")"
G store ls --store "$WORK/data/store" --json | jq -e '[.releases[].app] == ["shop"] and .blobs > 0' >/dev/null || fail "half an ingest became visible"
assert_fsck_clean "$WORK/data/store"
log "gc between the stop and the rerun keeps the stopped ingest's progress"
before=$(G store ls --store "$WORK/data/store" --json | jq .blobs)
G store gc --store "$WORK/data/store" >/dev/null
[ "$(G store ls --store "$WORK/data/store" --json | jq .blobs)" = "$before" ] || fail "gc removed the stopped ingest's blobs"
start_agent
G ingest "$WORK/bigb" --agent "$SOCK" --json | jq -e '.complete and .bytes_new > 0 and .bytes_new < 75000000' >/dev/null \
  || fail "the rerun did not finish from the kept progress"
stop_agent
assert_fsck_clean "$WORK/data/store"
