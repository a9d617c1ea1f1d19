#!/usr/bin/env bash
# Volumes on different media: ingest what is present, name what is missing, finish later —
# including a blob cut across two volumes that never sit on the same medium.
source "$(dirname "$0")/lib.sh"
make_fixture "$WORK/f"
S=$WORK/f/src; K=$WORK/f/keys; B=$WORK/bundle; ST=$WORK/store
G bundle create --template "$S/app.yaml" --key "$K/vendor.key" --out "$B" --volume-size 300K >/dev/null
n=$(ls "$B"/volume-*.gsv | wc -l)
half=$(( n / 2 ))
mkdir -p "$WORK/disk1" "$WORK/disk2"
for d in disk1 disk2; do cp "$B/manifest.pb" "$B/manifest.sig" "$WORK/$d/"; done
i=0
for v in "$B"/volume-*.gsv; do
  i=$((i + 1)); if [ $i -le $half ]; then cp "$v" "$WORK/disk1/"; else cp "$v" "$WORK/disk2/"; fi
done
# fsck's partial_blobs below proves a blob straddles the two disks

log "disk 1 alone: stores what it holds, names the missing volumes, exit 3"
rc=0; err=$(G ingest "$WORK/disk1" --store "$ST" --trust "$K/vendor.pub" 2>&1 >/dev/null) || rc=$?
[ $rc -eq 3 ] || fail "expected exit 3 (incomplete), got $rc: $err"
[ "$(echo "$err" | grep -c .)" -eq 1 ] || fail "expected one line: $err"
echo "$err" | grep -q "missing volume files: .*$(printf 'volume-%04d.gsv' $((half + 1)))" || fail "missing volume not named: $err"
echo "    ok: $err"
G store ls --store "$ST" --json | jq -e '.releases == [] and .blobs > 0' >/dev/null || fail "release visible after partial ingest, or nothing stored"
G store fsck --store "$ST" --json | jq -e '.clean and .partial_blobs >= 1' >/dev/null || fail "expected a partially stored blob straddling the disks"

log "disk 1 again: idempotent, still incomplete"
rc=0; G ingest "$WORK/disk1" --store "$ST" --trust "$K/vendor.pub" 2>/dev/null || rc=$?
[ $rc -eq 3 ] || fail "rerun of disk1 exit $rc"

log "gc between the two media keeps what disk 1 brought (the release is pending)"
blobs_before=$(G store ls --store "$ST" --json | jq .blobs)
G store gc --store "$ST" >/dev/null
[ "$(G store ls --store "$ST" --json | jq .blobs)" = "$blobs_before" ] || fail "gc dropped blobs of a pending release"
G store fsck --store "$ST" --json | jq -e '.partial_blobs >= 1' >/dev/null || fail "gc dropped the straddling blob's progress"

log "disk 2: completes the release, the straddling blob resumes from its stored prefix"
G ingest "$WORK/disk2" --store "$ST" --trust "$K/vendor.pub" --json > "$WORK/r2.json"
jq -e '.complete and .blobs_skipped > 0' "$WORK/r2.json" >/dev/null || fail "disk2 ingest: $(cat "$WORK/r2.json")"
G store fsck --store "$ST" --json | jq -e '.clean and .partial_blobs == 0 and .orphan_chunks == 0' >/dev/null || fail "fsck after completion"
G store export --store "$ST" --release shop@1.0.0 --component web --oci "$WORK/out" >/dev/null
[ "$(skopeo inspect oci:"$WORK/out":1.0.0 | jq -r .Digest)" = "$(skopeo inspect oci:"$S/img":web | jq -r .Digest)" ] || fail "exported digest differs"
skopeo copy -q oci:"$WORK/out":1.0.0 oci:"$WORK/copy":x
