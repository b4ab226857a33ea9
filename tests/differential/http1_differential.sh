#!/usr/bin/env bash
# Differential framing test: weft-proxy's HTTP/1 parser vs llhttp (Node.js) over every input of
# the HTTP/1 fuzz corpora and tests/differential/cases. Usage: http1_differential.sh HTTP1_FRAMES CORPUS_DIR
set -euo pipefail
frames=$1
corpus=$2
here=$(cd "$(dirname "$0")" && pwd)
command -v node >/dev/null || { echo "node not found: skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
for kind in request response; do
  flag=""
  [ "$kind" = response ] && flag=--responses
  files=("$corpus/http1_${kind}_fuzz"/*)
  # xargs keeps argument lists within limits for large corpora.
  printf '%s\0' "${files[@]}" | xargs -0 "$frames" $flag >"$tmp/weft-$kind.txt"
  printf '%s\0' "${files[@]}" | xargs -0 node --no-deprecation "$here/llhttp_frames.js" $flag \
    >"$tmp/llhttp-$kind.txt"
  echo "== $kind framing"
  node "$here/compare_frames.js" "$tmp/weft-$kind.txt" "$tmp/llhttp-$kind.txt" || status=1
done
exit $status
