#!/bin/sh
# Verify proto/ (our Envoy xDS subset) against the upstream protos shipped in
# the @grpc/grpc-js-xds npm package. Exit 77 (ctest "skipped") if the package
# cannot be fetched, e.g. when offline.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
PROTO_DIR=${PROTO_DIR:-"$HERE/../proto"}
PKG=${GRPC_JS_XDS_PKG:-@grpc/grpc-js-xds@1.14.1}
PROTOC=${PROTOC:-protoc}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/check-proto-subset.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM

if ! command -v npm >/dev/null 2>&1; then
  echo "check-proto-subset: npm not found; skipping" >&2
  exit 77
fi
if ! (cd "$TMP" && npm pack --silent "$PKG" >/dev/null 2>"$TMP/npm.log"); then
  echo "check-proto-subset: 'npm pack $PKG' failed; skipping" >&2
  cat "$TMP/npm.log" >&2 || true
  exit 77
fi
tar -xzf "$TMP"/*.tgz -C "$TMP"
DEPS="$TMP/package/deps"

# The bundled validate.proto predates StringRules.ignore_empty (26), which the
# Envoy protos reference; add it so protoc accepts them.
VALIDATE="$DEPS/protoc-gen-validate/validate/validate.proto"
if ! grep -q 'ignore_empty *= *26' "$VALIDATE"; then
  sed -i '/^message StringRules {/a\  optional bool ignore_empty = 26;' "$VALIDATE"
fi

exec /usr/bin/python3 "$HERE/check-proto-subset.py" "$DEPS" --proto-dir "$PROTO_DIR" --protoc "$PROTOC"
