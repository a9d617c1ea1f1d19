#!/usr/bin/env bash
# The store's disk fills during ingest: one clear line, non-zero exit, no release visible; with
# space back, a rerun completes and fsck is clean.
source "$(dirname "$0")/lib.sh"
make_fixture "$WORK/f"
S=$WORK/f/src; K=$WORK/f/keys; B=$WORK/bundle
head -c $((48 << 20)) /dev/urandom > "$S/files/large.bin"
G bundle create --template "$S/app.yaml" --key "$K/vendor.key" --out "$B" >/dev/null
mkdir -p "$WORK/small"
mount -t tmpfs -o size=24M tmpfs "$WORK/small"
cleanup_hooks+=("umount '$WORK/small'")
ST=$WORK/small/store

log "ingest into a 24 MiB filesystem"
expect_error 'no space left on device' G ingest "$B" --store "$ST" --trust "$K/vendor.pub"
log "space back: the store opens, holds no release, and a rerun completes"
mount -o remount,size=400M "$WORK/small"
G store ls --store "$ST" --json | jq -e '.releases == []' >/dev/null || fail "release visible after disk-full"
G store fsck --store "$ST" >/dev/null || fail "fsck after disk full"
G ingest "$B" --store "$ST" --trust "$K/vendor.pub" --json | jq -e '.complete' >/dev/null || fail "rerun did not complete"
assert_fsck_clean "$ST"
