#!/usr/bin/env bash
# Every kind of damaged or forged bundle: a clear one-line error naming what and where, a
# non-zero exit, and the store's visible state unchanged (fsck clean).
source "$(dirname "$0")/lib.sh"
make_fixture "$WORK/f"
S=$WORK/f/src; K=$WORK/f/keys; GOOD=$WORK/good; ST=$WORK/store
G bundle create --template "$S/app.yaml" --key "$K/vendor.key" --out "$GOOD" --volume-size 300K >/dev/null
# the store starts with an older release so "unchanged" means something
printf 'app: shop\nversion: 0.9.0\ncomponents:\n  - name: readme\n    artifact: files/conf/numbers.txt\n' > "$S/app-old.yaml"
G bundle create --template "$S/app-old.yaml" --key "$K/vendor.key" --out "$WORK/old" >/dev/null
G ingest "$WORK/old" --store "$ST" --trust "$K/vendor.pub" >/dev/null
before=$(store_state "$ST")

fresh() { rm -rf "$WORK/bad"; cp -r "$GOOD" "$WORK/bad"; }
# check_bad PATTERN: verify and ingest both fail with PATTERN; store unchanged and clean.
check_bad() {
  expect_error "$1" G bundle verify "$WORK/bad" --trust "$K/vendor.pub"
  expect_error "$1" G ingest "$WORK/bad" --store "$ST" --trust "$K/vendor.pub"
  [ "$(store_state "$ST")" = "$before" ] || fail "store state changed: $(store_state "$ST")"
  assert_fsck_clean "$ST"
}

log "flipped byte in a volume"
fresh; flip_byte "$WORK/bad/volume-0002.gsv" 1000
check_bad 'volume-0002.gsv bytes [0-9]+\.\.[0-9]+.*blob sha256:[0-9a-f]{64} does not match its digest'

log "truncated volume"
fresh; truncate -s 1000 "$WORK/bad/volume-0003.gsv"
expect_error 'volume-0003.gsv: 1000 bytes, the manifest says 307200 \(truncated\)' G bundle verify "$WORK/bad" --trust "$K/vendor.pub"
err=$(G ingest "$WORK/bad" --store "$ST" --trust "$K/vendor.pub" 2>&1 >/dev/null) && fail "ingest of truncated bundle succeeded"
echo "$err" | grep -q 'volume-0003.gsv' || fail "ingest error does not name the truncated volume: $err"
[ "$(store_state "$ST")" = "$before" ] || fail "store changed"; assert_fsck_clean "$ST"

log "missing volume (verify)"
fresh; rm "$WORK/bad/volume-0004.gsv"
expect_error 'volume-0004.gsv: volume missing' G bundle verify "$WORK/bad" --trust "$K/vendor.pub"

log "a volume that is a symlink out of the bundle folder, or a FIFO"
fresh; rm "$WORK/bad/volume-0002.gsv"; ln -s "$GOOD/volume-0002.gsv" "$WORK/bad/volume-0002.gsv"
check_bad 'volume-0002.gsv: not a regular file'
fresh; rm "$WORK/bad/volume-0002.gsv"; mkfifo "$WORK/bad/volume-0002.gsv"
check_bad 'volume-0002.gsv: not a regular file'
fresh; rm "$WORK/bad/manifest.sig"; mkfifo "$WORK/bad/manifest.sig"
check_bad 'manifest.sig: not a regular file'

log "manifest edited after signing"
fresh; manifest_to_text "$WORK/bad/manifest.pb" | sed 's/version: "1.0.0"/version: "1.0.1"/' > "$WORK/m.txt"
text_to_manifest "$WORK/m.txt" "$WORK/bad/manifest.pb"
check_bad 'manifest.pb: signature does not verify with any trusted key'

log "signature missing"
fresh; rm "$WORK/bad/manifest.sig"
check_bad 'manifest.sig: signature missing'

log "signature truncated"
fresh; head -c 10 "$GOOD/manifest.sig" > "$WORK/bad/manifest.sig"
check_bad 'manifest.sig: 10 bytes, not a 64-byte Ed25519 signature'

log "signed by an untrusted key"
fresh; sign_manifest "$WORK/bad" "$K/other.key"
check_bad 'signature does not verify with any trusted key'

log "malformed manifest bytes (validly signed garbage)"
fresh; head -c 4096 /dev/urandom > "$WORK/bad/manifest.pb"; sign_manifest "$WORK/bad" "$K/vendor.key"
check_bad 'manifest.pb: malformed manifest|manifest.pb: format version'
log "a string field that is not UTF-8 (libprotobuf must not print a line of its own)"
fresh; printf '\x2a\x01\xff' > "$WORK/bad/manifest.pb"; sign_manifest "$WORK/bad" "$K/vendor.key"
check_bad 'manifest.pb: malformed manifest'

# forge: edit the decoded manifest with sed, re-encode with protoc, sign with the vendor key
forge() {
  fresh; manifest_to_text "$GOOD/manifest.pb" | sed -E "$1" > "$WORK/m.txt"
  text_to_manifest "$WORK/m.txt" "$WORK/bad/manifest.pb"; sign_manifest "$WORK/bad" "$K/vendor.key"
}
log "absurd blob size"
forge '0,/^  size: [0-9]+/s//  size: 1152921504606846976/'
check_bad 'claims 1152921504606846976 bytes, more than the limit'
log "absurd volume size"
forge '0,/^  size: 307200/s//  size: 18446744073709551615/'
check_bad 'volume volume-0001.gsv claims 18446744073709551615 bytes'
log "absurd count (a segment in a volume that does not exist)"
forge '0,/volume: 1$/s//volume: 4000000000/'
check_bad 'points at volume 4000000000, which does not exist'
log "segment past the end of its volume"
forge '0,/offset: [1-9][0-9]*$/s//offset: 18446744073709551000/'
check_bad 'runs past the end of volume-0001.gsv'
log "malformed digest string"
forge '0,/digest: "sha256:[0-9a-f]{64}"/s//digest: "sha256:..\/..\/etc\/passwd"/'
check_bad 'malformed digest "sha256:\.\./\.\./etc/passwd"'
log "uppercase digest"
forge '0,/digest: "sha256:([0-9a-f]{64})"/s//digest: "SHA256:\1"/'
check_bad 'malformed digest "SHA256:'
log "volume name leaving the bundle folder"
forge '0,/name: "volume-0001.gsv"/s//name: "..\/..\/etc\/passwd"/'
check_bad 'has the name "\.\./\.\./etc/passwd", which is not a plain file name inside the bundle folder'
log "absolute volume name"
forge '0,/name: "volume-0001.gsv"/s//name: "\/etc\/passwd"/'
check_bad 'has the name "/etc/passwd"'
log "oversized manifest (absurd counts cannot even be read into memory)"
fresh; truncate -s 100M "$WORK/bad/manifest.pb"
check_bad 'manifest.pb: 104857600 bytes, more than the 67108864 allowed'
log "wrong format version"
forge 's/^format_version: 1/format_version: 7/'
check_bad 'format version 7'

log "nothing was written outside the work folder by any of this"
[ ! -e /etc/passwd.partial ] || fail "something wrote next to /etc/passwd"
