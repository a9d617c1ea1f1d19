#!/usr/bin/env bash
# Bad inputs on the vendor side: templates, OCI layouts, docker-archives, flags. Each a one-line
# error naming the file (and line, member or blob), a non-zero exit, and no bundle left behind.
source "$(dirname "$0")/lib.sh"
make_fixture "$WORK/f"
S=$WORK/f/src; K=$WORK/f/keys

# create_fails PATTERN TEMPLATE: bundle create fails and leaves no bundle files.
create_fails() {
  rm -rf "$WORK/out"
  expect_error "$1" G bundle create --template "$2" --key "$K/vendor.key" --out "$WORK/out"
  [ ! -e "$WORK/out" ] || [ -z "$(ls -A "$WORK/out")" ] || fail "failed create left files: $(ls "$WORK/out")"
}
t() { printf '%s\n' "$@" > "$S/t.yaml"; echo "$S/t.yaml"; }

log "template: unknown keys"
create_fails 't.yaml:3: unknown key "colour" in app.yaml' "$(t 'app: shop' 'version: 1.0.0' 'colour: red' 'components:' '  - name: a' '    artifact: files')"
create_fails 't.yaml:5: unknown key "tag" in component' "$(t 'app: shop' 'version: 1.0.0' 'components:' '  - name: a' '    tag: x' '    artifact: files')"
create_fails 'unknown key "teplates" in deploy' "$(t 'app: shop' 'version: 1.0.0' 'components:' '  - name: a' '    artifact: files' 'deploy:' '  teplates: []')"
create_fails 'unknown key "start" in hooks' "$(t 'app: shop' 'version: 1.0.0' 'components:' '  - name: a' '    artifact: files' 'deploy:' '  hooks:' '    start: x')"
log "template: missing paths"
create_fails 't.yaml:5: image path "nope" does not exist' "$(t 'app: shop' 'version: 1.0.0' 'components:' '  - name: a' '    image: oci:nope:1.0')"
create_fails 't.yaml:5: artifact path "missing/dir" does not exist' "$(t 'app: shop' 'version: 1.0.0' 'components:' '  - name: a' '    artifact: missing/dir')"
create_fails 'template "deploy/nope.tmpl" does not exist' "$(t 'app: shop' 'version: 1.0.0' 'components:' '  - name: a' '    artifact: files' 'deploy:' '  templates: [deploy/nope.tmpl]')"
log "template: bad values"
create_fails 'version "1.0" is not a semantic version' "$(t 'app: shop' 'version: "1.0"' 'components:' '  - name: a' '    artifact: files')"
create_fails 'component name "a" used twice' "$(t 'app: shop' 'version: 1.0.0' 'components:' '  - name: a' '    artifact: files' '  - name: a' '    artifact: files')"
create_fails 'needs exactly one of "image" or "artifact"' "$(t 'app: shop' 'version: 1.0.0' 'components:' '  - name: a' '    artifact: files' '    image: oci:img:web')"
create_fails 'expected oci:PATH:TAG or docker-archive:PATH' "$(t 'app: shop' 'version: 1.0.0' 'components:' '  - name: a' '    image: docker://x/y')"
create_fails 'no manifest tagged "nosuchtag"' "$(t 'app: shop' 'version: 1.0.0' 'components:' '  - name: a' '    image: oci:img:nosuchtag')"
create_fails 'must be a path inside the template' "$(t 'app: shop' 'version: 1.0.0' 'components:' '  - name: a' '    artifact: files' 'deploy:' '  templates: [../../etc/passwd]')"
create_fails 't.yaml:[0-9]+: ' "$(t 'app: shop' 'version: [1.0.0' 'components: {')"

log "OCI index pointing at a missing blob"
cp -r "$S/img" "$S/img-broken"
layer=$(skopeo inspect oci:"$S/img":web | jq -r '.Layers[-1]' | cut -d: -f2)
rm "$S/img-broken/blobs/sha256/$layer"
create_fails "points at missing blob sha256:$layer \(.*img-broken/blobs/sha256/$layer\)" "$(t 'app: shop' 'version: 1.0.0' 'components:' '  - name: a' '    image: oci:img-broken:web')"
log "OCI blob whose bytes do not match its digest"
rm -rf "$S/img-broken"; cp -r "$S/img" "$S/img-broken"
flip_byte "$S/img-broken/blobs/sha256/$layer" 100
create_fails "img-broken/blobs/sha256/$layer: blob sha256:$layer does not match its digest" "$(t 'app: shop' 'version: 1.0.0' 'components:' '  - name: a' '    image: oci:img-broken:web')"

log "docker-archive with ../ member names"
mkdir -p "$WORK/evil" && (cd "$WORK/evil" && tar xf "$S/db.tar" && tar cf "$S/evil.tar" --transform 's,^manifest.json,../manifest.json,' *)
create_fails 'evil.tar: member "\.\./manifest.json" \(header at offset [0-9]+\) has an absolute or .\.\.. path' "$(t 'app: shop' 'version: 1.0.0' 'components:' '  - name: a' '    image: docker-archive:evil.tar')"
log "docker-archive whose manifest.json names ../ paths"
(cd "$WORK/evil" && jq -c '.[0].Layers[0] = "../../etc/passwd"' manifest.json > m2 && mv m2 manifest.json && tar cf "$S/evil2.tar" *)
create_fails 'evil2.tar: manifest.json names "\.\./\.\./etc/passwd", a path that leaves the archive' "$(t 'app: shop' 'version: 1.0.0' 'components:' '  - name: a' '    image: docker-archive:evil2.tar')"
log "docker-archive that is not a tar"
head -c 5000 /dev/urandom > "$S/junk.tar"
create_fails 'junk.tar: tar header at offset 0: bad header checksum' "$(t 'app: shop' 'version: 1.0.0' 'components:' '  - name: a' '    image: docker-archive:junk.tar')"

log "flags"
expect_error 'size "12Q"' G bundle create --template "$S/app.yaml" --key "$K/vendor.key" --out "$WORK/out" --volume-size 12Q
expect_error 'not a PEM private key' G bundle create --template "$S/app.yaml" --key "$K/vendor.pub" --out "$WORK/out"
mkdir -p "$WORK/nonempty" && touch "$WORK/nonempty/keep"
expect_error 'nonempty: folder is not empty' G bundle create --template "$S/app.yaml" --key "$K/vendor.key" --out "$WORK/nonempty"
[ -e "$WORK/nonempty/keep" ] || fail "create removed a file it did not write"
expect_error 'vendor.key: already exists, not overwriting a key' G keys generate --out "$K" --name vendor
expect_error 'no such bundle folder' G bundle verify "$WORK/nothing" --trust "$K/vendor.pub"
expect_error 'not a PEM public key' G bundle verify "$WORK/nothing" --trust "$K/vendor.key"
"$GAPSYNC" --help | grep -q 'bundle' || fail "--help"
for c in "keys generate" "bundle create" "bundle verify" "bundle inspect" ingest "store ls" "store fsck" "store gc" "store export"; do
  $GAPSYNC $c --help >/dev/null || fail "$c --help"
done
