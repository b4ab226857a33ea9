#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test — the normal build
# (unit + e2e, incl. the differential HTTP/1 framing test), the fuzz targets over their corpora
# (WEFT_SKIP_FUZZ=1 skips them), a one-minute soak and chaos run (WEFT_SKIP_SOAK=1), then the
# ASan/UBSan build and the TSan build. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
# Let a fresh clone in another folder reuse objects compiled from an earlier one.
export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1
jobs=$(nproc)
start=$(date +%s)

echo "== build (RelWithDebInfo)"
tools/build.sh build
echo "== ctest (all)"
ctest --test-dir build --output-on-failure -j "$jobs"

if [ "${WEFT_SKIP_FUZZ:-0}" != 1 ]; then
  # Every libFuzzer target over its corpus, once: a crash fixed once stays fixed (seconds; the
  # clang build is served by ccache). Campaigns are tools/fuzz.sh TARGET --minutes N.
  echo "== fuzz targets over their corpora (regression)"
  tools/fuzz.sh regress
fi

if [ "${WEFT_SKIP_SOAK:-0}" != 1 ]; then
  # One minute of the soak and chaos run (docs/reliability.md): steady load, 10 config changes a
  # second, upstreams and weft-cp SIGKILLed and restarted. Retries can still pick the host that
  # just died (reported in docs/reliability.md), so up to 1 % of requests may fail here; every
  # fault must converge, and fds and RSS must not grow.
  echo "== soak (short)"
  tools/soak.sh --short --max-failed-fraction 0.01
fi

if [ "${WEFT_SKIP_SANITIZERS:-0}" != 1 ]; then
  echo "== build (ASan + UBSan)"
  tools/build.sh build-asan -DWEFT_ASAN=ON -DCMAKE_BUILD_TYPE=Debug
  echo "== ctest (ASan + UBSan)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j "$jobs"
  echo "== build (TSan)"
  tools/build.sh build-tsan -DWEFT_TSAN=ON -DCMAKE_BUILD_TYPE=Debug
  echo "== ctest (TSan: threaded parts)"
  # The proxy e2e tests run a TSan-built weft-proxy against the normal build's weft-cp (see
  # tests/support/process.cc); tools/tsan.supp covers Debian's uninstrumented libraries only.
  TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tools/tsan.supp" \
    WEFT_CP_BIN="$PWD/build/bin/weft-cp" \
    ctest --test-dir build-tsan --output-on-failure -j "$jobs" -L tsan
fi
echo "== all tests passed in $(( $(date +%s) - start ))s"
