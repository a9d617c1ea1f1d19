#!/usr/bin/env bash
# gapsync demo: the whole journey on one machine, on sample data it makes itself.
#   vendor side:  keys -> real OCI images (umoci, busybox-static rootfs) + a docker-archive
#                 (skopeo) + plain artifacts -> app.yaml -> signed bundle split into volumes
#   media station: bundle verify
#   inside:       ingest into a node's store -> store ls / fsck -> export -> skopeo inspect
#   cluster:      3 agents in network namespaces (mutual TLS, cluster CA); the bundle ingested on
#                 node-1 spreads peer-to-peer to node-2 and node-3; cluster status; fsck on each
# Idempotent: everything lives under $DEMO_DIR (default /var/tmp/gapsync-demo), made anew.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DEMO_DIR=${DEMO_DIR:-/var/tmp/gapsync-demo}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "install build dependencies and build gapsync"
bash deploy/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" | tail -1
G="$ROOT/build/agent/gapsync"

rm -rf "$DEMO_DIR"; mkdir -p "$DEMO_DIR"; cd "$DEMO_DIR"

step "vendor: make real OCI images with umoci from a busybox-static rootfs"
umoci init --layout images
umoci new --image images:empty
umoci unpack --image images:empty rootfs-base >/dev/null
mkdir -p rootfs-base/rootfs/bin && cp /bin/busybox rootfs-base/rootfs/bin/busybox
umoci repack --image images:base rootfs-base && rm -rf rootfs-base
for svc in web api; do
  umoci unpack --image images:base "rootfs-$svc" >/dev/null
  printf '#!/bin/busybox sh\necho %s service\n' "$svc" > "rootfs-$svc/rootfs/start.sh"
  head -c 4194304 /dev/urandom > "rootfs-$svc/rootfs/$svc.dat"
  umoci repack --image "images:$svc-1.0" "rootfs-$svc" && rm -rf "rootfs-$svc"
  umoci config --image "images:$svc-1.0" --config.cmd /start.sh
done
echo "images: web-1.0 and api-1.0 share the busybox base layer"
step "vendor: a docker-archive (docker save format) made by skopeo"
run skopeo copy -q oci:images:api-1.0 docker-archive:worker.tar:worker:1.0
mkdir -p config deploy
seq 1 100000 | sed 's/^/setting_/' > config/settings.conf
cat > deploy/compose.tmpl <<'T'
services:
  web: {image: "{{ images.web }}"}
  api: {image: "{{ images.api }}"}
T
cat > app.yaml <<'Y'
app: shop
version: 1.0.0
description: demo shop
components:
  - name: web
    image: oci:images:web-1.0
  - name: api
    image: oci:images:api-1.0
  - name: worker
    image: docker-archive:worker.tar
  - name: config
    artifact: config
deploy:
  templates: [deploy/compose.tmpl]
  hooks:
    activate: sh activate.sh
    health: sh health.sh
    deactivate: sh deactivate.sh
Y
cat app.yaml

step "vendor: signing key and bundle (volumes of at most 4M, as if the media were tiny)"
run "$G" keys generate --out keys --name vendor
run "$G" bundle create --template app.yaml --key keys/vendor.key --out usb/shop-1.0.0 --volume-size 4M
ls -l usb/shop-1.0.0

step "media station: inspect and verify (no store)"
run "$G" bundle inspect usb/shop-1.0.0
run "$G" bundle verify usb/shop-1.0.0 --trust keys/vendor.pub

step "media station: a flipped byte is named, with file, offsets and blob"
cp -r usb/shop-1.0.0 usb/damaged
printf 'X' | dd of=usb/damaged/volume-0002.gsv bs=1 seek=1000 conv=notrunc 2>/dev/null
"$G" -q bundle verify usb/damaged --trust keys/vendor.pub || echo "(verify refused the damaged copy, exit $?)"

step "inside: ingest into the node's store; a rerun is a no-op"
run "$G" ingest usb/shop-1.0.0 --store node1/store --trust keys/vendor.pub
run "$G" ingest usb/shop-1.0.0 --store node1/store --trust keys/vendor.pub
run "$G" store ls --store node1/store
run "$G" store fsck --store node1/store

step "inside: export images as OCI layouts and read them with skopeo"
for c in web api worker; do
  run "$G" store export --store node1/store --release shop@1.0.0 --component $c --oci "export/$c"
done
for c in web api; do
  src=$(skopeo inspect "oci:images:$c-1.0" | jq -r .Digest)
  out=$(skopeo inspect "oci:export/$c:1.0.0" | jq -r .Digest)
  echo "$c: source manifest $src, exported $out $([ "$src" = "$out" ] && echo '(identical)' || echo '(DIFFERENT)')"
  [ "$src" = "$out" ]
done
src=$(skopeo inspect --raw docker-archive:worker.tar | jq -r .config.digest)
out=$(skopeo inspect --raw oci:export/worker:1.0.0 | jq -r .config.digest)
echo "worker: docker-archive config $src, exported $out $([ "$src" = "$out" ] && echo '(identical)' || echo '(DIFFERENT)')"
[ "$src" = "$out" ]
run skopeo inspect oci:export/web:1.0.0

step "cluster: a CA and a certificate per node; 3 network namespaces on a bridge (40 Mbit/s links)"
run "$G" ca init --out ca --name demo
for i in 1 2 3; do "$G" -q ca issue --ca ca --node node-$i --out tls/node-$i; done
source "$ROOT/tests/cluster/netns.sh"
cluster_up 3 40mbit
PIDS=()
stop_agents() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done; }
for i in 1 2 3; do
  mkdir -p "cluster/node-$i"
  {
    echo "node: node-$i"
    echo "data_dir: $DEMO_DIR/cluster/node-$i/data"
    echo "api_socket: $DEMO_DIR/cluster/node-$i/agent.sock"
    echo "trust: [$DEMO_DIR/keys/vendor.pub]"
    echo "listen: ${CLUSTER_IP[i]}:7400"
    echo "bittorrent_listen: ${CLUSTER_IP[i]}:7401"
    echo "tls: {ca: $DEMO_DIR/tls/node-$i/ca.crt, cert: $DEMO_DIR/tls/node-$i/node-$i.crt, key: $DEMO_DIR/tls/node-$i/node-$i.key}"
    [ "$i" -gt 1 ] && echo "peers: [${CLUSTER_IP[1]}:7400]"
  } > "cluster/node-$i/agent.yaml"
  on "$i" "$G" agent run --config "cluster/node-$i/agent.yaml" > "cluster/node-$i/agent.log" 2>&1 &
  PIDS+=($!)
done
cat cluster/node-2/agent.yaml
status() { "$G" cluster status --agent "cluster/node-$1/agent.sock" "${@:2}"; }
all_members() { [ "$(status 1 --json 2>/dev/null | jq '[.nodes[] | select(.reachable)] | length')" = 3 ]; }
wait_for 60 all_members || { stop_agents; echo "the agents did not find each other"; exit 1; }

step "cluster: ingest on node-1 through its agent; node-2 and node-3 fetch it from the cluster"
run "$G" ingest usb/shop-1.0.0 --agent cluster/node-1/agent.sock
everywhere() { [ "$(status 1 --json | jq '[.nodes[] | .releases[] | select(.release == "shop@1.0.0" and .complete)] | length')" = 3 ]; }
wait_for 120 everywhere || { stop_agents; cat cluster/node-*/agent.log; exit 1; }
run "$G" cluster status --agent cluster/node-1/agent.sock
grep -h "announced by\|complete: every blob" cluster/node-2/agent.log cluster/node-3/agent.log
stop_agents
cluster_down
for i in 2 3; do run "$G" store fsck --store "cluster/node-$i/data/store"; done

step "done: everything is in $DEMO_DIR"
