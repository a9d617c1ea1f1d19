#!/usr/bin/env bash
# Runs the fuzz targets (README.md here) with libFuzzer: ASan + UBSan, clang 14, build-fuzz/.
#   tests/fuzz/run.sh [--seconds N | --cpu-minutes M] [--jobs J] [--merge] [TARGET...]
#     --seconds N      each target N seconds of wall time (default 30: what .ci/run does)
#     --cpu-minutes M  each target until its process has used M minutes of CPU (the soak before an
#                      issue that adds parsers is resolved; fuzzers may run niced beside other work)
#     --jobs J         targets run J at a time (default: the number of cores)
#     --merge          afterwards, merge what each target found into tests/fuzz/corpus/TARGET
#                      (minimised: only inputs that add coverage)
#     TARGET...        default: every target (tests/fuzz/CMakeLists.txt)
# Each target starts from tests/fuzz/corpus/TARGET and keeps its growing corpus in
# build-fuzz/fuzz/TARGET/corpus, so later runs go on where earlier ones stopped. A crash (or a
# property a target checks failing) leaves the input in build-fuzz/fuzz/TARGET/crashes, is printed
# with the command that reproduces it, and makes the run exit 1. Every run appends one line per
# target to build-fuzz/fuzz/ledger.tsv (date, target, CPU seconds, executions, crashes): the
# numbers docs/fuzzing.md reports.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
seconds=30 cpu_minutes="" jobs=$(nproc) merge=0 targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --cpu-minutes) cpu_minutes=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --merge) merge=1; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
all=$(sed -n 's/^gapsync_fuzz_target(\([a-z_]*\).*/\1/p' tests/fuzz/CMakeLists.txt)
[ ${#targets[@]} -gt 0 ] || read -r -a targets <<< "$(echo $all)"
for t in "${targets[@]}"; do
  grep -qx "$t" <<< "$all" || { echo "run.sh: no fuzz target \"$t\" (targets: $(echo $all))" >&2; exit 2; }
done

bash deploy/install-deps.sh >/dev/null
BUILD=$ROOT/build-fuzz
CC=clang-14 CXX=clang++-14 cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGAPSYNC_FUZZ=ON >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target fuzz_all
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
export LSAN_OPTIONS=suppressions=$ROOT/tests/lsan.supp
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

cpu_seconds_of() {  # PID: user + system CPU seconds so far
  awk -v hz="$(getconf CLK_TCK)" '{ print int(($14 + $15) / hz) }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# One target: its numbers as a ledger line on stdout, its output in build-fuzz/fuzz/TARGET/last.log.
run_one() {  # TARGET
  local t=$1 dir=$BUILD/fuzz/$1
  mkdir -p "$dir/corpus" "$dir/crashes"
  local before; before=$(find "$dir/crashes" -type f -regex '.*/\(crash\|leak\|oom\|timeout\)-.*' | wc -l)
  local args=("$dir/corpus" "$ROOT/tests/fuzz/corpus/$t" -artifact_prefix="$dir/crashes/" -print_final_stats=1
              -rss_limit_mb=2560 -timeout=60 -max_len=65536)
  [ -n "$cpu_minutes" ] || args+=(-max_total_time="$seconds")
  # GNU time counts the fuzzer's CPU (user + system) as the kernel does.
  /usr/bin/time -f '%U %S' -o "$dir/cpu" "$BUILD/tests/fuzz/fuzz_$t" "${args[@]}" > "$dir/last.log" 2>&1 &
  local timer=$!
  if [ -n "$cpu_minutes" ]; then
    local pid=""
    while kill -0 "$timer" 2>/dev/null; do
      [ -n "$pid" ] || pid=$(pgrep -P "$timer" || true)
      if [ -n "$pid" ] && [ "$(cpu_seconds_of "$pid")" -ge $((cpu_minutes * 60)) ]; then
        kill -INT "$pid"  # libFuzzer prints its final stats and exits
        break
      fi
      sleep 5
    done
  fi
  wait "$timer" || true
  local cpu execs crashes
  # (its last line: GNU time writes "Command exited with non-zero status N" first when it was not 0)
  cpu=$(tail -1 "$dir/cpu" 2>/dev/null | awk '{ printf "%d", $1 + $2 }')
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/last.log" | tail -1)
  # A timeout is confirmed by running its input alone (the soak runs niced beside other work, so a
  # slow moment of the machine can stop an input that takes milliseconds); one that then finishes
  # within 5 s is set aside in load-timeouts/. slow-unit-* files are reports, not failures.
  local f
  for f in "$dir/crashes"/timeout-*; do
    [ -f "$f" ] || continue
    if timeout 5 "$BUILD/tests/fuzz/fuzz_$t" "$f" >/dev/null 2>&1; then
      mkdir -p "$dir/load-timeouts"
      mv "$f" "$dir/load-timeouts/"
    fi
  done
  crashes=$(( $(find "$dir/crashes" -type f -regex '.*/\(crash\|leak\|oom\|timeout\)-.*' | wc -l) - before ))
  local line; line=$(printf '%s\t%s\t%s\t%s\t%s' "$(date -u +%FT%TZ)" "$t" "$cpu" "${execs:-0}" "$crashes")
  echo "$line"
  flock "$ledger" -c "echo '$line' >> '$ledger'"  # at once: a run cut short keeps what finished
}

mkdir -p "$BUILD/fuzz"
ledger=$BUILD/fuzz/ledger.tsv
touch "$ledger"
this_run=$(mktemp)
export -f run_one cpu_seconds_of
export BUILD ROOT seconds cpu_minutes ledger
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one {}' >> "$this_run"

status=0
printf '%-16s %12s %14s %8s\n' target cpu-seconds executions crashes
while IFS=$'\t' read -r _ t cpu execs crashes; do
  printf '%-16s %12s %14s %8s\n' "$t" "$cpu" "$execs" "$crashes"
  if [ "$crashes" != 0 ] || ! grep -q "^stat::number_of_executed_units" "$BUILD/fuzz/$t/last.log"; then
    status=1
    echo "  $t: crash or failure; see $BUILD/fuzz/$t/last.log; inputs in $BUILD/fuzz/$t/crashes/" >&2
    grep -m3 -E 'ERROR|property failed|SUMMARY' "$BUILD/fuzz/$t/last.log" | sed 's/^/    /' >&2 || true
    for c in "$BUILD/fuzz/$t/crashes"/{crash,leak,oom,timeout}-*; do
      [ -f "$c" ] && echo "    reproduce: $BUILD/tests/fuzz/fuzz_$t $c" >&2
    done
  fi
done < <(sort -k2 "$this_run")
rm -f "$this_run"

if [ "$merge" = 1 ]; then
  for t in "${targets[@]}"; do
    "$BUILD/tests/fuzz/fuzz_$t" -merge=1 "$ROOT/tests/fuzz/corpus/$t" "$BUILD/fuzz/$t/corpus" > "$BUILD/fuzz/$t/merge.log" 2>&1
    echo "merged $t: $(sed -n 's/.*MERGE-OUTER: \([0-9]*\) new files.*/\1/p' "$BUILD/fuzz/$t/merge.log") new inputs in tests/fuzz/corpus/$t"
  done
fi
exit $status
