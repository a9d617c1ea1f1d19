# Shared by the peer-to-peer cluster tests: a CA and node certificates, agent configs, a release of
# random artifacts, and status queries. Source after netns.sh; needs GAPSYNC, and WORK (set by
# p2p_test, or by the caller).
#
#   p2p_setup N              CA, node-1..N certificates, vendor keys (WORK/keys/vendor.*)
#   p2p_config I [PEER...]   WORK/nI/agent.yaml (control plane :7400, data plane :7500, TLS)
#   p2p_start I              starts node I's agent in its namespace (log: WORK/nI/agent.log)
#   p2p_stop I               SIGTERM, waits for it to exit
#   p2p_kill I               SIGKILL
#   make_release DIR APP VER MIB...   a signed bundle of random artifacts of the given sizes
#   has_release I REL        node I's own status lists REL complete
#   release_field I REL F    field F of REL in node I's own status
G() { "$GAPSYNC" -q "$@"; }

# p2p_test NAME: the start of a cluster test: WORK (a new folder), fail() (prints the agents'
# logs), and p2p_finish for `trap p2p_finish EXIT`: cluster down, the test's own p2p_cleanup if
# it defines one, WORK removed, a PASS/FAIL line.
p2p_test() {
  P2P_TEST=$1
  WORK=$(mktemp -d "/var/tmp/gapsync-$1.XXXXXX")
}
fail() { echo "FAIL: $*" >&2; dump_logs; exit 1; }
p2p_finish() {
  local rc=$?
  cluster_down
  if declare -F p2p_cleanup >/dev/null; then p2p_cleanup; fi
  rm -rf "$WORK"
  [ $rc -eq 0 ] && echo "PASS: $P2P_TEST" || echo "FAIL: $P2P_TEST"
}
declare -A P2P_PID P2P_ENV P2P_TRUST

p2p_setup() {
  local n=$1 i
  G keys generate --out "$WORK/keys" --name vendor >/dev/null
  G ca init --out "$WORK/ca" --name test >/dev/null
  for i in $(seq 1 "$n"); do G ca issue --ca "$WORK/ca" --node "node-$i" --out "$WORK/n$i" >/dev/null; done
}

p2p_config() {  # p2p_config I [PEER_NODE...]   (peers by node number)
  local i=$1; shift
  local peers=() p
  for p in "$@"; do peers+=("${CLUSTER_IP[p]}:7400"); done
  {
    echo "node: node-$i"
    echo "data_dir: $WORK/n$i/data"
    echo "api_socket: $WORK/n$i/agent.sock"
    echo "trust: [${P2P_TRUST[$i]:-$WORK/keys/vendor.pub}]"
    echo "listen: ${CLUSTER_IP[i]}:7400"
    echo "bittorrent_listen: ${CLUSTER_IP[i]}:7500"
    echo "data_plane_tls: ${P2P_TLS:-true}"
    echo "tls: {ca: $WORK/n$i/ca.crt, cert: $WORK/n$i/node-$i.crt, key: $WORK/n$i/node-$i.key}"
    if [ ${#peers[@]} -gt 0 ]; then echo "peers: [$(IFS=,; echo "${peers[*]}")]"; fi
    if [ -n "${P2P_LOG_LEVEL:-}" ]; then echo "log_level: $P2P_LOG_LEVEL"; fi
  } > "$WORK/n$i/agent.yaml"
}

p2p_up() { G cluster status --agent "$WORK/n$1/agent.sock" >/dev/null 2>&1; }

p2p_start() {  # extra environment for node I: P2P_ENV[I]="NAME=VALUE ..."
  local i=$1
  rm -f "$WORK/n$i/agent.pid"
  # shellcheck disable=SC2016
  on "$i" env ${P2P_ENV[$i]:-} bash -c 'echo $$ > "$1"; exec "$2" agent run --config "$3"' _ \
    "$WORK/n$i/agent.pid" "$GAPSYNC" "$WORK/n$i/agent.yaml" >>"$WORK/n$i/agent.log" 2>&1 &
  wait_for 30 p2p_up "$i" || { echo "node-$i did not start" >&2; return 1; }
  P2P_PID[$i]=$(cat "$WORK/n$i/agent.pid")
}

p2p_alive() { kill -0 "${P2P_PID[$1]}" 2>/dev/null; }

p2p_stop() {  # SIGTERM; waits until the agent has exited
  local i=$1
  kill -TERM "${P2P_PID[$i]}" 2>/dev/null || true
  wait_for 60 ! p2p_alive "$i" || { echo "node-$i did not stop" >&2; return 1; }
}

p2p_kill() {
  local i=$1
  kill -KILL "${P2P_PID[$i]}" 2>/dev/null || true
  wait_for 10 ! p2p_alive "$i"
}

make_release() {  # make_release DIR APP VERSION MIB...
  local dir=$1 app=$2 ver=$3; shift 3
  local src="$dir.src" k=0 m
  mkdir -p "$src"
  {
    echo "app: $app"
    echo "version: $ver"
    echo "components:"
    for m in "$@"; do
      k=$((k + 1))
      head -c $((m * 1048576 + k * 4099)) /dev/urandom > "$src/part$k.bin"
      echo "  - name: part$k"
      echo "    artifact: part$k.bin"
    done
  } > "$src/app.yaml"
  G bundle create --template "$src/app.yaml" --key "$WORK/keys/vendor.key" --out "$dir" >/dev/null
}

status_of() { G cluster status --agent "$WORK/n$1/agent.sock" --json 2>/dev/null; }

has_release() {  # has_release I REL
  status_of "$1" | jq -e --arg r "$2" '[.nodes[0].releases[] | select(.release == $r and .complete)] | length == 1' >/dev/null 2>&1
}

release_field() {  # release_field I REL FIELD
  status_of "$1" | jq -r --arg r "$2" --arg f "$3" '.nodes[0].releases[] | select(.release == $r) | .[$f]' 2>/dev/null
}

dump_logs() {
  local i
  for i in $(seq 1 "$CLUSTER_N"); do
    [ -f "$WORK/n$i/agent.log" ] && { echo "--- node-$i log (last 40 lines)"; tail -n 40 "$WORK/n$i/agent.log"; }
  done
}
