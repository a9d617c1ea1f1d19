#!/usr/bin/env bash
# kill -9 at many moments of an ingest (before the first durable checkpoint, between
# checkpoints, mid-blob, just before the release commit): nothing half-written becomes visible,
# fsck stays clean, and a rerun completes. The process SIGKILLs itself at exact byte counts
# (GAPSYNC_TEST_KILL_AFTER_BYTES) so every kill point is reproducible.
source "$(dirname "$0")/lib.sh"
make_fixture "$WORK/f"
S=$WORK/f/src; K=$WORK/f/keys; B=$WORK/bundle; ST=$WORK/store
head -c $((40 << 20)) /dev/urandom > "$S/files/large.bin"
seq 1 3000000 > "$S/files/compressible.txt"
G bundle create --template "$S/app.yaml" --key "$K/vendor.key" --out "$B" --volume-size 8M >/dev/null
total=$(G bundle inspect "$B" --json | jq .total_bytes)

progress=()
for at in 1 3000000 9000000 5000000 5000000 5000000 0; do
  log "kill -9 after $at new bytes (0 = just before the release commit)"
  rc=0; (GAPSYNC_TEST_KILL_AFTER_BYTES=$at exec "$GAPSYNC" -q ingest "$B" --store "$ST" --trust "$K/vendor.pub" --sync-every 4M 2>/dev/null) || rc=$?
  [ $rc -eq 137 ] || fail "ingest was not killed at $at (exit $rc)"
  G store ls --store "$ST" --json | jq -e '.releases == []' >/dev/null || fail "a release became visible after a kill at $at"
  G store fsck --store "$ST" --json > "$WORK/fsck.json" || fail "fsck not clean after kill at $at: $(cat "$WORK/fsck.json")"
  held=$(G store ls --store "$ST" --json | jq .blobs); partial=$(jq .partial_blobs "$WORK/fsck.json")
  echo "    stored blobs so far: $held, partially stored: $partial"
  progress+=("$held/$partial")
done
# durable checkpoints inside a long blob: a kill after 9 MB keeps something
[ "${progress[2]}" != "0/0" ] || fail "nothing survived a kill after 9 MB with --sync-every 4M"

log "rerun completes"
G ingest "$B" --store "$ST" --trust "$K/vendor.pub" --json | jq -e '.complete' >/dev/null || fail "rerun did not complete"
G store fsck --store "$ST" --json | jq -e '.clean and .partial_blobs == 0' >/dev/null || fail "fsck after completion"
G store gc --store "$ST" >/dev/null
G store fsck --store "$ST" --json | jq -e '.clean and .orphan_chunks == 0' >/dev/null || fail "orphans left after gc"
G store export --store "$ST" --release shop@1.0.0 --component api --oci "$WORK/out" >/dev/null
[ "$(skopeo inspect oci:"$WORK/out":1.0.0 | jq -r .Digest)" = "$(skopeo inspect oci:"$S/img":api | jq -r .Digest)" ] || fail "exported digest differs"
