# Shared helpers for gapsync's scripted end-to-end tests. Source it; needs $GAPSYNC (the binary).
set -euo pipefail

: "${GAPSYNC:?set GAPSYNC to the gapsync binary}"
: "${GAPSYNC_PROTO:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/proto/bundle.proto}"
G() { "$GAPSYNC" -q "$@"; }

WORK=$(mktemp -d /var/tmp/gapsync-test.XXXXXX)
cleanup_hooks=()
cleanup() {
  local rc=$?
  for h in "${cleanup_hooks[@]}"; do eval "$h" || true; done
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
  if [ $rc -eq 0 ]; then echo "PASS: $(basename "$0")"; else echo "FAIL: $(basename "$0") (exit $rc)"; fi
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
log() { echo "--- $*"; }

# expect_error PATTERN CMD...: CMD must exit non-zero with exactly one stderr line matching PATTERN.
# Sets EXIT_CODE.
expect_error() {
  local pattern=$1; shift
  local err rc=0
  err=$("$@" 2>&1 >/dev/null) || rc=$?
  EXIT_CODE=$rc
  [ $rc -ne 0 ] || fail "expected failure, got exit 0: $*"
  local lines
  lines=$(printf '%s\n' "$err" | grep -c . || true)
  [ "$lines" -eq 1 ] || fail "expected one error line from '$*', got $lines: $err"
  printf '%s\n' "$err" | grep -Eq -- "$pattern" || fail "error from '$*' does not match /$pattern/: $err"
  echo "    ok (exit $rc): $err"
}

# The store's visible state: releases (not timestamps) and blob totals.
store_state() { G store ls --store "$1" --json | jq -c '[.releases | map({app, version, release_digest, blobs, bytes})]'; }

assert_fsck_clean() { G store fsck --store "$1" >/dev/null || fail "store fsck not clean: $1"; }

# make_fixture DIR: real OCI images (umoci, busybox-static rootfs) sharing a layer, a docker-archive
# made by skopeo, plain artifacts, a deploy template, app.yaml and two key pairs.
make_fixture() {
  local d=$1
  mkdir -p "$d/src" "$d/keys"
  (
    cd "$d/src"
    umoci init --layout img
    umoci new --image img:empty
    umoci unpack --image img:empty rb >/dev/null
    mkdir -p rb/rootfs/bin
    cp /bin/busybox rb/rootfs/bin/busybox
    umoci repack --image img:base rb
    rm -rf rb
    for name in web api; do
      umoci unpack --image img:base "rb-$name" >/dev/null
      head -c 262144 /dev/urandom > "rb-$name/rootfs/$name.bin"
      echo "$name" > "rb-$name/rootfs/name"
      umoci repack --image "img:$name" "rb-$name"
      umoci config --image "img:$name" --config.cmd /bin/busybox --config.cmd sh
      rm -rf "rb-$name"
    done
    skopeo copy -q oci:img:api docker-archive:db.tar:db:1.0
    mkdir -p files/conf/empty deploy
    seq 1 20000 > files/conf/numbers.txt
    head -c 100000 /dev/urandom > files/blob.bin
    cp files/blob.bin files/conf/same-as-blob.bin
    echo "web: {{ image.web }}" > deploy/compose.tmpl
    cat > app.yaml <<YAML
app: shop
version: 1.0.0
components:
  - name: web
    image: oci:img:web
  - name: api
    image: oci:img:api
  - name: db
    image: docker-archive:db.tar
  - name: files
    artifact: files
  - name: readme
    artifact: files/conf/numbers.txt
deploy:
  templates: [deploy/compose.tmpl]
  hooks:
    activate: sh activate.sh
    health: sh health.sh
    deactivate: sh deactivate.sh
YAML
  ) >/dev/null
  G keys generate --out "$d/keys" --name vendor >/dev/null
  G keys generate --out "$d/keys" --name other >/dev/null
}

# Decode / encode / sign manifests with real tools (protoc, openssl) to forge bad bundles.
manifest_to_text() { protoc --proto_path="$(dirname "$GAPSYNC_PROTO")" --decode=gapsync.v1.BundleManifest "$(basename "$GAPSYNC_PROTO")" < "$1"; }
text_to_manifest() { protoc --proto_path="$(dirname "$GAPSYNC_PROTO")" --encode=gapsync.v1.BundleManifest "$(basename "$GAPSYNC_PROTO")" < "$1" > "$2"; }
sign_manifest() { openssl pkeyutl -sign -inkey "$2" -rawin -in "$1/manifest.pb" -out "$1/manifest.sig"; }

# flip_byte FILE OFFSET
flip_byte() {
  local b
  b=$(dd if="$1" bs=1 skip="$2" count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
  printf "$(printf '\\%03o' $(( (b ^ 1) & 255 )))" | dd of="$1" bs=1 seek="$2" count=1 conv=notrunc 2>/dev/null
}
