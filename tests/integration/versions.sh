#!/usr/bin/env bash
# Versions only move forward; a version is immutable; --allow-older overrides the first rule only.
source "$(dirname "$0")/lib.sh"
make_fixture "$WORK/f"
S=$WORK/f/src; K=$WORK/f/keys; ST=$WORK/store
mk() { # mk VERSION OUT [extra artifact content]
  printf 'app: shop\nversion: %s\ncomponents:\n  - name: web\n    image: oci:img:web\n  - name: notes\n    artifact: notes.txt\n' "$1" > "$S/v.yaml"
  echo "${3:-notes for $1}" > "$S/notes.txt"
  G bundle create --template "$S/v.yaml" --key "$K/vendor.key" --out "$2" >/dev/null
}
mk 1.0.0 "$WORK/b100"; mk 1.1.0 "$WORK/b110"; mk 1.1.0 "$WORK/b110x" "different content"; mk 1.1.0-rc.1 "$WORK/brc"
G ingest "$WORK/b110" --store "$ST" --trust "$K/vendor.pub" >/dev/null
before=$(store_state "$ST")

log "older version refused"
expect_error 'holds shop@1.0.0, older than shop@1.1.0 .*--allow-older' G ingest "$WORK/b100" --store "$ST" --trust "$K/vendor.pub"
expect_error 'older than shop@1.1.0' G ingest "$WORK/brc" --store "$ST" --trust "$K/vendor.pub"
log "same version, different content refused"
expect_error 'already holds shop@1.1.0 with different content' G ingest "$WORK/b110x" --store "$ST" --trust "$K/vendor.pub"
[ "$(store_state "$ST")" = "$before" ] || fail "refused bundles changed the store"
log "--allow-older accepts the older one; same-content rerun is a fast no-op"
G ingest "$WORK/b100" --store "$ST" --trust "$K/vendor.pub" --allow-older >/dev/null
expect_error 'already holds shop@1.1.0 with different content' G ingest "$WORK/b110x" --store "$ST" --trust "$K/vendor.pub" --allow-older
G ingest "$WORK/b110" --store "$ST" --trust "$K/vendor.pub" --json | jq -e '.already_present' >/dev/null || fail "rerun not a no-op"
G store ls --store "$ST" --json | jq -e '[.releases[].version] | sort == ["1.0.0","1.1.0"]' >/dev/null || fail "releases"
log "the two releases share the web image: its blobs are stored once"
blobs=$(G store ls --store "$ST" --json | jq .blobs)
web=$(skopeo inspect oci:"$S/img":web | jq '.Layers | length')
# web: manifest + config + layers, and one notes file per release
[ "$blobs" -eq $(( web + 2 + 2 )) ] || fail "expected $(( web + 4 )) blobs, store has $blobs"
assert_fsck_clean "$ST"
