#!/usr/bin/env bash
# weft-proxy memory (issue #6): RSS and anonymous memory idle, then with C clusters × E endpoints
# pushed by weft-cp, for each worker count; derives bytes per cluster and per host from the
# difference to idle. Raw Envoy resources in a scratch config dir; nothing else is touched.
#
#   bench/proxy_memory.sh [--bin-dir build/bin] [--workers "1 2"] [--sizes "100 1000"]
#                         [--endpoints 10]
#
# RSS counts every resident page, including code pages (the binary, libc) that all sidecars on a
# node share; "anon" (Anonymous in smaps_rollup) is what this proxy alone costs. Both are reported.
set -euo pipefail
cd "$(dirname "$0")/.."
bin_dir=build/bin
workers_list="1 2"
sizes="100 1000"
endpoints=10
while [ $# -gt 0 ]; do
  case $1 in
    --bin-dir) bin_dir=$2; shift ;;
    --workers) workers_list=$2; shift ;;
    --sizes) sizes=$2; shift ;;
    --endpoints) endpoints=$2; shift ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *) echo "proxy_memory: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

work=$(mktemp -d /tmp/weft-mem.XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM

ready_port() {  # file field
  for _ in $(seq 200); do [ -s "$1" ] && break; sleep 0.05; done
  sed -E "s/.*\"$2\": ?([0-9]+).*/\1/" "$1"
}
# KiB: RSS and Anonymous of a process.
mem() { awk '/^Rss:/{r=$2} /^Anonymous:/{a=$2} END{print r, a}' "/proc/$1/smaps_rollup"; }

# One file per cluster: CDS + EDS with E endpoints (nothing listens there; no traffic is sent).
write_clusters() {  # dir count endpoints
  python3 - "$1" "$2" "$3" <<'PY'
import sys
d, n, e = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    eps = "".join(
        f"    - endpoint: {{ address: {{ socket_address: {{ address: 10.{i // 250}.{i % 250}.{j}, port_value: 8080 }} }} }}\n"
        for j in range(e))
    with open(f"{d}/c{i:05d}.yaml", "w") as f:
        f.write(f"""resources:
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: c{i}
  type: EDS
  eds_cluster_config: {{ eds_config: {{ ads: {{}} }} }}
  connect_timeout: 1s
- "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
  cluster_name: c{i}
  endpoints:
  - lb_endpoints:
{eps}""")
PY
}

# Per cluster: the anon growth from idle to C clusters of one endpoint each, over C. Per host:
# the growth from C × 1 to C × E endpoints, over the C × (E − 1) hosts added (as Envoy's memory
# test measures them). "All-in per host" divides the whole growth by all hosts.
printf '| workers | clusters × endpoints | RSS MB | anon MB | per cluster | per host | all-in per host |\n'
printf '|---:|---|---:|---:|---:|---:|---:|\n'
for w in $workers_list; do
  idle_anon=0
  for run in 0 $(for s in $sizes; do echo "$s:1 $s:$endpoints"; done); do
    size=${run%%:*}
    eps=${run#*:}
    [ "$run" = 0 ] && eps=0
    conf="$work/conf-$w-$size-$eps"
    mkdir -p "$conf"
    [ "$size" -gt 0 ] && write_clusters "$conf" "$size" "$eps"
    "$bin_dir/weft-cp" --config-dir "$conf" --xds-address 127.0.0.1:0 --admin-address 127.0.0.1:0 \
      --api-address 127.0.0.1:0 --ready-file "$work/cp-$w-$size-$eps.json" --log-level error \
      2>"$work/cp.log" &
    cp_pid=$!
    pids+=("$cp_pid")
    xds=$(ready_port "$work/cp-$w-$size-$eps.json" xds_port)
    cat >"$work/boot-$w-$size-$eps.yaml" <<YAML
node: { id: mem-$w-$size-$eps, cluster: mem }
xds: { servers: ["127.0.0.1:$xds"] }
admin: { address: "127.0.0.1:0" }
concurrency: $w
YAML
    "$bin_dir/weft-proxy" --bootstrap "$work/boot-$w-$size-$eps.yaml" \
      --ready-file "$work/p-$w-$size-$eps.json" --log-level error 2>"$work/p.log" &
    p_pid=$!
    pids+=("$p_pid")
    admin=$(ready_port "$work/p-$w-$size-$eps.json" admin_port)
    for _ in $(seq 600); do
      n=$(curl -s "127.0.0.1:$admin/clusters" | grep -c '::lb_policy::' || true)
      [ "$n" -ge "$size" ] && curl -sf "127.0.0.1:$admin/ready" >/dev/null && break
      sleep 0.1
    done
    sleep 1  # let the workers apply the snapshot and the allocator settle
    read -r rss anon < <(mem "$p_pid")
    mb() { echo "$1/1024" | bc -l; }
    if [ "$size" -eq 0 ]; then
      idle_anon=$anon
      printf '| %s | idle | %.1f | %.1f | | | |\n' "$w" "$(mb "$rss")" "$(mb "$anon")"
    elif [ "$eps" -eq 1 ]; then
      one_anon=$anon
      printf '| %s | %s × 1 | %.1f | %.1f | %s B | | |\n' "$w" "$size" "$(mb "$rss")" "$(mb "$anon")" \
        "$(( (anon - idle_anon) * 1024 / size ))"
    else
      printf '| %s | %s × %s | %.1f | %.1f | | %s B | %s B |\n' "$w" "$size" "$eps" "$(mb "$rss")" \
        "$(mb "$anon")" "$(( (anon - one_anon) * 1024 / (size * (eps - 1)) ))" \
        "$(( (anon - idle_anon) * 1024 / (size * eps) ))"
    fi
    kill "$p_pid" "$cp_pid" 2>/dev/null || true
    wait "$p_pid" "$cp_pid" 2>/dev/null || true
  done
done
