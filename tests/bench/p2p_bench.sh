#!/usr/bin/env bash
# Cluster spread benchmark: 1 seeding node + N receivers in network namespaces on one bridge, every
# link shaped with `tbf rate R burst 64kb latency 50ms` on both veth ends (TSO/GSO/GRO off), a
# release of 128 MiB in 8 random blobs of 16 MiB ingested on the seed.
#
# Measured in the same run (the machine is shared and noisy, so everything is a ratio):
#   B_eff      one plain TCP stream (socat) over one shaped link; floor = S / B_eff
#   gapsync    time from the seed serving the release (its log) until each receiver holds it
#              complete (each receiver's log): last node / floor (target <= 1.15), median node /
#              floor (target <= 1.05); bytes the seed uploaded / S (target <= 2); peak RSS of every
#              agent (VmHWM, target <= 150 MiB). With TLS on the data plane and without.
#   sweep      N in BENCH_SWEEP at constant N*R (R = 640 Mbit/s / N): the ratio should stay flat
#   registry   the same 8 blobs as one OCI image in a docker-registry on the seed, pulled with
#              `skopeo copy` by BENCH_REG_N receivers at once; scaled to N receivers (the seed's
#              uplink is the bottleneck: time x N / BENCH_REG_N). gapsync's last node must be
#              >= 10x faster.
# Prints a table and writes it as a markdown fragment to $BENCH_OUT.
#
# Usage (as root; deploy/install-deps.sh installs what it needs):
#   tests/bench/p2p_bench.sh
# Environment:
#   GAPSYNC        gapsync binary; unset: build <repo>/build-bench (RelWithDebInfo) and use it
#   BENCH_N        receivers of the main runs (default 16)
#   BENCH_RATE     link rate of the main runs (default 40mbit)
#   BENCH_SWEEP    receiver counts of the sweep (default "4 8 16"; "" skips it)
#   BENCH_REG_N    receivers pulling from the registry at once (default 4; 0 skips it)
#   BENCH_PLAIN=0  skip the run without TLS on the data plane
#   GAPSYNC_LT_SETTINGS  passed to every agent (libtorrent setting overrides, for experiments)
#   BENCH_OUT      markdown fragment to write (default /tmp/p2p_bench.md)
#   BENCH_KEEP=1   keep the work folder; BENCH_STRICT=1 exit 1 when a target is missed
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
N=${BENCH_N:-16}
RATE=${BENCH_RATE:-40mbit}
SWEEP=${BENCH_SWEEP-4 8 16}
REG_N=${BENCH_REG_N:-4}
OUT=${BENCH_OUT:-/tmp/p2p_bench.md}
BLOBS=8
BLOB_MIB=16
S=$((BLOBS * BLOB_MIB * 1048576))

"$REPO/deploy/install-deps.sh" >/dev/null
if [ -z "${GAPSYNC:-}" ]; then
  cmake -S "$REPO" -B "$REPO/build-bench" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  ninja -C "$REPO/build-bench" gapsync >/dev/null
  GAPSYNC="$REPO/build-bench/agent/gapsync"
fi
export GAPSYNC
source "$REPO/tests/cluster/netns.sh"
WORK=$(mktemp -d /var/tmp/gapsync-p2pbench.XXXXXX)
source "$REPO/tests/cluster/p2p_lib.sh"
source "$REPO/tests/bench/bench_lib.sh"
REG_PID=
finish() {
  local rc=$?
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null
  cluster_down
  [ "${BENCH_KEEP:-0}" = 1 ] && echo "kept $WORK" || rm -rf "$WORK"
  exit $rc
}
trap finish EXIT
say() { echo "p2p_bench: $*" >&2; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
ms_of() { date -d "$1" +%s%3N; }  # "YYYY-MM-DD HH:MM:SS.mmm" -> epoch ms

# ---- inputs: 8 random blobs as artifacts of one release ----
mkdir -p "$WORK/src"
{
  echo "app: bench"
  echo "version: 1.0.0"
  echo "components:"
  for k in $(seq 1 $BLOBS); do
    head -c $((BLOB_MIB * 1048576)) /dev/urandom > "$WORK/src/blob$k.bin"
    echo "  - name: blob$k"
    echo "    artifact: blob$k.bin"
  done
} > "$WORK/src/app.yaml"
MAX_NODES=$((N + 1))
for n in $SWEEP; do [ $((n + 1)) -gt $MAX_NODES ] && MAX_NODES=$((n + 1)); done
[ $((REG_N + 1)) -gt $MAX_NODES ] && MAX_NODES=$((REG_N + 1))
p2p_setup $MAX_NODES
G bundle create --template "$WORK/src/app.yaml" --key "$WORK/keys/vendor.key" --out "$WORK/bundle" >/dev/null
REL=bench@1.0.0

# swarm NRECV RATE TLS -> SW_RESULT="floor_s last_s median_s seed_upload_ratio max_rss_mib beff_mbit"
# (runs in this shell, not a $(...) subshell: the cluster and agent PIDs must stay ours)
swarm() {
  local nrecv=$1 rate=$2 tls=$3 nodes=$(($1 + 1)) i
  cluster_up $nodes "$rate" >/dev/null 2>&1
  local be; be=$(beff $nodes "$rate")
  rm -rf "$WORK"/n*/data "$WORK"/n*/agent.log   # nothing of an earlier run may count
  for i in $(seq 1 $nodes); do
    P2P_TLS=$tls p2p_config "$i" $([ "$i" -gt 1 ] && echo 1)
    p2p_start "$i"
  done
  # everyone knows everyone before the clock starts
  knows_all() {
    local j
    for j in $(seq 1 $nodes); do
      [ "$(status_of "$j" | jq '[.nodes[] | select(.reachable)] | length')" = "$nodes" ] || return 1
    done
  }
  wait_for 90 knows_all || { say "membership did not converge"; return 1; }
  G ingest "$WORK/bundle" --agent "$WORK/n1/agent.sock" >/dev/null
  done_count() {
    local j c=0
    for j in $(seq 2 $nodes); do grep -q "release $REL complete: every blob verified" "$WORK/n$j/agent.log" 2>/dev/null && c=$((c + 1)); done
    echo $c
  }
  all_done() { [ "$(done_count)" -ge "$nrecv" ]; }
  wait_for 900 all_done || { say "only $(done_count) of $nrecv receivers finished"; dump_logs >&2; return 1; }
  local t0; t0=$(ms_of "$(grep -m1 "serving release $REL" "$WORK/n1/agent.log" | cut -c1-23)")
  local times=()
  for i in $(seq 2 $nodes); do
    local t; t=$(ms_of "$(grep -m1 "release $REL complete: every blob verified" "$WORK/n$i/agent.log" | cut -c1-23)")
    times+=($((t - t0)))
  done
  local sorted; sorted=$(printf '%s\n' "${times[@]}" | sort -n)
  local last; last=$(echo "$sorted" | tail -1)
  local median; median=$(echo "$sorted" | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
  local up; up=$(status_of 1 | jq --arg r $REL '.nodes[0].releases[] | select(.release == $r) | .uploaded')
  local rss=0
  for i in $(seq 1 $nodes); do
    local kb; kb=$(awk '/VmHWM/ { print $2 }' "/proc/${P2P_PID[$i]}/status")
    [ "$kb" -gt "$rss" ] && rss=$kb
  done
  for i in $(seq 1 $nodes); do p2p_stop "$i"; done
  cluster_down >/dev/null 2>&1
  SW_RESULT=$(awk -v S=$S -v be="$be" -v last="$last" -v med="$median" -v up="$up" -v rss="$rss" 'BEGIN {
    printf "%.2f %.2f %.2f %.2f %.0f %.1f\n", S / be, last / 1000, med / 1000, up / S, rss / 1024, be * 8 / 1e6 }')
}

# registry NRECV RATE -> REG_RESULT="floor_s time_s" for NRECV receivers pulling at once from node 1
registry() {
  local nrecv=$1 rate=$2 nodes=$(($1 + 1)) i
  cluster_up $nodes "$rate" >/dev/null 2>&1
  local be; be=$(beff $nodes "$rate")
  # the same 8 blobs as the layers of one OCI image
  local lay="$WORK/oci"
  rm -rf "$lay" "$WORK/reg"
  mkdir -p "$lay/blobs/sha256" "$WORK/reg"
  local layers="" k d
  for k in $(seq 1 $BLOBS); do
    d=$(sha256sum "$WORK/src/blob$k.bin" | cut -d' ' -f1)
    cp "$WORK/src/blob$k.bin" "$lay/blobs/sha256/$d"
    layers="$layers${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:$d\",\"size\":$((BLOB_MIB * 1048576))}"
  done
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' > "$WORK/config.json"
  local cd; cd=$(sha256sum "$WORK/config.json" | cut -d' ' -f1)
  cp "$WORK/config.json" "$lay/blobs/sha256/$cd"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
    "$cd" "$(stat -c %s "$WORK/config.json")" "$layers" > "$WORK/manifest.json"
  local md; md=$(sha256sum "$WORK/manifest.json" | cut -d' ' -f1)
  cp "$WORK/manifest.json" "$lay/blobs/sha256/$md"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"1.0.0"}}]}' \
    "$md" "$(stat -c %s "$WORK/manifest.json")" > "$lay/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' > "$lay/oci-layout"
  cat > "$WORK/reg.yml" <<YAML
version: 0.1
storage: {filesystem: {rootdirectory: $WORK/reg}}
http: {addr: ${CLUSTER_IP[1]}:5000}
log: {level: error}
YAML
  on 1 docker-registry serve "$WORK/reg.yml" >"$WORK/reg.log" 2>&1 &
  REG_PID=$!
  reg_up() { on 1 bash -c "exec 3<>/dev/tcp/${CLUSTER_IP[1]}/5000" 2>/dev/null; }
  wait_for 30 reg_up || { say "docker-registry did not start"; return 1; }
  on 1 skopeo copy -q --dest-tls-verify=false "oci:$lay:1.0.0" "docker://${CLUSTER_IP[1]}:5000/bench:1.0.0"
  local t0=${EPOCHREALTIME/./} pids=()
  for i in $(seq 2 $nodes); do
    rm -rf "$WORK/pull$i"
    on "$i" skopeo copy -q --src-tls-verify=false "docker://${CLUSTER_IP[1]}:5000/bench:1.0.0" "oci:$WORK/pull$i:1.0.0" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  local t1=${EPOCHREALTIME/./}
  kill "$REG_PID" 2>/dev/null; wait "$REG_PID" 2>/dev/null || true; REG_PID=
  for i in $(seq 2 $nodes); do
    [ "$(ls "$WORK/pull$i/blobs/sha256" | wc -l)" = $((BLOBS + 2)) ] || { say "pull on node $i incomplete"; return 1; }
    rm -rf "$WORK/pull$i"
  done
  cluster_down >/dev/null 2>&1
  REG_RESULT=$(awk -v S=$S -v be="$be" -v us=$((t1 - t0)) 'BEGIN { printf "%.2f %.2f\n", S / be, us / 1e6 }')
}

ROWS=()
MISSED=0
check() { awk -v v="$1" -v t="$2" 'BEGIN { exit !(v <= t) }' || MISSED=1; }
row() {  # row LABEL NRECV RATE TLS
  say "swarm: $1 ($2 receivers, $3, TLS $4)"
  swarm "$2" "$3" "$4"
  read -r floor last median up rss be <<<"$SW_RESULT"
  local rl rm; rl=$(ratio "$last" "$floor"); rm=$(ratio "$median" "$floor")
  ROWS+=("| $1 | $2 | $3 | $be | $floor | $last | **$rl** | $median | **$rm** | $up | $rss |")
  say "  floor ${floor}s last ${last}s (${rl}x) median ${median}s (${rm}x) seed upload ${up}xS peak RSS ${rss} MiB"
  LAST_S=$last
  if [ "$3" = "$RATE" ] && [ "$2" = "$N" ]; then check "$rl" 1.15; check "$rm" 1.05; check "$up" 2; check "$rss" 150; fi
}

row "gapsync, TLS data plane" "$N" "$RATE" true
MAIN_LAST=$LAST_S
[ "${BENCH_PLAIN:-1}" = 1 ] && row "gapsync, plain TCP data plane" "$N" "$RATE" false
for n in $SWEEP; do
  mbit=$((640 / n))
  row "sweep N=$n, TLS" "$n" "${mbit}mbit" true
done
REG_LINE=""
if [ "$REG_N" -gt 0 ]; then
  say "registry: $REG_N receivers pulling at once, $RATE"
  registry "$REG_N" "$RATE"
  read -r rfloor rtime <<<"$REG_RESULT"
  scaled=$(awk -v t="$rtime" -v n="$N" -v r="$REG_N" 'BEGIN { printf "%.1f", t * n / r }')
  speedup=$(ratio "$scaled" "$MAIN_LAST")
  REG_LINE="Central docker-registry, $REG_N receivers pulling with skopeo at once over the same $RATE links: ${rtime} s ($(ratio "$rtime" "$rfloor") x its floor ${rfloor} s); scaled to $N receivers: ${scaled} s. gapsync's last node (TLS): ${MAIN_LAST} s, **${speedup}x faster** (target >= 10)."
  say "  $REG_LINE"
  awk -v s="$speedup" 'BEGIN { exit !(s >= 10) }' || MISSED=1
fi

{
  echo "Release: $BLOBS random blobs of $BLOB_MIB MiB (S = $((S / 1048576)) MiB); seed = node 1, receivers know only the seed as a peer."
  echo "Times from the seed's \"serving release\" log line to each receiver's \"complete\" line; floor = S / B_eff."
  echo
  echo "| run | receivers | link | B_eff Mbit/s | floor s | last node s | last / floor | median s | median / floor | seed upload / S | peak RSS MiB |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  [ -n "$REG_LINE" ] && echo "$REG_LINE"
} | tee "$OUT"
if [ "${BENCH_STRICT:-0}" = 1 ] && [ $MISSED = 1 ]; then say "a target was missed"; exit 1; fi
