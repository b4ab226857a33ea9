#!/usr/bin/env bash
# Starts the demo mesh on loopback from an existing build tree (default: build):
#   - three upstream HTTP servers (echo-1..3), the instances of Service "echo";
#   - weft-cp serving deploy/examples/demo (copied to a scratch dir you can edit live);
#   - two weft-proxy sidecars of a "frontend" service. Both get the outbound listener on port
#     15001; they share this network namespace, so each binds its own loopback address
#     (127.0.0.1 and 127.0.0.2, the bootstrap's bind_address).
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${1:-build}
work=$(mktemp -d /tmp/weft-demo.XXXXXX)
mkdir -p "$work/config"
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
pids=()
trap cleanup EXIT INT TERM

# Waits for a ready file and prints the value of one numeric field in it.
ready_port() {
  local file=$1 field=$2 log=$3
  for _ in $(seq 100); do [ -s "$file" ] && break; sleep 0.1; done
  [ -s "$file" ] || { cat "$log" >&2; echo "demo: $file never appeared" >&2; exit 1; }
  sed -E "s/.*\"$field\": ?([0-9]+).*/\1/" "$file"
}

ports=()
for i in 1 2 3; do
  "$B/bin/weft-test-upstream" --name "echo-$i" --ready-file "$work/echo-$i.json" \
    >"$work/echo-$i.log" 2>&1 &
  pids+=($!)
  ports+=("$(ready_port "$work/echo-$i.json" port "$work/echo-$i.log")")
done

sed -e "s/@PORT1@/${ports[0]}/" -e "s/@PORT2@/${ports[1]}/" -e "s/@PORT3@/${ports[2]}/" \
  deploy/examples/demo/echo.yaml >"$work/config/echo.yaml"

"$B/bin/weft-cp" --config-dir "$work/config" --xds-address 127.0.0.1:0 \
  --admin-address 127.0.0.1:0 --api-address 127.0.0.1:0 --ready-file "$work/cp.json" \
  2>"$work/weft-cp.log" &
pids+=($!)
xds=$(ready_port "$work/cp.json" xds_port "$work/weft-cp.log")
admin=$(ready_port "$work/cp.json" admin_port "$work/weft-cp.log")
api=$(ready_port "$work/cp.json" api_port "$work/weft-cp.log")

proxy_admin=()
for i in 1 2; do
  cat >"$work/frontend-$i.yaml" <<YAML
node: { id: frontend-$i, cluster: frontend, locality: { zone: z1 } }
xds: { servers: ["127.0.0.1:$xds"], mode: DELTA }
admin: { address: "127.0.0.1:0" }
concurrency: 1
bind_address: 127.0.0.$i
access_log_path: $work/frontend-$i.access.log
YAML
  "$B/bin/weft-proxy" --bootstrap "$work/frontend-$i.yaml" --ready-file "$work/frontend-$i.json" \
    2>"$work/frontend-$i.log" &
  pids+=($!)
  proxy_admin+=("$(ready_port "$work/frontend-$i.json" admin_port "$work/frontend-$i.log")")
done
for i in 1 2; do
  for _ in $(seq 100); do
    curl -sf "127.0.0.1:${proxy_admin[$((i - 1))]}/ready" >/dev/null && break
    sleep 0.1
  done
done

echo
echo "Six requests through sidecar frontend-1 (127.0.0.1:15001), balanced round robin:"
for _ in $(seq 6); do curl -s -H 'Host: echo' 127.0.0.1:15001/; done

cat <<MSG

Weft demo is up (scratch dir: $work)
  upstreams echo-1..3:               127.0.0.1:${ports[0]} ${ports[1]} ${ports[2]}
  weft-cp xDS (ADS, SotW + Delta):   127.0.0.1:$xds
  weft-cp admin:                     http://127.0.0.1:$admin
  weft-cp config API (weftctl):      127.0.0.1:$api
  sidecar frontend-1:                127.0.0.1:15001  admin http://127.0.0.1:${proxy_admin[0]}
  sidecar frontend-2:                127.0.0.2:15001  admin http://127.0.0.1:${proxy_admin[1]}

Try:
  for i in \$(seq 6); do curl -s -H 'Host: echo' 127.0.0.2:15001/; done   # the other sidecar
  curl -s 127.0.0.1:${proxy_admin[0]}/clusters                  # hosts, weights, requests per host
  curl -s 127.0.0.1:${proxy_admin[0]}/stats/prometheus | grep rq_2xx
  curl -s -X POST 127.0.0.1:${proxy_admin[0]}/healthcheck/fail   # drain (state changes: POST only)
  tail -n 2 $work/frontend-1.access.log                 # JSON access log
  \$EDITOR $work/config/echo.yaml    # drop an endpoint or change a weight: pushed live
  curl -s 127.0.0.1:$admin/debug/proxies | jq .        # who is connected, what they ACKed/NACKed
  $B/bin/weftctl --server 127.0.0.1:$api status        # the same, from the CLI
  $B/bin/weftctl --server 127.0.0.1:$api apply -f deploy/examples/mesh --wait   # more services

Ctrl-C to stop.
MSG
wait "${pids[0]}"
