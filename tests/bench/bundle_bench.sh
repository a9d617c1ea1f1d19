#!/usr/bin/env bash
# End-to-end throughput benchmark of gapsync bundles against plain-tool floors and a registry baseline.
#
# Builds ~BENCH_SIZE_MB of inputs (three OCI images with big, mostly random layers, one layer shared
# by two images, plus a folder of compressible log/text files), then times, in one run and each step
# starting with a cold page cache (sync, wait for the disk to go idle, echo 3 > /proc/sys/vm/drop_caches),
# each BENCH_REPEAT times alternating with its floor (medians reported):
#   floor C  cp -a of the input files + sync        vs  gapsync bundle create   (target <= 1.5x)
#   floor B  openssl dgst -sha256 over the volumes   vs  gapsync bundle verify   (target <= 1.2x)
#   floor A  cp of the volume files + sync           vs  gapsync ingest          (target <= 1.25x)
#   baseline skopeo copy of every image into a local docker-registry (+ sync)   vs gapsync ingest
#   gapsync ingest again on the finished store (no-op)
#   peak RSS of every gapsync command (/usr/bin/time -f %M)                     (target <= 256 MiB)
# Prints a table and writes it as a markdown fragment to $BENCH_OUT.
#
# Usage (as root, Debian 12; deploy/install-deps.sh installs what it needs):
#   tests/bench/bundle_bench.sh                      # ~2 GiB
#   BENCH_SIZE_MB=200 tests/bench/bundle_bench.sh    # quick run
# Environment:
#   BENCH_SIZE_MB      total input size in MiB (default 2048; at least 100)
#   BENCH_OUT          markdown fragment to write (default /tmp/bundle_bench.md)
#   BENCH_TMPDIR       parent of the temp dir (default /var/tmp, same filesystem as /work here)
#   BENCH_VOLUME_SIZE  --volume-size for bundle create (default 1G)
#   BENCH_LAYER_COMPRESSION  gzip (default) or zstd, how the random image layers are compressed
#   GAPSYNC            gapsync binary to use; unset: build <repo>/build-bench (RelWithDebInfo) and use it
#   BENCH_REPEAT       times each step and its floor run, alternating; medians are reported (default 3)
#   BENCH_KEEP=1       keep the temp dir; BENCH_STRICT=1 exit 1 when a target is missed
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SIZE_MB=${BENCH_SIZE_MB:-2048}
OUT=${BENCH_OUT:-/tmp/bundle_bench.md}
TMP_PARENT=${BENCH_TMPDIR:-/var/tmp}
VOLUME_SIZE=${BENCH_VOLUME_SIZE:-1G}
LAYER_COMPRESSION=${BENCH_LAYER_COMPRESSION:-gzip}
KEEP=${BENCH_KEEP:-0}
REPEAT=${BENCH_REPEAT:-3}
STRICT=${BENCH_STRICT:-0}

TARGET_CREATE=1.5
TARGET_VERIFY=1.2
TARGET_INGEST=1.25
TARGET_RSS_MIB=256

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'bundle_bench: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- preflight
[ "$(id -u)" -eq 0 ] || die "run as root (dropping the page cache needs it)"
[[ "$SIZE_MB" =~ ^[0-9]+$ ]] && [ "$SIZE_MB" -ge 100 ] || die "BENCH_SIZE_MB must be a whole number >= 100"
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPEAT must be a whole number >= 1"
case "$LAYER_COMPRESSION" in gzip|zstd) ;; *) die "BENCH_LAYER_COMPRESSION must be gzip or zstd" ;; esac
need_tool() { command -v "$1" >/dev/null 2>&1 || die "$1 not found (package $2; run deploy/install-deps.sh)"; }
need_tool umoci umoci
need_tool skopeo skopeo
need_tool docker-registry docker-registry
need_tool jq jq
need_tool openssl openssl
need_tool gzip gzip
need_tool sha256sum coreutils
need_tool findmnt util-linux
[ "$LAYER_COMPRESSION" = zstd ] && need_tool zstd zstd
[ -x /usr/bin/time ] || die "/usr/bin/time not found (package time; run deploy/install-deps.sh)"
[ -x /bin/busybox ] || die "/bin/busybox not found (package busybox-static; run deploy/install-deps.sh)"
[ -w /proc/sys/vm/drop_caches ] || die "/proc/sys/vm/drop_caches is not writable: cannot run cold-cache steps"

mkdir -p "$TMP_PARENT"
avail_mb=$(( $(df --output=avail -k "$TMP_PARENT" | tail -1) / 1024 ))
need_mb=$(( SIZE_MB * 8 + 1024 ))
[ "$avail_mb" -ge "$need_mb" ] || die "$TMP_PARENT has $avail_mb MiB free, the benchmark needs about $need_mb MiB"

T=$(mktemp -d "$TMP_PARENT/gapsync-bench.XXXXXX")
REG_PID=""
cleanup() {
  local rc=$?
  if [ -n "$REG_PID" ]; then
    kill "$REG_PID" 2>/dev/null || true
    wait "$REG_PID" 2>/dev/null || true
    REG_PID=""
  fi
  if [ "$KEEP" = 1 ]; then
    log "kept $T"
  else
    rm -rf "$T"
  fi
  return $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

same_fs=no
[ "$(stat -c %d "$T")" = "$(stat -c %d /work 2>/dev/null || echo none)" ] && same_fs=yes
FS_DESC=$(findmnt -no SOURCE,FSTYPE,OPTIONS -T "$T" | awk '{printf "%s %s (%s)", $2, $1, $3}')
log "temp dir $T on $FS_DESC; same filesystem as /work: $same_fs"

# ---------------------------------------------------------------- gapsync binary
if [ -n "${GAPSYNC:-}" ]; then
  GS=$GAPSYNC
else
  log "building gapsync in $REPO/build-bench (RelWithDebInfo)"
  {
    cmake -S "$REPO" -B "$REPO/build-bench" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
      cmake --build "$REPO/build-bench" -j "$(nproc)" --target gapsync
  } >"$T/build.log" 2>&1 || { tail -30 "$T/build.log" >&2; die "build failed"; }
  GS=$REPO/build-bench/agent/gapsync
fi
[ -x "$GS" ] || die "gapsync binary $GS not found"
if [ -n "${GAPSYNC:-}" ]; then
  GS_REV="binary $GAPSYNC"
else
  GS_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
  if [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no -- . ":!tests/bench" 2>/dev/null)" ]; then GS_REV="$GS_REV+uncommitted changes"; fi
fi

# ---------------------------------------------------------------- inputs
IN=$T/input
mkdir -p "$IN/images" "$IN/artifacts" "$T/layers"
ART_MB=$(( SIZE_MB / 10 ))
IMG_MB=$(( SIZE_MB - ART_MB ))
pct() { echo $(( IMG_MB * $1 / 100 )); }
# name:MiB; "runtime" is shared by web and api.
LAYERS=("runtime:$(pct 20)" "web-app:$(pct 15)" "web-assets:$(pct 10)" "api-app:$(pct 25)" "worker-app:$(pct 30)")
if [ "$LAYER_COMPRESSION" = gzip ]; then
  LAYER_MT=application/vnd.oci.image.layer.v1.tar+gzip
  compress() { gzip -1 -n -c; }
else
  LAYER_MT=application/vnd.oci.image.layer.v1.tar+zstd
  compress() { zstd -q -1 -T1 -c; }
fi
TAR_OPTS=(--sort=name --owner=0 --group=0 --numeric-owner --mtime=@1700000000 --format=posix
          --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime)

# make_layer NAME MiB: a layer of random files -> $T/layers/NAME.{blob,diffid,digest,size}
make_layer() {
  local name=$1 mib=$2 st=$T/stage-$1 i=0 left sz
  local sizes=(48 8 24 1 64 16 32)
  mkdir -p "$st/opt/$name/lib" "$st/opt/$name/share/doc"
  left=$(( mib * 1048576 - 64 * 4096 ))
  for ((j = 0; j < 64; j++)); do  # some small files too
    head -c 4096 /dev/urandom >"$st/opt/$name/share/doc/part-$j.dat"
  done
  while [ "$left" -gt 0 ]; do
    sz=$(( sizes[i % ${#sizes[@]}] * 1048576 ))
    [ "$sz" -gt "$left" ] && sz=$left
    head -c "$sz" /dev/urandom >"$st/opt/$name/lib/data-$(printf %03d "$i").bin"
    left=$(( left - sz ))
    i=$(( i + 1 ))
  done
  printf '%s layer of the gapsync benchmark\n' "$name" >"$st/opt/$name/share/doc/README"
  tar "${TAR_OPTS[@]}" -C "$st" -cf "$T/layers/$name.tar" .
  rm -rf "$st"
  sha256sum "$T/layers/$name.tar" | cut -d' ' -f1 >"$T/layers/$name.diffid"
  compress <"$T/layers/$name.tar" >"$T/layers/$name.blob"
  rm -f "$T/layers/$name.tar"
  sha256sum "$T/layers/$name.blob" | cut -d' ' -f1 >"$T/layers/$name.digest"
  stat -c %s "$T/layers/$name.blob" >"$T/layers/$name.size"
}

# make_logs: ~ART_MB MiB of compressible text: log files plus many small config files.
make_logs() {
  local dir=$IN/artifacts/files i n_logs lines_per
  mkdir -p "$dir/logs" "$dir/conf"
  for ((i = 0; i < 300; i++)); do
    printf '{"service":"svc-%03d","replicas":%d,"port":%d,"env":{"LOG_LEVEL":"info","REGION":"r%d"},"limits":{"cpu":"%dm","memory":"%dMi"}}\n' \
      "$i" $((i % 5 + 1)) $((8000 + i)) $((i % 7)) $((100 * (i % 9 + 1))) $((64 * (i % 8 + 1))) >"$dir/conf/svc-$(printf %03d "$i").json"
  done
  n_logs=$(( ART_MB / 8 ))
  [ "$n_logs" -lt 1 ] && n_logs=1
  lines_per=$(( ART_MB * 1048576 / n_logs / 112 ))
  for ((i = 0; i < n_logs; i++)); do
    awk -v n="$lines_per" -v seed="$i" 'BEGIN{srand(seed + 1);
      split("GET POST PUT DELETE", m, " "); split("/api/v1/orders /api/v1/users /healthz /api/v1/cart /static/app.js /api/v2/search", p, " ");
      split("INFO INFO INFO WARN DEBUG ERROR", lv, " ");
      for (k = 0; k < n; k++) printf "2024-05-%02dT%02d:%02d:%02d.%03dZ %-5s [req-%08x] %s %s status=%d bytes=%d dur_ms=%.1f user=u%05d\n",
        1 + int(rand() * 28), int(rand() * 24), int(rand() * 60), int(rand() * 60), int(rand() * 1000), lv[1 + int(rand() * 6)],
        int(rand() * 4294967295), m[1 + int(rand() * 4)], p[1 + int(rand() * 6)], (rand() < 0.9 ? 200 : 500),
        int(rand() * 100000), rand() * 500, int(rand() * 50000) }' >"$dir/logs/app-$(printf %03d "$i").log"
  done
}

gen_start=$(date +%s)
log "generating ~$SIZE_MB MiB of inputs: images ${IMG_MB} MiB (layers ${LAYERS[*]}, $LAYER_COMPRESSION), artifacts ${ART_MB} MiB"
jobs_max=$(nproc)
for spec in "${LAYERS[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n; done
  make_layer "${spec%%:*}" "${spec##*:}" &
done
make_logs
wait_all() { local p; for p in $(jobs -rp); do wait "$p"; done; }
wait_all
for spec in "${LAYERS[@]}"; do [ -s "$T/layers/${spec%%:*}.digest" ] || die "layer ${spec%%:*} was not built"; done

# Base image with umoci: busybox-static rootfs.
umoci init --layout "$T/base" >/dev/null
umoci new --image "$T/base:base" >/dev/null
umoci unpack --image "$T/base:base" "$T/base-bundle" >/dev/null
mkdir -p "$T/base-bundle/rootfs/bin" "$T/base-bundle/rootfs/etc" "$T/base-bundle/rootfs/tmp"
cp /bin/busybox "$T/base-bundle/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$T/base-bundle/rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$T/base-bundle/rootfs/etc/passwd"
umoci repack --image "$T/base:base" "$T/base-bundle" >/dev/null
umoci config --image "$T/base:base" --config.cmd /bin/sh >/dev/null
base_manifest=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "base") | .digest' "$T/base/index.json")
base_manifest_file=$T/base/blobs/sha256/${base_manifest#sha256:}
base_config_file=$T/base/blobs/sha256/$(jq -r '.config.digest' "$base_manifest_file" | cut -d: -f2)
base_layer=$(jq -c '.layers[0]' "$base_manifest_file")
base_layer_file=$T/base/blobs/sha256/$(jq -r '.digest' <<<"$base_layer" | cut -d: -f2)

# put_blob LAYOUT FILE -> prints sha256:HEX; moves FILE into LAYOUT/blobs/sha256/HEX
put_blob() {
  local hex
  hex=$(sha256sum "$2" | cut -d' ' -f1)
  mv "$2" "$1/blobs/sha256/$hex"
  echo "sha256:$hex"
}

# make_image NAME TAG LAYER... : an OCI image layout $IN/images/NAME holding TAG (base layer + LAYERs).
# Layer blobs are hard links to one file, so a layer shared by two images exists once on disk.
make_image() {
  local name=$1 tag=$2 l hex
  shift 2
  local layout=$IN/images/$name
  mkdir -p "$layout/blobs/sha256"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
  ln "$base_layer_file" "$layout/blobs/sha256/$(basename "$base_layer_file")"
  local layers_json=$base_layer diff_ids='[]' history='[]'
  layers_json="[$layers_json"
  for l in "$@"; do
    hex=$(cat "$T/layers/$l.digest")
    ln "$T/layers/$l.blob" "$layout/blobs/sha256/$hex"
    layers_json+=",{\"mediaType\":\"$LAYER_MT\",\"digest\":\"sha256:$hex\",\"size\":$(cat "$T/layers/$l.size")}"
    diff_ids=$(jq -c --arg d "sha256:$(cat "$T/layers/$l.diffid")" '. + [$d]' <<<"$diff_ids")
    history=$(jq -c --arg l "$l" '. + [{"created":"2024-05-01T00:00:00Z","created_by":("bundle_bench: add " + $l)}]' <<<"$history")
  done
  layers_json+="]"
  jq -c --argjson ids "$diff_ids" --argjson hist "$history" \
    '.created = "2024-05-01T00:00:00Z" | .rootfs.diff_ids += $ids | .history = ((.history // []) + $hist)' \
    "$base_config_file" >"$T/config.json"
  local cfg_size cfg_digest man_size man_digest
  cfg_size=$(stat -c %s "$T/config.json")
  cfg_digest=$(put_blob "$layout" "$T/config.json")
  jq -nc --arg cd "$cfg_digest" --argjson cs "$cfg_size" --argjson layers "$layers_json" \
    '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs}, layers: $layers}' >"$T/manifest.json"
  man_size=$(stat -c %s "$T/manifest.json")
  man_digest=$(put_blob "$layout" "$T/manifest.json")
  jq -nc --arg md "$man_digest" --argjson ms "$man_size" --arg tag "$tag" \
    '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $md, size: $ms,
                   annotations: {"org.opencontainers.image.ref.name": $tag}}]}' >"$layout/index.json"
}

IMAGES=(web api worker)
make_image web 1.0 runtime web-app web-assets
make_image api 1.0 runtime api-app
make_image worker 1.0 worker-app
rm -rf "$T/layers" "$T/base-bundle"
for img in "${IMAGES[@]}"; do  # the layouts must be valid for skopeo, which the baseline uses
  skopeo inspect "oci:$IN/images/$img:1.0" >/dev/null || die "generated image $img is not a valid OCI layout"
done

cat >"$IN/app.yaml" <<EOF
app: benchshop
version: 1.0.0
description: gapsync benchmark release
components:
  - name: web
    image: oci:images/web:1.0
  - name: api
    image: oci:images/api:1.0
  - name: worker
    image: oci:images/worker:1.0
  - name: files
    artifact: artifacts/files
EOF

IN_BYTES=$(du -sb "$IN" | cut -f1)   # hard-linked shared layers count once
IN_FILES=$(find "$IN" -type f | wc -l)
IMG_BYTES=$(du -sb "$IN/images" | cut -f1)
GEN_SECS=$(( $(date +%s) - gen_start ))
log "inputs ready in ${GEN_SECS}s: $(( IN_BYTES >> 20 )) MiB in $IN_FILES files"

"$GS" -q keys generate --out "$T/keys" --name bench >/dev/null
KEY=$T/keys/bench.key
PUB=$T/keys/bench.pub

# ---------------------------------------------------------------- timing helpers
DEV_STAT=/sys/dev/block/$(findmnt -no MAJ:MIN -T "$T" | tr -d ' ')/stat
# settle: flush dirty pages, then wait (at most 60 s) until the disk under $T has done no I/O for a
# second, so a step does not pay for the writeback or discards left by the step before it.
settle() {
  sync
  if [ ! -r "$DEV_STAT" ]; then sleep 1; return 0; fi
  local prev cur i
  prev=$(awk '{ print $1, $5, $9, $12 }' "$DEV_STAT")
  for ((i = 0; i < 60; i++)); do
    sleep 1
    cur=$(awk '{ print $1, $5, $9, $12 }' "$DEV_STAT")
    [ "$cur" = "$prev" ] && return 0
    prev=$cur
  done
}
cold() {
  settle
  echo 3 >/proc/sys/vm/drop_caches
}

declare -A TIMES RSS CMD
# timed KEY SHOWN-COMMAND CMD...: cold cache, then the wall-clock seconds of CMD, appended to TIMES[KEY]
timed() {
  local key=$1 shown=$2 t0 t1 s
  shift 2
  cold
  t0=$(date +%s.%N)
  "$@"
  t1=$(date +%s.%N)
  s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  TIMES[$key]+="${TIMES[$key]:+ }$s"
  CMD[$key]=${shown//"$T"/\$T}
  log "  $key: $s s"
}
# gs_logged KEY ARGS...: gapsync -q ARGS under /usr/bin/time, its summary line to $T/out.KEY
gs_logged() {
  local key=$1
  shift
  /usr/bin/time -f %M -o "$T/rss.$key" "$GS" -q "$@" >"$T/out.$key" || { cat "$T/out.$key" >&2; return 1; }
}
# timed_gs KEY ARGS...: timed run of gapsync -q ARGS; RSS[KEY] = the largest peak RSS (MiB) seen
timed_gs() {
  local key=$1 rss
  shift
  timed "$key" "gapsync -q $*" gs_logged "$key" "$@"
  rss=$(( $(tail -1 "$T/rss.$key") / 1024 ))
  [ "$rss" -gt "${RSS[$key]:-0}" ] && RSS[$key]=$rss
  log "    $(head -c 300 "$T/out.$key")"
}

floor_c() { cp -a --reflink=never "$IN" "$T/floorC"; sync; }
floor_a() { mkdir -p "$T/floorA"; cp --reflink=never "$T"/bundle/volume-*.gsv "$T/floorA/"; sync; }
floor_b() { openssl dgst -sha256 "$T"/bundle/volume-*.gsv >/dev/null; }

free_port() {
  local port
  for port in $(shuf -i 20000-60000 -n 100); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
  done
  return 1
}
# start_registry: a docker-registry with empty filesystem storage on a free 127.0.0.1 port
start_registry() {
  REG_PORT=$(free_port) || die "no free port on 127.0.0.1"
  rm -rf "$T/registry"
  mkdir -p "$T/registry/data"
  cat >"$T/registry/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $T/registry/data
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$REG_PORT
EOF
  docker-registry serve "$T/registry/config.yml" >"$T/registry/log" 2>&1 &
  REG_PID=$!
  local i
  for ((i = 0; i < 100; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$REG_PORT") 2>/dev/null; then return 0; fi
    kill -0 "$REG_PID" 2>/dev/null || { cat "$T/registry/log" >&2; die "docker-registry exited"; }
    sleep 0.1
  done
  die "docker-registry did not start listening on 127.0.0.1:$REG_PORT"
}
stop_registry() {
  if [ -n "$REG_PID" ]; then
    kill "$REG_PID" 2>/dev/null || true
    wait "$REG_PID" 2>/dev/null || true
    REG_PID=""
  fi
}
skopeo_all() {
  local img
  for img in "${IMAGES[@]}"; do
    skopeo copy --quiet --dest-tls-verify=false "oci:$IN/images/$img:1.0" "docker://127.0.0.1:$REG_PORT/bench/$img:1.0"
  done
  sync
}

# ---------------------------------------------------------------- the timed steps
# Each gapsync command and its floor run REPEAT times, alternating, so drift in the machine's disk
# speed hits both alike; the report uses medians.
vol_args=()
[ -n "$VOLUME_SIZE" ] && vol_args=(--volume-size "$VOLUME_SIZE")
# The first big copy after generating the inputs is consistently slow on a VM (the host is still
# absorbing the writes): one untimed copy of the inputs takes that hit before the timed rounds.
log "warm-up: one untimed copy of the inputs"
floor_c
rm -rf "$T/floorC"
settle
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

for ((r = 1; r <= REPEAT; r++)); do
  log "round $r/$REPEAT: floor C and bundle create"
  rm -rf "$T/floorC" "$T/bundle"
  timed floorC "cp -a --reflink=never \$T/input \$T/floorC && sync" floor_c
  timed_gs create bundle create --template "$IN/app.yaml" --key "$KEY" --out "$T/bundle" "${vol_args[@]}"
done
rm -rf "$T/floorC"
VOL_BYTES=$(cat "$T"/bundle/volume-*.gsv | wc -c)
VOL_COUNT=$(ls "$T"/bundle/volume-*.gsv | wc -l)

for ((r = 1; r <= REPEAT; r++)); do
  log "round $r/$REPEAT: floor B and bundle verify"
  timed floorB "openssl dgst -sha256 \$T/bundle/volume-*.gsv" floor_b
  timed_gs verify bundle verify "$T/bundle" --trust "$PUB"
done

for ((r = 1; r <= REPEAT; r++)); do
  log "round $r/$REPEAT: floor A and ingest"
  rm -rf "$T/floorA" "$T/store"
  timed floorA "cp --reflink=never \$T/bundle/volume-*.gsv \$T/floorA/ && sync" floor_a
  timed_gs ingest ingest "$T/bundle" --store "$T/store" --trust "$PUB"
done
rm -rf "$T/floorA"
STORE_BYTES=$(du -sb "$T/store" | cut -f1)

for ((r = 1; r <= REPEAT; r++)); do
  log "round $r/$REPEAT: ingest again (no-op)"
  timed_gs reingest ingest "$T/bundle" --store "$T/store" --trust "$PUB"
done

for ((r = 1; r <= REPEAT; r++)); do
  log "round $r/$REPEAT: baseline skopeo copy into docker-registry"
  start_registry
  timed skopeo "for img in ${IMAGES[*]}: skopeo copy --dest-tls-verify=false oci:\$T/input/images/\$img:1.0 docker://127.0.0.1:PORT/bench/\$img:1.0; then sync" skopeo_all
  REG_BYTES=$(du -sb "$T/registry/data" | cut -f1)
  stop_registry
done

# ---------------------------------------------------------------- report
median() { tr ' ' '\n' <<<"$1" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) printf "%.2f", a[(NR + 1) / 2]; else printf "%.2f", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
range() { tr ' ' '\n' <<<"$1" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f-%.2f", lo, hi }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b <= 0) print "inf"; else printf "%.2f", a / b }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "inf" && a + 0 <= b + 0) }'; }
mibs() { awk -v n="$1" -v s="$2" 'BEGIN { if (s <= 0) print "-"; else printf "%.0f", n / 1048576 / s }'; }
mib() { echo $(( $1 >> 20 )); }
verdict() { if le "$1" "$2"; then echo pass; else echo FAIL; fi; }

declare -A MED RNG
for k in "${!TIMES[@]}"; do
  MED[$k]=$(median "${TIMES[$k]}")
  RNG[$k]=$(range "${TIMES[$k]}")
done
R_CREATE=$(ratio "${MED[create]}" "${MED[floorC]}")
R_VERIFY=$(ratio "${MED[verify]}" "${MED[floorB]}")
R_INGEST=$(ratio "${MED[ingest]}" "${MED[floorA]}")
R_SKOPEO=$(ratio "${MED[ingest]}" "${MED[skopeo]}")
V_CREATE=$(verdict "$R_CREATE" "$TARGET_CREATE")
V_VERIFY=$(verdict "$R_VERIFY" "$TARGET_VERIFY")
V_INGEST=$(verdict "$R_INGEST" "$TARGET_INGEST")
rss_cell() { echo "${RSS[$1]} ($(verdict "${RSS[$1]}" "$TARGET_RSS_MIB"))"; }
RSS_CREATE=$(rss_cell create)
RSS_VERIFY=$(rss_cell verify)
RSS_INGEST=$(rss_cell ingest)
RSS_REINGEST=$(rss_cell reingest)
FAILED=0
case "$V_CREATE $V_VERIFY $V_INGEST $RSS_CREATE $RSS_VERIFY $RSS_INGEST $RSS_REINGEST" in *FAIL*) FAILED=1 ;; esac

# step|key|bytes for MiB/s|ratio|target|rss
ROWS=(
  "floor C: cp inputs + sync|floorC|$IN_BYTES|||-"
  "gapsync bundle create|create|$IN_BYTES|$R_CREATE x floor C|<= $TARGET_CREATE: $V_CREATE|$RSS_CREATE"
  "floor B: openssl dgst -sha256|floorB|$VOL_BYTES|||-"
  "gapsync bundle verify|verify|$VOL_BYTES|$R_VERIFY x floor B|<= $TARGET_VERIFY: $V_VERIFY|$RSS_VERIFY"
  "floor A: cp volumes + sync|floorA|$VOL_BYTES|||-"
  "gapsync ingest (fresh store)|ingest|$VOL_BYTES|$R_INGEST x floor A|<= $TARGET_INGEST: $V_INGEST|$RSS_INGEST"
  "baseline: skopeo copy to docker-registry + sync|skopeo|$IMG_BYTES|ingest = $R_SKOPEO x baseline|info|-"
  "gapsync ingest again (no-op)|reingest|0|||$RSS_REINGEST"
)

MEM_LINE=$(free -g | awk '/^Mem:/ { printf "%s GiB total, %s GiB available", $2, $7 }')
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
{
  echo "### gapsync bundle benchmark ($(date -u +%Y-%m-%dT%H:%MZ), gapsync $GS_REV)"
  echo
  echo "- Machine: $(nproc) CPUs ($CPU_MODEL), memory $MEM_LINE (\`free -g\`), kernel $(uname -r); load average $LOAD_START before the timed steps (input generation raises it), $(cut -d' ' -f1-3 /proc/loadavg) at the end; anything else running on the machine skews the numbers"
  echo "- Temp dir \`\$T\` = \`$T\` on $FS_DESC; same filesystem as /work: $same_fs"
  echo "- Inputs: $(mib "$IN_BYTES") MiB in $IN_FILES files (BENCH_SIZE_MB=$SIZE_MB): images web, api, worker (OCI layouts, busybox-static base layer from umoci + random-data layers, $LAYER_COMPRESSION; layer \`runtime\` shared by web and api, hard-linked so it is stored and copied once), $(mib "$IMG_BYTES") MiB; artifact folder of log/config text, $ART_MB MiB"
  echo "- Bundle: $(mib "$VOL_BYTES") MiB in $VOL_COUNT volume(s) (--volume-size ${VOLUME_SIZE:-default}); store after ingest $(mib "$STORE_BYTES") MiB; registry after skopeo $(mib "$REG_BYTES") MiB"
  echo "- Every timed step starts cold: \`sync\`, wait until the disk has been idle for 1 s, \`echo 3 > /proc/sys/vm/drop_caches\`. One untimed copy of the inputs runs first (the first big copy after generating them is slow on a VM). Each step ran $REPEAT times, alternating with its floor; seconds are the median wall-clock time (range in brackets), ratios are of medians. RSS is the largest peak resident set from \`/usr/bin/time -f %M\`, in MiB (target <= $TARGET_RSS_MIB)."
  echo "- Floors and the baseline include a final \`sync\`; gapsync commands are timed as they are (create and ingest fsync their own output)."
  echo
  echo "| step | command | s (range) | MiB/s | ratio | target | peak RSS MiB |"
  echo "|---|---|---:|---:|---|---|---:|"
  for row in "${ROWS[@]}"; do
    IFS='|' read -r name key bytes rt tg rs <<<"$row"
    rate=-
    [ "$bytes" -gt 0 ] && rate=$(mibs "$bytes" "${MED[$key]}")
    echo "| $name | \`${CMD[$key]}\` | ${MED[$key]} (${RNG[$key]}) | $rate | $rt | $tg | $rs |"
  done
  echo
  if [ "$FAILED" = 0 ]; then echo "All targets met."; else echo "Some targets missed (FAIL above)."; fi
} >"$OUT"

echo
printf '%-46s %8s %12s %7s %-26s %-16s %s\n' step "median s" range MiB/s ratio target "RSS MiB"
for row in "${ROWS[@]}"; do
  IFS='|' read -r name key bytes rt tg rs <<<"$row"
  rate=-
  [ "$bytes" -gt 0 ] && rate=$(mibs "$bytes" "${MED[$key]}")
  printf '%-46s %8s %12s %7s %-26s %-16s %s\n' "$name" "${MED[$key]}" "${RNG[$key]}" "$rate" "$rt" "$tg" "$rs"
done
echo
echo "inputs $(mib "$IN_BYTES") MiB ($IN_FILES files), bundle $(mib "$VOL_BYTES") MiB in $VOL_COUNT volume(s), store $(mib "$STORE_BYTES") MiB; $REPEAT rounds per step"
echo "temp dir $T on $FS_DESC (same filesystem as /work: $same_fs); caches dropped before every timed step"
echo "markdown written to $OUT"
if [ "$FAILED" != 0 ]; then
  echo "some targets missed"
  [ "$STRICT" = 1 ] && exit 1
fi
exit 0
