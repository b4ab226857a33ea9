#!/usr/bin/env bash
# Starts the demo mesh on loopback from an existing build tree (default: build): weft-cp serving
# the example resources in a scratch copy of deploy/examples/raw, and one weft-proxy sidecar
# connected to it. Ctrl-C stops them.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${1:-build}
work=$(mktemp -d /tmp/weft-demo.XXXXXX)
cp -r deploy/examples/raw "$work/config"
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
pids=()
trap cleanup EXIT INT TERM

"$B/bin/weft-cp" --config-dir "$work/config" --xds-address 127.0.0.1:0 \
  --admin-address 127.0.0.1:0 --api-address 127.0.0.1:0 --ready-file "$work/cp.json" 2>"$work/weft-cp.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/cp.json" ] && break; sleep 0.1; done
[ -s "$work/cp.json" ] || { cat "$work/weft-cp.log"; echo "weft-cp did not start"; exit 1; }
xds=$(sed -E 's/.*"xds_port": ([0-9]+).*/\1/' "$work/cp.json")
admin=$(sed -E 's/.*"admin_port": ([0-9]+).*/\1/' "$work/cp.json")
api=$(sed -E 's/.*"api_port": ([0-9]+).*/\1/' "$work/cp.json")

cat > "$work/sidecar.yaml" <<YAML
node: { id: demo-sidecar-1, cluster: echo, locality: { zone: z1 } }
xds: { servers: ["127.0.0.1:$xds"], mode: DELTA }
admin: { address: "127.0.0.1:0" }
YAML
"$B/bin/weft-proxy" --bootstrap "$work/sidecar.yaml" --ready-file "$work/proxy.json" \
  2>"$work/weft-proxy.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/proxy.json" ] && break; sleep 0.1; done
proxy_admin=$(sed -E 's/.*"admin_port": ([0-9]+).*/\1/' "$work/proxy.json")

cat <<MSG

Weft demo is up (scratch dir: $work)
  weft-cp xDS (ADS, SotW + Delta):  127.0.0.1:$xds
  weft-cp admin:                     http://127.0.0.1:$admin
  weft-cp config API (weftctl):      127.0.0.1:$api
  weft-proxy sidecar admin:          http://127.0.0.1:$proxy_admin   (node demo-sidecar-1)

Try:
  curl -s 127.0.0.1:$admin/debug/snapshots | jq .      # what is being served, with versions
  curl -s 127.0.0.1:$admin/debug/proxies | jq .        # who is connected, what they ACKed/NACKed
  curl -s 127.0.0.1:$proxy_admin/config_dump | jq .    # what the sidecar accepted (EDS included)
  curl -s 127.0.0.1:$admin/metrics                     # Prometheus metrics
  $B/bin/weftctl --server 127.0.0.1:$api apply -f deploy/examples/mesh --wait   # Weft schema
  $B/bin/weftctl --server 127.0.0.1:$api status        # proxies, ACKs, NACKs
  \$EDITOR $work/config/echo-service.yaml               # change an endpoint; it is pushed live
  # a proxyless gRPC client: GRPC_XDS_BOOTSTRAP_CONFIG pointing at 127.0.0.1:$xds, target xds:///echo

Ctrl-C to stop.
MSG
wait "${pids[0]}"
