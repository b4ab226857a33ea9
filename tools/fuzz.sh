#!/usr/bin/env bash
# Builds the libFuzzer targets (build-fuzz, clang-14, ASan + UBSan) and runs them.
#   tools/fuzz.sh list                          the targets
#   tools/fuzz.sh regress [TARGET...]           each target over its corpus once (the test stage)
#   tools/fuzz.sh TARGET|all --minutes N [--runs R] [--jobs J]
#                                               campaigns (each stops after N minutes or R
#                                               executions): new inputs go to build-fuzz/corpus/,
#                                               crashes to build-fuzz/artifacts/TARGET/, a log
#                                               per target to build-fuzz/logs/
# A campaign runs at nice 19 (the machine is shared) with the seed corpus fuzz/corpus/TARGET
# read-only; `tools/fuzz.sh merge TARGET` folds what it found that adds coverage into the seed
# corpus. See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1
dir=build-fuzz
bin=$dir/bin

targets() {
  sed -n 's/^weft_fuzz_target(\([a-z0-9_]*\) .*/\1/p' fuzz/CMakeLists.txt
  sed -n 's/^    "\([a-z]*\);k.*/xds_\1_fuzz/p' fuzz/CMakeLists.txt
}

build() {
  if [ ! -f "$dir/build.ninja" ]; then
    CC=clang-14 CXX=clang++-14 cmake -S . -B "$dir" -G Ninja -DWEFT_FUZZ=ON \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  cmake --build "$dir" --target fuzz_all
}

# Options every run shares: sanitizer failures abort; a slow input is a finding.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
common_flags() {
  local t=$1
  local flags=(-timeout=10 -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1)
  for d in fuzz/dict/*.dict; do
    case $t in
      http1_*|admin_*) [ "$(basename "$d")" = http.dict ] && flags+=(-dict="$d") ;;
      *yaml*) [ "$(basename "$d")" = yaml.dict ] && flags+=(-dict="$d") ;;
    esac
  done
  echo "${flags[@]}"
}

regress() {
  local status=0
  local list=("$@")
  [ ${#list[@]} -eq 0 ] && mapfile -t list < <(targets)
  for t in "${list[@]}"; do
    local corpus=fuzz/corpus/$t
    [ -d "$corpus" ] || { echo "fuzz: $t has no corpus ($corpus)"; status=1; continue; }
    local n
    n=$(find "$corpus" -type f | wc -l)
    local start=$SECONDS
    # -runs=0 executes every input once: a fixed crash that comes back fails here.
    if "$bin/$t" $(common_flags "$t") -runs=0 "$corpus" >"$dir/regress-$t.log" 2>&1; then
      echo "fuzz regress: $t: $n inputs ok ($((SECONDS - start))s)"
    else
      echo "fuzz regress: $t: FAILED (log: $dir/regress-$t.log)"
      tail -30 "$dir/regress-$t.log"
      status=1
    fi
  done
  return $status
}

campaign() {
  local t=$1 minutes=$2 runs=$3
  mkdir -p "$dir/corpus/$t" "$dir/artifacts/$t" "$dir/logs"
  local log=$dir/logs/$t.log
  echo "fuzz: $t for $minutes min (log $log)"
  # New inputs land in the first (writable) corpus dir; the seeds are read-only input.
  nice -n 19 "$bin/$t" $(common_flags "$t") -max_total_time=$((minutes * 60)) -runs="$runs" \
    -artifact_prefix="$dir/artifacts/$t/" "$dir/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1 || {
    echo "fuzz: $t stopped with a finding: $(ls "$dir/artifacts/$t" | head -3)"
    grep -m1 -E 'ERROR|check failed|SUMMARY' "$log" || true
    return 1
  }
  echo "fuzz: $t: $(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}') executions," \
    "$(grep -E '^#[0-9]+.*(DONE|pulse)' "$log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+')," \
    "no crash, leak or timeout"
}

merge() {
  local t=$1
  [ -d "$dir/corpus/$t" ] || { echo "fuzz: nothing found for $t yet"; return 0; }
  # Keeps only inputs that add coverage to the seeds.
  "$bin/$t" $(common_flags "$t") -merge=1 "fuzz/corpus/$t" "$dir/corpus/$t" 2>&1 | tail -1
}

cmd=${1:-list}
shift || true
case $cmd in
  list) targets ;;
  build) build ;;
  regress) build && regress "$@" ;;
  merge) for t in "$@"; do merge "$t"; done ;;
  *)
    minutes=10 jobs=2 runs=-1
    while [ $# -gt 0 ]; do
      case $1 in
        --minutes) minutes=$2; shift 2 ;;
        --jobs) jobs=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        *) echo "usage: tools/fuzz.sh list|build|regress|merge|TARGET|all [--minutes N] [--jobs J]"; exit 2 ;;
      esac
    done
    build
    if [ "$cmd" = all ]; then mapfile -t list < <(targets); else list=("$cmd"); fi
    status=0
    # J campaigns at a time.
    running=0
    for t in "${list[@]}"; do
      campaign "$t" "$minutes" "$runs" &
      running=$((running + 1))
      if [ $running -ge "$jobs" ]; then wait -n || status=1; running=$((running - 1)); fi
    done
    wait || status=1
    exit $status
    ;;
esac
