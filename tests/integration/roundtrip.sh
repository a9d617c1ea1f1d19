#!/usr/bin/env bash
# Real images (umoci) and a docker-archive (skopeo) -> bundle split across volumes -> verify ->
# ingest -> export -> skopeo inspect: digests survive the whole trip.
source "$(dirname "$0")/lib.sh"
make_fixture "$WORK/f"
S=$WORK/f/src; K=$WORK/f/keys; B=$WORK/bundle; ST=$WORK/store

log "bundle create with 200K volumes (blobs split across volumes)"
G bundle create --template "$S/app.yaml" --key "$K/vendor.key" --out "$B" --volume-size 200K --json > "$WORK/create.json"
for v in "$B"/volume-*.gsv; do
  size=$(stat -c %s "$v"); [ "$size" -le 204800 ] || fail "$v is $size bytes, over the 200K volume size"
done
nvol=$(ls "$B"/volume-*.gsv | wc -l); [ "$nvol" -gt 3 ] || fail "expected several volumes, got $nvol"
# the busybox base layer is shared by web and api, and by db (same rootfs): stored once
jq -e '.shared_blobs_stored_once >= 2' "$WORK/create.json" >/dev/null || fail "shared layers were not deduplicated: $(cat "$WORK/create.json")"
[ "$(stat -c %a "$K/vendor.key")" = 600 ] || fail "private key mode is not 0600"

log "bundle inspect --json"
G bundle inspect "$B" --json > "$WORK/inspect.json"
jq -e '.app == "shop" and .version == "1.0.0" and (.components | length) == 5' "$WORK/inspect.json" >/dev/null || fail "inspect output wrong"
jq -e "(.volumes | length) == $nvol" "$WORK/inspect.json" >/dev/null || fail "inspect volume count wrong"
web_digest=$(skopeo inspect oci:"$S/img":web | jq -r .Digest)
jq -e --arg d "$web_digest" '.components[] | select(.name == "web") | .manifest_digest == $d' "$WORK/inspect.json" >/dev/null || fail "inspect web digest"

log "bundle verify"
G bundle verify "$B" --trust "$K/other.pub" --trust "$K/vendor.pub" >/dev/null
G bundle verify "$B" --trust "$K/vendor.pub" --json | jq -e '.ok and .blobs_ok == .blobs' >/dev/null

log "ingest, then rerun is a no-op"
G ingest "$B" --store "$ST" --trust "$K/vendor.pub" --json | jq -e '.complete and .blobs_new == .blobs' >/dev/null || fail "first ingest"
G ingest "$B" --store "$ST" --trust "$K/vendor.pub" --json | jq -e '.complete and .already_present and .blobs_new == 0' >/dev/null || fail "rerun not a no-op"
G store ls --store "$ST" --json | jq -e '.releases | length == 1 and .[0].app == "shop" and .[0].version == "1.0.0"' >/dev/null || fail "store ls"
assert_fsck_clean "$ST"

log "export each image and compare with skopeo"
for name in web api; do
  G store export --store "$ST" --release shop@1.0.0 --component $name --oci "$WORK/out-$name" >/dev/null
  want=$(skopeo inspect oci:"$S/img":$name | jq -c '{Digest, Layers}')
  got=$(skopeo inspect oci:"$WORK/out-$name":1.0.0 | jq -c '{Digest, Layers}')
  [ "$want" = "$got" ] || fail "$name: skopeo sees $got, source was $want"
  # skopeo can copy the exported image out again (every blob readable and verified)
  skopeo copy -q oci:"$WORK/out-$name":1.0.0 oci:"$WORK/copy-$name":x
done
log "docker-archive: original config digest and layer diff_ids"
G store export --store "$ST" --release shop@1.0.0 --component db --oci "$WORK/out-db" >/dev/null
want_cfg=$(skopeo inspect --raw docker-archive:"$S/db.tar" | jq -r .config.digest)
got_cfg=$(skopeo inspect --raw oci:"$WORK/out-db":1.0.0 | jq -r .config.digest)
[ "$want_cfg" = "$got_cfg" ] || fail "db config digest $got_cfg, want $want_cfg"
want_layers=$(skopeo inspect docker-archive:"$S/db.tar" | jq -c .Layers)
got_layers=$(skopeo inspect oci:"$WORK/out-db":1.0.0 | jq -c .Layers)
[ "$want_layers" = "$got_layers" ] || fail "db layers $got_layers, want $want_layers"
diff_ids=$(skopeo inspect --config oci:"$WORK/out-db":1.0.0 | jq -c .rootfs.diff_ids)
[ "$diff_ids" = "$want_layers" ] || fail "db diff_ids $diff_ids do not match layers $want_layers"

log "export errors"
expect_error 'no component "nope"' G store export --store "$ST" --release shop@1.0.0 --component nope --oci "$WORK/x"
expect_error 'is an artifact' G store export --store "$ST" --release shop@1.0.0 --component files --oci "$WORK/x"
expect_error 'shop@9.9.9 is not in the store' G store export --store "$ST" --release shop@9.9.9 --component web --oci "$WORK/x"

log "gc keeps every blob of the pinned release"
G store gc --store "$ST" --json | jq -e '.blobs_removed == 0' >/dev/null || fail "gc removed pinned blobs"
assert_fsck_clean "$ST"
