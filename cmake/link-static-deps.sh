#!/usr/bin/env bash
# Linker launcher (CMake's CXX_LINKER_LAUNCHER) for weft-proxy: links each system library the
# command names as /usr/lib/.../libX.so against its static archive libX.a when one is installed,
# plus a static libstdc++. See data-plane/CMakeLists.txt for why. Falls back to the shared
# library when there is no archive, so a missing -dev archive only costs memory, not the build.
set -euo pipefail
args=()
archives=()
for a in "$@"; do
  if [[ $a =~ ^(/usr/lib/.*/lib[^/]+)\.so(\.[0-9.]+)?$ ]] && [[ -f ${BASH_REMATCH[1]}.a ]]; then
    archives+=("${BASH_REMATCH[1]}.a")
  else
    args+=("$a")
  fi
done
# libprotobuf.so brings zlib as its own dependency; its archive needs it named.
if [[ " ${archives[*]} " == */libprotobuf.a\ * ]]; then
  zlib=$("${args[0]}" -print-file-name=libz.a)
  if [[ -f $zlib ]]; then archives+=("$zlib"); else args+=(-lz); fi
fi
# The archives reference each other (Abseil's pieces, protobuf → zlib) in no fixed order: one
# group lets the linker resolve them in as many passes as it needs.
exec "${args[@]}" -Wl,--start-group "${archives[@]}" -Wl,--end-group -static-libstdc++ -static-libgcc
