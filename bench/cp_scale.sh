#!/usr/bin/env bash
# weft-cp's config model at mesh scale (issue 18): for each size N, a generated mesh of N Weft
# objects (one per file: 80 % Services with 3 endpoints, 10 % Routes splitting traffic between
# two services, 10 % Policies), applied with one `weftctl apply`; then weft-cp is SIGKILLed and
# restarted on the same data dir. Reports per N:
#   apply      wall time of `weftctl apply -f DIR` (validation, translation, store, answer)
#   rss        weft-cp VmRSS after the apply, and VmHWM (its peak)
#   restart    from exec to the config API answering, and to the stored revision being served
#              (published into the snapshot cache: what a reconnecting proxy gets)
#   change     one Service's endpoints edited with `weftctl apply`: wall time of the apply, and
#              until `weftctl wait` reports it served
# AuthorizationPolicy is left out: weft-cp refuses it until weft-proxy enforces RBAC.
#
#   bench/cp_scale.sh [--bin-dir build/bin] [--sizes "250 500 1000 10000"] [--timeout 300]
#                     [--max-rss-mb 4096]
#
# A run that exceeds --timeout seconds or --max-rss-mb is stopped and reported as such, so an
# old build that grows without bound does not take the machine down.
set -euo pipefail
cd "$(dirname "$0")/.."
bin_dir=build/bin
sizes="250 500 1000 10000"
timeout_s=300
max_rss_mb=4096
while [ $# -gt 0 ]; do
  case $1 in
    --bin-dir) bin_dir=$2; shift ;;
    --sizes) sizes=$2; shift ;;
    --timeout) timeout_s=$2; shift ;;
    --max-rss-mb) max_rss_mb=$2; shift ;;
    -h|--help) sed -n 2,19p "$0"; exit 0 ;;
    *) echo "cp_scale: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
bin_dir=$(cd "$bin_dir" && pwd)

work=$(mktemp -d /tmp/weft-cp-scale.XXXXXX)
cp_pid=""
cleanup() {
  [ -n "$cp_pid" ] && kill -9 "$cp_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# One object per file, as a new user would write them.
generate() {  # dir count
  python3 - "$1" "$2" <<'PY'
import sys
d, n = sys.argv[1], int(sys.argv[2])
services = max(2, n * 8 // 10)
routes = (n - services) // 2
policies = n - services - routes
def service(i, shift=0):
    eps = "".join(f"- {{address: 10.{i // 250 % 250}.{i % 250}.{e + 1}, port: {8080 + shift}}}\n"
                  for e in range(3))
    return f"kind: Service\nname: svc-{i}\nports: [{{port: 8080, protocol: HTTP}}]\nendpoints:\n{eps}"
for i in range(services):
    open(f"{d}/svc-{i:05d}.yaml", "w").write(service(i))
for r in range(routes):
    a, b = (2 * r) % services, (2 * r + 1) % services
    open(f"{d}/route-{r:05d}.yaml", "w").write(
        f"kind: Route\nname: route-{r}\nhosts: [svc-{a}]\nrules:\n"
        f"- match: {{path: {{prefix: /canary/}}}}\n"
        f"  destinations: [{{service: svc-{a}, weight: 90}}, {{service: svc-{b}, weight: 10}}]\n"
        f"  timeout: 2s\n")
for p in range(policies):
    s = (2 * p + 1) % services
    open(f"{d}/policy-{p:05d}.yaml", "w").write(
        f"kind: Policy\nname: policy-{p}\nservice: svc-{s}\n"
        f"lb: {{algorithm: RING_HASH, hash_on: {{header: x-user}}}}\nconnect_timeout: 2s\n")
# The object edited in the change step, with its endpoints moved.
open(f"{d}/../change.yaml", "w").write(service(0, shift=1))
PY
}

# Starts weft-cp on data dir $1; sets cp_pid, api, started_at.
start_cp() {
  rm -f "$work/ready.json"
  started_at=$(now)
  "$bin_dir/weft-cp" --data-dir "$1" --xds-address 127.0.0.1:0 --admin-address 127.0.0.1:0 \
    --api-address 127.0.0.1:0 --ready-file "$work/ready.json" --log-level warning \
    >>"$work/cp.log" 2>&1 &
  cp_pid=$!
}

# Waits for the ready file (the config API listens); sets ready_s (seconds since start, or "-")
# and api.
wait_ready() {
  local deadline=$(($(date +%s) + timeout_s))
  ready_s="-"
  while [ ! -s "$work/ready.json" ]; do
    if [ "$(date +%s)" -ge $deadline ] || ! kill -0 "$cp_pid" 2>/dev/null; then return; fi
    sleep 0.02
  done
  api=127.0.0.1:$(sed -E 's/.*"api_port": ?([0-9]+).*/\1/' "$work/ready.json")
  ready_s=$(elapsed "$started_at" "$(now)")
}

# Runs a command in the background, watching weft-cp's RSS; prints "seconds exit" or a reason.
watched() {
  local t0 pid rss=0 deadline
  t0=$(now)
  "$@" >"$work/cmd.out" 2>&1 &
  pid=$!
  deadline=$(($(date +%s) + timeout_s))
  while kill -0 $pid 2>/dev/null; do
    rss=$(($(status_kb "$cp_pid" VmRSS) / 1024))
    if [ "$rss" -gt "$max_rss_mb" ]; then
      kill -9 $pid "$cp_pid" 2>/dev/null || true
      echo "stopped: weft-cp RSS past ${max_rss_mb} MB after $(elapsed "$t0" "$(now)") s"
      return
    fi
    if [ "$(date +%s)" -ge $deadline ]; then
      kill -9 $pid "$cp_pid" 2>/dev/null || true
      echo "stopped: not done after ${timeout_s} s (RSS ${rss} MB)"
      return
    fi
    sleep 0.05
  done
  local rc=0
  wait $pid || rc=$?
  echo "$(elapsed "$t0" "$(now)") $rc"
}

echo "weft-cp config model at scale: $(git rev-parse --short HEAD) $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
printf "%-7s %-9s %-22s %-10s %-10s %-10s %-12s\n" objects apply "rss after / peak" restart served change change-served
for n in $sizes; do
  dir="$work/mesh-$n"
  data="$work/data-$n"
  mkdir -p "$dir/objects" "$data"
  generate "$dir/objects" "$n"
  start_cp "$data"
  wait_ready
  if [ "$ready_s" = "-" ]; then echo "$n: weft-cp did not start"; tail "$work/cp.log"; exit 1; fi
  read -r apply_s apply_rc rest <<<"$(watched "$bin_dir/weftctl" --server "$api" --rpc-timeout "$timeout_s" apply -f "$dir/objects")"
  if [ "$apply_s" = "stopped:" ]; then
    printf "%-7s %s\n" "$n" "apply $apply_s $apply_rc $rest"
    cp_pid=""
    continue
  fi
  if [ "$apply_rc" != 0 ]; then echo "$n: apply failed:"; tail -5 "$work/cmd.out"; exit 1; fi
  rss="$(($(status_kb "$cp_pid" VmRSS) / 1024)) / $(($(status_kb "$cp_pid" VmHWM) / 1024)) MB"

  # A one-object change: one Service's endpoints.
  read -r change_s change_rc _ <<<"$(watched "$bin_dir/weftctl" --server "$api" apply -f "$dir/change.yaml")"
  read -r served_s served_rc _ <<<"$(watched "$bin_dir/weftctl" --server "$api" wait --timeout "$timeout_s")"
  change_served=$(awk -v a="$change_s" -v b="$served_s" 'BEGIN { printf "%.2f", a + b }')

  kill -9 "$cp_pid"
  wait "$cp_pid" 2>/dev/null || true
  start_cp "$data"
  wait_ready
  # Served: the stored revision published to the snapshot cache.
  served="-"
  deadline=$(($(date +%s) + timeout_s))
  while [ "$ready_s" != "-" ] && [ "$(date +%s)" -lt $deadline ]; do
    line=$("$bin_dir/weftctl" --server "$api" status 2>/dev/null | head -1 || true)
    if [[ $line =~ ^revision\ ([0-9]+)\ \(serving\ ([0-9]+)\) ]] &&
      [ "${BASH_REMATCH[1]}" -gt 0 ] && [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ]; then
      served=$(elapsed "$started_at" "$(now)")
      break
    fi
    sleep 0.05
  done
  printf "%-7s %-9s %-22s %-10s %-10s %-10s %-12s\n" "$n" "${apply_s}s" "$rss" "${ready_s}s" \
    "${served}s" "${change_s}s" "${change_served}s"
  kill -9 "$cp_pid" 2>/dev/null || true
  wait "$cp_pid" 2>/dev/null || true
  cp_pid=""
  rm -rf "$data" "$dir"
done
