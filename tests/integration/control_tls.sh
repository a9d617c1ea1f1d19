#!/usr/bin/env bash
# The control plane accepts only mutual TLS with a certificate of the cluster CA: no certificate,
# another CA's certificate, and garbage bytes are refused and logged; the agent lives on. A real
# TLS client (openssl s_client) with a node certificate gets the node's Hello. Loopback only.
source "$(dirname "$0")/lib.sh"
K=$WORK/keys; mkdir -p "$K"
G keys generate --out "$K" --name vendor >/dev/null
G ca init --out "$WORK/ca" --name test >/dev/null
G ca init --out "$WORK/other-ca" --name other >/dev/null
for n in node-1 node-2; do G ca issue --ca "$WORK/ca" --node $n --out "$WORK/tls" >/dev/null; done
G ca issue --ca "$WORK/other-ca" --node node-9 --out "$WORK/other-tls" >/dev/null
SOCK=$WORK/run/agent.sock

log "config: listen without tls is refused"
printf 'node: node-1\ndata_dir: d\ntrust: [%s]\nlisten: 127.0.0.1:7400\n' "$K/vendor.pub" > "$WORK/notls.yaml"
expect_error 'notls.yaml:4: "listen" needs "tls"' "$GAPSYNC" agent run --config "$WORK/notls.yaml"
log "config: a certificate for another node is refused"
printf 'node: node-1\ndata_dir: d\ntrust: [%s]\nlisten: 127.0.0.1:7400\ntls: {ca: %s, cert: %s, key: %s}\n' \
  "$K/vendor.pub" "$WORK/tls/ca.crt" "$WORK/tls/node-2.crt" "$WORK/tls/node-2.key" > "$WORK/wrong.yaml"
expect_error 'node-2.crt: certificate is for node "node-2", but this node is "node-1"' "$GAPSYNC" agent run --config "$WORK/wrong.yaml"

# a free loopback port: try a few random ones
for attempt in 1 2 3 4 5; do
  PORT=$((20000 + RANDOM % 30000))
  cat > "$WORK/agent.yaml" <<YAML
node: node-1
data_dir: $WORK/data
api_socket: $SOCK
trust: [$K/vendor.pub]
listen: 127.0.0.1:$PORT
tls: {ca: $WORK/tls/ca.crt, cert: $WORK/tls/node-1.crt, key: $WORK/tls/node-1.key}
YAML
  : > "$WORK/agent.log"
  "$GAPSYNC" agent run --config "$WORK/agent.yaml" >>"$WORK/agent.log" 2>&1 &
  AGENT_PID=$!
  deadline=$((SECONDS + 30)); up=0
  while [ $SECONDS -lt $deadline ]; do
    if G cluster status --agent "$SOCK" >/dev/null 2>&1; then up=1; break; fi
    kill -0 "$AGENT_PID" 2>/dev/null || break
  done
  [ $up = 1 ] && break
  wait "$AGENT_PID" 2>/dev/null || true
done
[ $up = 1 ] || { cat "$WORK/agent.log"; fail "agent did not start"; }
cleanup_hooks+=("kill $AGENT_PID 2>/dev/null")
grep -q "control plane: listening on 127.0.0.1:$PORT" "$WORK/agent.log" || fail "no listening line"

# log_has PATTERN: wait (with a deadline) for a line in the agent's log
log_has() {
  local deadline=$((SECONDS + 20))
  until grep -Eq "$1" "$WORK/agent.log"; do [ $SECONDS -lt $deadline ] || { cat "$WORK/agent.log"; fail "log never said /$1/"; }; done
}
client() { timeout 20 openssl s_client -connect "127.0.0.1:$PORT" -tls1_3 -CAfile "$WORK/tls/ca.crt" "$@" </dev/null 2>&1 || true; }

log "no client certificate: refused"
out=$(client)
log_has 'control plane: dropped 127\.0\.0\.1:[0-9]+: .*(peer did not return a certificate|certificate required)'
log "a certificate from another CA: refused"
out=$(client -cert "$WORK/other-tls/node-9.crt" -key "$WORK/other-tls/node-9.key")
log_has 'control plane: dropped 127\.0\.0\.1:[0-9]+: .*certificate verify failed'
log "garbage bytes: refused, the agent lives on"
head -c 4096 /dev/urandom > "/dev/tcp/127.0.0.1/$PORT" || true
log_has 'control plane: dropped 127\.0\.0\.1:[0-9]+: .*(wrong version number|packet length too long|unknown protocol|record layer failure|http request|unexpected message)'
G cluster status --agent "$SOCK" --json | jq -e '.nodes[0].reachable' >/dev/null || fail "agent died"
log "a node certificate of the cluster: the handshake succeeds and the node says Hello"
out=$(client -cert "$WORK/tls/node-2.crt" -key "$WORK/tls/node-2.key")
echo "$out" | grep -q "Verify return code: 0 (ok)" || fail "client did not verify the agent: $out"
echo "$out" | grep -q "subject=O = gapsync, CN = node-1" || fail "agent did not present node-1's certificate: $out"
log_has "control plane: 127\.0\.0\.1:[0-9]+ is node node-2"
G cluster status --agent "$SOCK" --json | jq -e '.nodes[0].members[0].node == "node-1"' >/dev/null || fail "members"
kill -TERM "$AGENT_PID"; rc=0; wait "$AGENT_PID" || rc=$?
[ $rc -eq 0 ] || fail "agent exit $rc"
