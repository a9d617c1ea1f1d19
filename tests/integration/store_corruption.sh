#!/usr/bin/env bash
# A byte flipped on the store's disk: every read reports it (naming blob, chunk and bytes) and
# never serves it; fsck finds it; fsck --repair drops the blob; re-ingesting the bundle restores it.
source "$(dirname "$0")/lib.sh"
make_fixture "$WORK/f"
S=$WORK/f/src; K=$WORK/f/keys; B=$WORK/bundle; ST=$WORK/store
# a big image layer, so the middle of the store's blob file lies inside an image
(cd "$S" && umoci unpack --image img:web rb >/dev/null && head -c $((8 << 20)) /dev/urandom > rb/rootfs/big.bin \
  && umoci repack --image img:web rb && rm -rf rb) >/dev/null
G bundle create --template "$S/app.yaml" --key "$K/vendor.key" --out "$B" >/dev/null
G ingest "$B" --store "$ST" --trust "$K/vendor.pub" >/dev/null
assert_fsck_clean "$ST"

log "flip one byte in the middle of the largest RocksDB blob file"
blobfile=$(ls -S "$ST"/*.blob | head -1)
flip_byte "$blobfile" $(( $(stat -c %s "$blobfile") / 2 ))

log "fsck reports it"
rc=0; G store fsck --store "$ST" --json > "$WORK/fsck.json" 2>"$WORK/fsck.err" || rc=$?
[ $rc -eq 1 ] || fail "fsck exit $rc on a corrupt store"
jq -e '(.corrupt_blobs // .problems) | length >= 1' "$WORK/fsck.json" >/dev/null
grep -Eq 'blob sha256:[0-9a-f]{64} chunk [0-9]+ \(bytes [0-9]+\.\.[0-9]+\)' "$WORK/fsck.err" || fail "fsck error does not name blob/chunk/bytes: $(cat "$WORK/fsck.err")"
bad=$(grep -Eo 'blob sha256:[0-9a-f]{64}' "$WORK/fsck.err" | head -1 | cut -d' ' -f2)
echo "    corrupt: $bad"

log "export of whatever holds it fails and leaves no file for that blob"
served=0
for c in web api db; do
  if G store export --store "$ST" --release shop@1.0.0 --component $c --oci "$WORK/out-$c" 2>"$WORK/exp.err" >/dev/null; then
    [ ! -e "$WORK/out-$c/blobs/sha256/${bad#sha256:}" ] || fail "export of $c served the corrupt blob $bad"
  else
    grep -q "$bad" "$WORK/exp.err" || fail "export error does not name the corrupt blob: $(cat "$WORK/exp.err")"
    [ ! -e "$WORK/out-$c/blobs/sha256/${bad#sha256:}" ] && [ -z "$(ls "$WORK/out-$c/blobs/sha256/" | grep partial || true)" ] || fail "export left the corrupt blob or a partial file"
    served=1
  fi
done
[ $served -eq 1 ] || fail "no export met the corrupt blob (it should be in the web image's big layer)"

log "fsck --repair drops it; re-ingest of the same bundle restores it; fsck clean"
G store fsck --store "$ST" --repair >/dev/null 2>&1 || true
G ingest "$B" --store "$ST" --trust "$K/vendor.pub" --json | jq -e '.complete and .blobs_new >= 1 and (.already_present | not)' >/dev/null || fail "re-ingest did not restore the dropped blob"
G store gc --store "$ST" >/dev/null
assert_fsck_clean "$ST"
for c in web api db; do
  rm -rf "$WORK/out-$c"
  G store export --store "$ST" --release shop@1.0.0 --component $c --oci "$WORK/out-$c" >/dev/null
done
[ "$(skopeo inspect oci:"$WORK/out-web":1.0.0 | jq -r .Digest)" = "$(skopeo inspect oci:"$S/img":web | jq -r .Digest)" ] || fail "web digest after repair"
