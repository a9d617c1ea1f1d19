#!/usr/bin/env bash
# Fails on an #include that points up the module order (docs/ARCHITECTURE.md, "Modules"):
#   proto < store < transport < agent/base < agent/bundle < {agent/pack, agent/catalog}
#         < {agent/ingest, agent/export} < agent/node < agent/cli < agent/main.cc
# A file may include its own module and any module of a lower rank; modules of the same rank
# (siblings) may not include each other. Only project headers ("dir/file.h") are checked.
set -euo pipefail
cd "$(dirname "$0")/.."

rank_of() {  # module of a path -> rank; empty when the path is in no module
  case "$1" in
    proto/*) echo 0 ;;
    store/*) echo 1 ;;
    transport/*) echo 2 ;;
    agent/base/*) echo 3 ;;
    agent/bundle/*) echo 4 ;;
    agent/pack/* | agent/catalog/*) echo 5 ;;
    agent/ingest/* | agent/export/*) echo 6 ;;
    agent/node/*) echo 7 ;;
    agent/cli/*) echo 8 ;;
    agent/*) echo 9 ;;
  esac
}
module_of() {  # the module folder of a path (agent/x/ for agent's libraries)
  case "$1" in
    agent/*/*) echo "${1%%/*}/$(echo "$1" | cut -d/ -f2)" ;;
    *) echo "${1%%/*}" ;;
  esac
}

bad=0 checked=0
while IFS= read -r file; do
  from=$(rank_of "$file")
  [ -n "$from" ] || continue
  while IFS= read -r line; do
    inc=$(echo "$line" | sed -E 's/^[0-9]+:#include "([^"]+)".*/\1/')
    to=$(rank_of "$inc")
    [ -n "$to" ] || continue
    checked=$((checked + 1))
    if [ "$(module_of "$inc")" = "$(module_of "$file")" ]; then continue; fi
    if [ "$to" -ge "$from" ]; then
      echo "check_includes: $file:${line%%:*}: includes $inc, which is not below $(module_of "$file") in the module order" >&2
      bad=1
    fi
  done < <(grep -nE '^#include "[a-z_]+/' "$file" || true)
done < <(git ls-files -co --exclude-standard -- 'proto/*.h' 'proto/*.cc' 'store/*' 'transport/*' 'agent/*' | grep -E '\.(h|cc)$')

[ "$bad" = 0 ] || exit 1
echo "check_includes: $checked project includes, none points up the module order"
