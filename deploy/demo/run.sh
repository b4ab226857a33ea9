#!/usr/bin/env bash
# Starts the demo mesh from an existing build tree (default: build).
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${1:-build}
"$B/bin/weft-cp" --version
"$B/bin/weft-proxy" --version
"$B/bin/weftctl" version
