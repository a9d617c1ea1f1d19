# Multi-node test harness: N network namespaces on one Linux bridge, one agent host per namespace.
# Each node shares the machine's filesystem (only the network is separate): give every agent its
# own data_dir and api_socket. A caller that installs its own EXIT trap after cluster_up must call
# cluster_down from it (the trap set here is replaced otherwise).
# Source it (bash, as root); it sets no shell options of its own, so it works with or without
# `set -euo pipefail` in the caller.
#
#   source tests/cluster/netns.sh
#   cluster_up 4 40mbit                  # 4 nodes, every link shaped to 40 Mbit/s both ways
#   on 1 ping -c1 -W2 "${CLUSTER_IP[2]}" # run a command inside node 1
#   on 2 some-daemon --listen "${CLUSTER_IP[2]}" &   # killed by cluster_down if still running
#   listening() { [ -n "$(on "$1" ss -Htln "sport = :$2")" ]; }
#   wait_for 10 listening 2 7000 || exit 1     # poll a condition; never sleep to synchronise
#   wait_for 5 ! on 1 ping -c1 -W1 -q "${CLUSTER_IP[2]}"   # "!" waits for CMD to fail
#   link_down 2; ...; link_up 2          # partition node 2 and heal it
#   cluster_down                         # optional: also runs on EXIT/INT/TERM
#
# Layout of one run (suffix S = 4 hex digits, unique among the runs on this machine):
#   bridge  gsS-br           in the root namespace, no address, no IPv6, STP off
#   node i  netns gsS-ns<i>  interface gsS-n<i> = CLUSTER_IP[i]/15, lo up, no default route
#           root-side peer gsS-h<i> is a port of the bridge
# Addresses are 198.18.X.Y/15 (RFC 2544 benchmark range) and live only inside the namespaces; the
# root namespace gets no 198.18 address and no route, so nothing here can reach or be reached
# from outside the run's own namespaces.
#
# Set by cluster_up (the scalars are exported; bash cannot export the arrays to children):
#   CLUSTER_N            number of nodes
#   CLUSTER_SUFFIX       the run's suffix S (every name of the run starts with "gs$S-")
#   CLUSTER_BRIDGE       bridge name
#   CLUSTER_NS[i]        namespace of node i (i = 1..N)
#   CLUSTER_IP[i]        IPv4 address of node i, no prefix length: 198.18.(i/200).(i%200+10)
#   CLUSTER_IF[i]        node i's interface inside its namespace
#   CLUSTER_HOSTIF[i]    node i's veth peer on the bridge (root namespace)
#   CLUSTER_RATE         the tbf rate, empty when unshaped

# shellcheck disable=SC2034  # the CLUSTER_* variables are for the scripts that source this
CLUSTER_N=0
CLUSTER_SUFFIX=
CLUSTER_BRIDGE=
CLUSTER_RATE=
CLUSTER_NS=()
CLUSTER_IP=()
CLUSTER_IF=()
CLUSTER_HOSTIF=()
_CLUSTER_TRAPS_SET=0

_cluster_log() { echo "netns.sh: $*" >&2; }

# _cluster_run CMD...: run CMD, report it on failure.
_cluster_run() {
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  if [ "$rc" -ne 0 ]; then
    _cluster_log "failed ($rc): $* ${out:+-- $out}"
    return "$rc"
  fi
}

_cluster_need_root_tools() {
  local t missing=()
  for t in ip tc ethtool; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
  if [ ${#missing[@]} -gt 0 ]; then
    _cluster_log "missing tools: ${missing[*]} (run deploy/install-deps.sh)"
    return 1
  fi
  if [ "$(id -u)" -ne 0 ]; then
    _cluster_log "needs root (network namespaces)"
    return 1
  fi
}

# Node i's address: 198.18.X.Y with i = 1.. mapping to distinct hosts inside 198.18.0.0/15.
_cluster_ip_of() {
  local i=$1
  echo "198.18.$(( i / 200 )).$(( i % 200 + 10 ))"
}

# True when some namespace or interface name already contains the prefix.
# (Output is captured first: `producer | grep -q` can fail under the caller's pipefail when grep
# exits early and the producer gets SIGPIPE.)
_cluster_names() {
  ip netns list 2>/dev/null | awk '{print $1}'
  ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//'
}
_cluster_prefix_in_use() {
  local names
  names=$(_cluster_names)
  grep -q -- "^$1" <<<"$names"
}

# Turn IPv6 off on an interface in the current namespace so it gets no link-local address and
# sends no router solicitations / DAD / MLD.
_cluster_no_ipv6() {
  local dev=$1
  if [ -w "/proc/sys/net/ipv6/conf/$dev/disable_ipv6" ]; then
    echo 1 > "/proc/sys/net/ipv6/conf/$dev/disable_ipv6"
  else
    ip link set dev "$dev" addrgenmode none 2>/dev/null || true
  fi
}

# _cluster_chain_trap SIG NEWCMD: install NEWCMD for SIG ahead of whatever trap SIG had.
_cluster_prev_trap() {
  local out
  out=$(trap -p "$1")
  [ -n "$out" ] || return 0
  # `trap -p` prints: trap -- 'CMD' SIG   (quoted for re-use by the shell)
  eval "set -- $out"
  printf '%s' "$3"
}

_cluster_install_traps() {
  [ "$_CLUSTER_TRAPS_SET" = 1 ] && return 0
  _CLUSTER_PREV_EXIT=$(_cluster_prev_trap EXIT)
  _CLUSTER_PREV_INT=$(_cluster_prev_trap INT)
  _CLUSTER_PREV_TERM=$(_cluster_prev_trap TERM)
  trap '_cluster_on_exit' EXIT
  trap '_cluster_on_signal INT 130' INT
  trap '_cluster_on_signal TERM 143' TERM
  _CLUSTER_TRAPS_SET=1
}

_cluster_on_exit() {
  local rc=$?
  set +e                 # the shell is exiting: clean up everything regardless of errors
  cluster_down
  if [ -n "${_CLUSTER_PREV_EXIT:-}" ]; then
    (exit "$rc")         # let the previous trap see the real exit status in $?
    eval "$_CLUSTER_PREV_EXIT"
  fi
  return "$rc"
}

_cluster_on_signal() {
  local sig=$1 code=$2 prev
  set +e
  _cluster_log "caught SIG$sig, removing cluster $CLUSTER_SUFFIX"
  cluster_down
  if [ "$sig" = INT ]; then prev=${_CLUSTER_PREV_INT:-}; else prev=${_CLUSTER_PREV_TERM:-}; fi
  if [ -n "$prev" ]; then eval "$prev"; fi
  exit "$code"
}

# _cluster_nsexec NS CMD...: run CMD in namespace NS's network stack. nsenter, not
# `ip netns exec` / `ip -n`: those remount / and /sys, which fails where / is not a mount point
# (a chroot, some containers), and nothing here needs a private /sys.
_cluster_nsexec() {
  local ns=$1; shift
  nsenter --net="/run/netns/$ns" -- "$@"
}

# cluster_up N [RATE]: create the run's bridge and N namespaces; RATE (tc syntax, e.g. 40mbit)
# shapes both ends of every veth with tbf and turns TSO/GSO/GRO off on them.
cluster_up() {
  local n=${1:-} rate=${2:-}
  if ! [[ "$n" =~ ^[1-9][0-9]*$ ]] || [ "$n" -gt 10000 ]; then
    _cluster_log "usage: cluster_up N [RATE]  (N = 1..10000)"
    return 2
  fi
  if [ -n "$CLUSTER_SUFFIX" ]; then
    _cluster_log "a cluster ($CLUSTER_SUFFIX) is already up in this shell; cluster_down first"
    return 1
  fi
  _cluster_need_root_tools || return 1

  # Pick a free suffix. The bridge is created first: `ip link add` is atomic, so two runs that
  # drew the same suffix at the same moment cannot both win it.
  local try s
  for try in $(seq 1 50); do
    s=$(printf '%04x' $(( (RANDOM ^ ($$ * 2654435761) ^ (try << 11)) & 0xffff )))
    _cluster_prefix_in_use "gs$s-" && continue
    if ip link add "gs$s-br" type bridge stp_state 0 forward_delay 0 2>/dev/null; then
      CLUSTER_SUFFIX=$s
      break
    fi
  done
  if [ -z "$CLUSTER_SUFFIX" ]; then
    _cluster_log "could not find a free run suffix"
    return 1
  fi
  _cluster_install_traps
  ip link set dev "gs$CLUSTER_SUFFIX-br" alias "$(_cluster_owner_tag $$)" 2>/dev/null || true
  cluster_reap_stale

  local p="gs$CLUSTER_SUFFIX-"
  CLUSTER_N=$n
  CLUSTER_RATE=$rate
  CLUSTER_BRIDGE="${p}br"
  CLUSTER_NS=() CLUSTER_IP=() CLUSTER_IF=() CLUSTER_HOSTIF=()
  export CLUSTER_N CLUSTER_SUFFIX CLUSTER_BRIDGE CLUSTER_RATE

  _cluster_no_ipv6 "$CLUSTER_BRIDGE"
  _cluster_run ip link set dev "$CLUSTER_BRIDGE" up || return 1

  local i ns hif nif ip
  for i in $(seq 1 "$n"); do
    ns="${p}ns$i" hif="${p}h$i" nif="${p}n$i" ip=$(_cluster_ip_of "$i")
    if [ ${#hif} -gt 15 ] || [ ${#nif} -gt 15 ]; then
      _cluster_log "interface name too long: $hif"
      return 1
    fi
    CLUSTER_NS[i]=$ns CLUSTER_IP[i]=$ip CLUSTER_IF[i]=$nif CLUSTER_HOSTIF[i]=$hif

    _cluster_run ip netns add "$ns" || return 1
    _cluster_run ip link add "$hif" type veth peer name "$nif" netns "$ns" || return 1

    # root side: a bridge port without addresses
    _cluster_no_ipv6 "$hif"
    _cluster_run ip link set dev "$hif" master "$CLUSTER_BRIDGE" || return 1

    # namespace side
    _cluster_run _cluster_nsexec "$ns" sh -c \
      "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null;
       echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6 2>/dev/null;
       echo 1 > /proc/sys/net/ipv6/conf/$nif/disable_ipv6 2>/dev/null; true" || return 1
    _cluster_run _cluster_nsexec "$ns" ip link set dev lo up || return 1
    _cluster_run _cluster_nsexec "$ns" ip addr add "$ip/15" dev "$nif" || return 1

    if [ -n "$rate" ]; then
      _cluster_run ethtool -K "$hif" tso off gso off gro off || return 1
      _cluster_run _cluster_nsexec "$ns" ethtool -K "$nif" tso off gso off gro off || return 1
      _cluster_run tc qdisc add dev "$hif" root tbf rate "$rate" burst 64kb latency 50ms || return 1
      _cluster_run _cluster_nsexec "$ns" tc qdisc add dev "$nif" root tbf rate "$rate" burst 64kb latency 50ms \
        || return 1
    fi

    _cluster_run ip link set dev "$hif" up || return 1
    _cluster_run _cluster_nsexec "$ns" ip link set dev "$nif" up || return 1
  done
  _cluster_log "up: $n nodes, suffix $CLUSTER_SUFFIX, bridge $CLUSTER_BRIDGE${rate:+, $rate per link}"
}

# _cluster_remove_prefix P: kill what runs in namespaces named P*, delete interfaces and
# namespaces named P*. Returns 1 if anything named P* is left.
_cluster_remove_prefix() {
  local p=$1 ns dev deadline
  local nss=() devs=() pids=()
  mapfile -t nss < <(ip netns list 2>/dev/null | awk '{print $1}' | grep -- "^$p" || true)
  mapfile -t devs < <(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' \
                        | grep -- "^$p" || true)

  # 1. stop every process still inside the namespaces: TERM, then KILL after 3 s
  for ns in "${nss[@]}"; do
    mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null)
    [ ${#pids[@]} -eq 0 ] || kill -TERM "${pids[@]}" 2>/dev/null || true
  done
  deadline=$(( ${EPOCHREALTIME/./} + 3000000 ))
  for ns in "${nss[@]}"; do
    while [ -n "$(ip netns pids "$ns" 2>/dev/null)" ]; do
      if [ "${EPOCHREALTIME/./}" -ge "$deadline" ]; then
        mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null)
        [ ${#pids[@]} -eq 0 ] || kill -KILL "${pids[@]}" 2>/dev/null || true
        break
      fi
      sleep 0.05
    done
  done

  # 2. delete the root-side veths (takes the peer inside the namespace with it, synchronously;
  #    deleting only the namespace would leave the kernel to reap the pair later)
  for dev in "${devs[@]}"; do
    [ "$dev" = "${p}br" ] && continue
    ip link del dev "$dev" 2>/dev/null || true
  done
  # 3. namespaces, then the bridge
  for ns in "${nss[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  ip link del dev "${p}br" 2>/dev/null || true

  if _cluster_prefix_in_use "$p"; then
    _cluster_log "some of $p* is still present"
    return 1
  fi
}

# cluster_down: remove this run's namespaces (after killing what runs in them), veths and bridge.
# Idempotent; works on a half-built cluster too (it removes by the run's name prefix).
cluster_down() {
  [ -n "${CLUSTER_SUFFIX:-}" ] || return 0
  _cluster_remove_prefix "gs$CLUSTER_SUFFIX-" || return 1
  CLUSTER_SUFFIX='' CLUSTER_N=0 CLUSTER_BRIDGE='' CLUSTER_RATE=''
  CLUSTER_NS=() CLUSTER_IP=() CLUSTER_IF=() CLUSTER_HOSTIF=()
  return 0
}

# A run's bridge carries the alias "gapsync-netns owner=PID:STARTTIME" (the shell that called
# cluster_up). A run whose owner is gone without cleaning up (SIGKILL, e.g. a CTest timeout) is
# removed by the next cluster_up, or by calling cluster_reap_stale.
_cluster_owner_tag() {
  local pid=$1 stat f
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  stat=${stat##*) }                    # fields after "(comm) ": state, ...; starttime is 22nd overall
  read -ra f <<<"$stat"
  case ${f[0]} in Z|X|x) return 1 ;; esac   # a zombie is gone too
  echo "gapsync-netns owner=$pid:${f[19]}"
}
cluster_reap_stale() {
  local line dev alias pid
  while read -r line; do
    dev=$(awk -F': ' '{print $2}' <<<"$line"); dev=${dev%%@*}
    [[ "$dev" =~ ^gs[0-9a-f]{4}-br$ ]] || continue
    alias=$(sed -n 's/.* alias \(gapsync-netns owner=[0-9]*:[0-9]*\).*/\1/p' <<<"$line")
    [ -n "$alias" ] || continue
    pid=${alias#*owner=}; pid=${pid%%:*}
    [ "$(_cluster_owner_tag "$pid" 2>/dev/null)" = "$alias" ] && continue   # owner still alive
    _cluster_log "removing stale run ${dev%br} (its owner, pid $pid, is gone)"
    _cluster_remove_prefix "${dev%br}" || true
  done < <(ip -o link show type bridge 2>/dev/null)
}

_cluster_check_node() {
  if ! [[ "${1:-}" =~ ^[0-9]+$ ]] || [ "$1" -lt 1 ] || [ "$1" -gt "$CLUSTER_N" ]; then
    _cluster_log "no such node: '${1:-}' (cluster has $CLUSTER_N)"
    return 2
  fi
}

# on NODE CMD...: run CMD inside node NODE's namespace (shell functions are not visible there;
# use `on 1 bash -c '...'` for pipelines).
on() {
  _cluster_check_node "${1:-}" || return $?
  local node=$1; shift
  _cluster_nsexec "${CLUSTER_NS[node]}" "$@"
}

# link_down NODE / link_up NODE: unplug / replug node NODE's cable at the bridge. The node keeps
# its address and routes; frames to and from it are dropped while down.
link_down() {
  _cluster_check_node "${1:-}" || return $?
  _cluster_run ip link set dev "${CLUSTER_HOSTIF[$1]}" down
}
link_up() {
  _cluster_check_node "${1:-}" || return $?
  _cluster_run ip link set dev "${CLUSTER_HOSTIF[$1]}" up
}

# wait_for DEADLINE_S CMD...: run CMD every 0.1 s until it succeeds (return 0) or DEADLINE_S
# seconds (may be fractional) have passed (return 1). `wait_for 5 ! CMD...` waits for CMD to fail.
# CMD may be a shell function.
wait_for() {
  local limit=${1:-}
  if ! [[ "$limit" =~ ^[0-9]+(\.[0-9]{1,6})?$ ]] || [ $# -lt 2 ]; then
    _cluster_log "usage: wait_for DEADLINE_S [!] CMD..."
    return 2
  fi
  shift
  local negate=0
  if [ "$1" = "!" ]; then negate=1; shift; fi
  local whole=${limit%%.*} frac=0
  [[ "$limit" == *.* ]] && frac=${limit#*.}
  frac=$(( 10#$(printf '%-6s' "$frac" | tr ' ' 0) ))
  local deadline=$(( ${EPOCHREALTIME/./} + 10#$whole * 1000000 + frac ))
  local ok
  while :; do
    if "$@"; then ok=1; else ok=0; fi
    [ $(( ok ^ negate )) -eq 1 ] && return 0
    [ "${EPOCHREALTIME/./}" -ge "$deadline" ] && return 1
    sleep 0.1
  done
}
