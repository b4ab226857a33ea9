#!/usr/bin/env bash
# Installs the Debian 12 packages Weft needs to build, test and run its demo, skipping what is
# already present. Safe to run repeatedly.
set -euo pipefail
PKGS=(
  build-essential cmake ninja-build ccache pkg-config git curl jq
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libssl-dev catch2 libyaml-cpp-dev libboost-dev libboost-system-dev libnghttp2-dev libre2-dev
  libsqlite3-dev libbenchmark-dev clang-format
  python3-grpcio python3-protobuf prometheus wrk
  clang-14 libclang-rt-14-dev nodejs
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
