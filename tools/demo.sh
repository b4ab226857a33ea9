#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, and starts the demo mesh on
# loopback. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1
tools/build.sh build
exec deploy/demo/run.sh build
