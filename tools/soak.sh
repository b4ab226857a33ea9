#!/usr/bin/env bash
# Soak and chaos run of a Weft mesh on loopback (tools/soak.py does the work):
#   tools/soak.sh                 10 minutes, a fault every 30 s (the documented run)
#   tools/soak.sh --short         60 s, a fault every 12 s (the test command's stage)
#   tools/soak.sh --minutes N [--out DIR] [soak.py flags...]
# Builds the normal tree first. Results: DIR/summary.json, samples.csv, failures.csv and every
# process's log; exits 1 when a goal is missed. See docs/reliability.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1
args=(--seconds 600 --fault-every 30)
out=""
extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --short) args=(--seconds 60 --fault-every 12 --down 1); shift ;;
    --minutes) args=(--seconds $(($2 * 60)) --fault-every 30); shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) extra+=("$1"); shift ;;
  esac
done
[ -n "$out" ] || out=$(mktemp -d /tmp/weft-soak.XXXXXX)
tools/build.sh build >/dev/null
# Debian's Python: the first python3 on PATH may be another one.
py=/usr/bin/python3
[ -x "$py" ] || py=python3
exec "$py" tools/soak.py --bin build/bin --out "$out" "${args[@]}" "${extra[@]}"
