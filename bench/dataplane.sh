#!/usr/bin/env bash
# Data-plane benchmark (issue #6): the same HTTP/1.1 load against an nginx origin directly and
# through HAProxy, nginx and weft-proxy, all on loopback, interleaved over several rounds, at equal
# worker counts. Prints a markdown table of medians and ratios and writes it to --out.
#
#   bench/dataplane.sh [--quick] [--workers "1 2"] [--rounds 3] [--duration 10s] [--rate 1000]
#                      [--bin-dir build/bin] [--out FILE] [--pin] [--keep] [--no-install]
#
# Per worker count W, each system runs with W workers (nginx worker_processes, HAProxy nbthread,
# weft-proxy's bootstrap `concurrency`); the origin nginx also gets W workers. Per round, each
# system gets, in an order that rotates every round so no system always runs first or last:
#   1. a 1 s warm-up (not recorded);
#   2. max throughput: wrk -t2 -c64 --latency, keep-alive, 1 KB responses -> rps, p50/p90/p99,
#      and the proxy's RSS sampled during the run (max);
#   3. fixed rate (--rate, 1000 rps): latency p50/p90/p99 and the proxy's CPU seconds per 1000
#      requests, from utime+stime in /proc/PID/stat (all threads, all worker processes).
# RSS idle is read once per system, after its readiness probe and before any load.
# Two floor systems run too (weft-bench-forward, bench/forward/forward.cc): a byte forwarder with
# only the socket calls a proxy cannot avoid, over epoll and over io_uring, to show how much of a
# proxy's cost is this machine's kernel.
#
# Everything lives in a scratch dir (configs, pid and log files, nginx temp paths): no system
# config, no /var/log. Servers run in the foreground as children of this script and are stopped
# by the EXIT trap, whatever happens.
#
# Fairness on this machine: the load generator, the origin and the proxy share the same 2 cores,
# so absolute numbers are low and noisy; compare rows of one run, not runs of different days.
# --pin (W=1 only, needs >= 2 cores) puts wrk on CPU 0 and every server (origin and proxy) on
# CPU 1, so the generator never steals the proxy's core; the direct row then also gets one core
# for the origin alone, which is what "cost of the extra hop" should be measured against.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
here=$repo/bench/dataplane

workers_list="1 2"
rounds=3
duration=10s
rate=1000
threads=2
connections=64
bin_dir=$repo/build/bin
out=""
pin=0
keep=0
install=1

usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; }

while (($#)); do
  case $1 in
    --quick) rounds=1 duration=3s workers_list=1 ;;
    --workers) workers_list=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --duration) duration=$2; shift ;;
    --rate) rate=$2; shift ;;
    --bin-dir) bin_dir=$2; shift ;;
    --out) out=$2; shift ;;
    --pin) pin=1 ;;
    --keep) keep=1 ;;
    --no-install) install=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "dataplane.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
[ -n "$out" ] || out=$repo/bench/results/dataplane-$(date +%Y%m%d-%H%M%S).md

log() { echo "dataplane: $*" >&2; }

# --- packages -------------------------------------------------------------------------------
# Same check-then-install logic as tools/deps.sh, which has no optional section for
# benchmark-only tools: they are installed here, only when this benchmark runs.
if ((install)); then
  missing=()
  for p in nginx haproxy wrk nghttp2-client curl python3; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    # Debian starts an installed nginx/haproxy on port 80 where services may start; ours never
    # use that instance, and it is left as the package set it up.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
fi
for tool in nginx haproxy wrk curl python3; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
    { log "$tool not found (run without --no-install)"; exit 1; }
done
PATH=$PATH:/usr/sbin

# --- scratch dir and cleanup -----------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/weft-dataplane.XXXXXX")
mkdir -p "$work/logs" "$work/tmp" "$work/www"
pids=()
stop_all() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  # Give them a moment to exit on their own (nginx masters take their workers down), then force.
  for _ in $(seq 30); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}
cleanup() {
  # A max-throughput wrk runs in the background: do not leave it hammering a dead port.
  [ -z "${wrk_pid:-}" ] || kill "$wrk_pid" 2>/dev/null || true
  stop_all
  if ((keep)); then log "scratch dir kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- helpers ---------------------------------------------------------------------------------
# N distinct free loopback ports: all bound at once so none is handed out twice. Another program
# could still take one before our server binds it; the readiness checks would then fail loudly.
free_ports() {
  python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

# render TEMPLATE OUT KEY=VALUE...: replaces @KEY@ placeholders.
render() {
  local template=$1 dest=$2 args=() kv
  shift 2
  for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${args[@]}" "$template" >"$dest"
}

# Starts a server in the background (pinned to the server CPU with --pin) and sets started_pid.
# Not meant for $(...): the server must be this shell's child so the trap can stop and reap it.
start() {
  local name=$1
  shift
  "${server_cpu[@]}" "$@" >"$work/logs/$name.out" 2>&1 &
  started_pid=$!
  pids+=("$started_pid")
}

# Waits up to $2 seconds for a 200 with the 1 KB body on 127.0.0.1:$1.
wait_http() {
  local port=$1 deadline=$((SECONDS + $2)) got
  while ((SECONDS < deadline)); do
    got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' --max-time 1 \
      "http://127.0.0.1:$port/" || true)
    [ "$got" = "200 1024" ] && return 0
    sleep 0.1
  done
  return 1
}

wait_file() {
  local file=$1 deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    [ -s "$file" ] && return 0
    sleep 0.05
  done
  return 1
}

json_field() { python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# The processes that make up a server: an nginx master and its workers, or a single process.
family() {
  local pid=$1
  echo "$pid"
  pgrep -P "$pid" 2>/dev/null || true
}

# Summed VmRSS in kB (nginx: master + workers; shared pages count once per process).
rss_kb() {
  local total=0 pid kb
  for pid in $(family "$1"); do
    kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    total=$((total + ${kb:-0}))
  done
  echo "$total"
}

# utime+stime in clock ticks over all threads of all the server's processes. The comm field may
# hold spaces, so fields are counted after its closing parenthesis (utime is field 14 overall).
cpu_ticks() {
  local total=0 pid t
  for pid in $(family "$1"); do
    t=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}' || true)
    total=$((total + ${t:-0}))
  done
  echo "$total"
}
clk_tck=$(getconf CLK_TCK)

# WEFT_RESULT line from wrk.lua -> shell variables r_requests, r_duration_us, r_p50_us, ...
r_requests=0 r_duration_us=1 r_errors=0 r_non2xx=0 r_p50_us=0 r_p90_us=0 r_p99_us=0
parse_result() {
  local line
  line=$(grep '^WEFT_RESULT ' "$1" | tail -1 || true)
  [ -n "$line" ] || { log "no result in $1:"; tail -5 "$1" >&2; return 1; }
  local kv
  for kv in ${line#WEFT_RESULT }; do printf -v "r_${kv%%=*}" '%s' "${kv#*=}"; done
}

# Fixed-rate generator. h2load --rps (Debian 12's nghttp2 1.52 has it) paces each client; its
# per-request log (--log-file) gives the percentiles, since h2load prints none. One connection at
# the full rate: several h2load clients start together and their timers stay aligned, firing
# bursts that queue at a 1-worker proxy and would measure the generator, not the hop. Without
# --rps (older nghttp2) the fallback is wrk with wrk.lua's per-connection delay over 10
# connections, approximately paced (the table shows the rate achieved). h2load -r is no
# substitute: it paces new connections, not requests.
# WEFT_BENCH_FIXED_RATE_TOOL=wrk-delay forces the fallback (to compare, or to test it).
# (The help is captured whole: `h2load --help | grep -q` can kill h2load with SIGPIPE, and
# pipefail then reads that as "no --rps".)
h2load_help=$(h2load --help 2>&1 || true)
if [ "${WEFT_BENCH_FIXED_RATE_TOOL:-}" != wrk-delay ] && [[ $h2load_help == *--rps=* ]]; then
  fixed_rate_tool=h2load
  fr_connections=1
else
  fixed_rate_tool=wrk-delay
  fr_connections=10
fi

# fixed_rate URL LOG: sets r_* like parse_result.
fixed_rate() {
  local url=$1 out=$2
  if [ "$fixed_rate_tool" = h2load ]; then
    local reqlog=$out.requests
    "${load_cpu[@]}" h2load --h1 -t1 -c "$fr_connections" \
      --rps="$(python3 -c "print($rate / $fr_connections)")" -D "$duration" \
      --log-file="$reqlog" "$url" >"$out" 2>&1 || true
    # Columns: start (us since epoch), status, duration (us).
    printf 'WEFT_RESULT %s\n' "$(python3 -c '
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
lat = sorted(int(r[2]) for r in rows)
bad = sum(1 for r in rows if not 200 <= int(r[1]) < 400)
pct = lambda p: lat[min(len(lat) - 1, int(len(lat) * p / 100))] if lat else 0
span = (max(int(r[0]) + int(r[2]) for r in rows) - min(int(r[0]) for r in rows)) if rows else 1
print(f"requests={len(rows)} duration_us={span} errors=0 non2xx={bad} "
      f"p50_us={pct(50)} p90_us={pct(90)} p99_us={pct(99)} max_us={lat[-1] if lat else 0}")
' "$reqlog")" >>"$out"
  else
    WEFT_BENCH_DELAY_MS=$((fr_connections * 1000 / rate)) "${load_cpu[@]}" \
      wrk -t1 -c "$fr_connections" -d "$duration" --latency -s "$here/wrk.lua" "$url" \
      >"$out" 2>&1 || true
  fi
  parse_result "$out"
}

# --- CPU placement ---------------------------------------------------------------------------
set_pinning() {
  load_cpu=()
  server_cpu=()
  if ((pin)) && [ "$1" -eq 1 ] && [ "$(nproc)" -ge 2 ]; then
    load_cpu=(taskset -c 0)
    server_cpu=(taskset -c 1)
  elif ((pin)); then
    log "--pin applies to W=1 on >= 2 cores only; W=$1 runs unpinned"
  fi
}

# --- the run ---------------------------------------------------------------------------------
# A 1024-byte body of printable characters, so it can sit in nginx's `return` directive.
body=$(python3 -c 'print(("weft-bench-" * 100)[:1024])')

results=$work/results.tsv
skipped=$work/skipped.tsv
printf 'workers\tsystem\tround\trps\tp50_us\tp90_us\tp99_us\terrors\tfr_rps\tfr_p50_us\tfr_p90_us\tfr_p99_us\tfr_errors\tcpu_s_per_1k\trss_idle_kb\trss_load_kb\n' >"$results"
: >"$skipped"

weft_version="not built"
[ -x "$bin_dir/weft-proxy" ] && weft_version=$("$bin_dir/weft-proxy" --version 2>&1 | head -1 || true)
log "scratch dir $work; workers '$workers_list', $rounds round(s) of $duration; fixed rate $rate rps via $fixed_rate_tool"

for W in $workers_list; do
  set_pinning "$W"
  read -r up_port hap_port ngx_port weft_port fe_port fu_port < <(free_ports 6)
  declare -A port=([direct]=$up_port [haproxy]=$hap_port [nginx]=$ngx_port [weft]=$weft_port
    [floor-epoll]=$fe_port [floor-uring]=$fu_port)
  declare -A pid=() rss_idle=()

  render "$here/upstream-nginx.conf" "$work/upstream-$W.conf" DIR="$work" WORKERS="$W" \
    PORT="$up_port" BODY="$body"
  start "upstream-$W" nginx -p "$work" -e "$work/logs/upstream-error.log" -c "$work/upstream-$W.conf"
  pid[direct]=$started_pid
  wait_http "$up_port" 10 || { log "origin nginx did not start:"; cat "$work/logs/upstream-$W.out" \
    "$work/logs/upstream-error.log" >&2 || true; exit 1; }

  render "$here/haproxy.cfg" "$work/haproxy-$W.cfg" WORKERS="$W" PORT="$hap_port" \
    UPSTREAM_PORT="$up_port"
  # -db: stay in the foreground, no daemon, no master process.
  start "haproxy-$W" haproxy -db -f "$work/haproxy-$W.cfg"
  pid[haproxy]=$started_pid

  render "$here/proxy-nginx.conf" "$work/proxy-nginx-$W.conf" DIR="$work" WORKERS="$W" \
    PORT="$ngx_port" UPSTREAM_PORT="$up_port"
  start "proxy-nginx-$W" nginx -p "$work" -e "$work/logs/proxy-nginx-error.log" \
    -c "$work/proxy-nginx-$W.conf"
  pid[nginx]=$started_pid

  systems=(direct haproxy nginx)
  for s in haproxy nginx; do
    wait_http "${port[$s]}" 10 || { log "$s did not start:"; tail -20 "$work/logs/"*"$s"*"-$W".* >&2 || true; exit 1; }
  done

  # weft: weft-cp serves the raw resources; weft-proxy gets them over ADS. Until the proxy's
  # data path exists, the probe through its listener fails and weft is reported, not measured.
  if [ -x "$bin_dir/weft-cp" ] && [ -x "$bin_dir/weft-proxy" ]; then
    mkdir -p "$work/weft-config-$W"
    render "$here/weft-resources.yaml" "$work/weft-config-$W/bench.yaml" PORT="$weft_port" \
      UPSTREAM_PORT="$up_port"
    start "weft-cp-$W" "$bin_dir/weft-cp" --config-dir "$work/weft-config-$W" \
      --xds-address 127.0.0.1:0 --admin-address 127.0.0.1:0 --api-address 127.0.0.1:0 \
      --ready-file "$work/weft-cp-$W.ready" --log-level warning
    cp_pid=$started_pid
    if wait_file "$work/weft-cp-$W.ready" 10; then
      render "$here/weft-bootstrap.yaml" "$work/weft-bootstrap-$W.yaml" \
        XDS_PORT="$(json_field "$work/weft-cp-$W.ready" xds_port)" WORKERS="$W"
      start "weft-proxy-$W" "$bin_dir/weft-proxy" --bootstrap "$work/weft-bootstrap-$W.yaml" \
        --ready-file "$work/weft-proxy-$W.ready" --log-level warning
      pid[weft]=$started_pid
      if wait_file "$work/weft-proxy-$W.ready" 10 && wait_http "$weft_port" 5; then
        systems+=(weft)
      else
        admin=$(json_field "$work/weft-proxy-$W.ready" admin_port 2>/dev/null || echo "")
        state=""
        if [ -n "$admin" ]; then
          state=$(curl -s --max-time 1 "127.0.0.1:$admin/ready" || true)
        fi
        log "weft: not serving (no 200 with the 1 KB body through 127.0.0.1:$weft_port after 5 s;" \
          "proxy /ready: ${state:-no answer})"
        printf '%s\tweft\tnot serving\n' "$W" >>"$skipped"
        kill -TERM "${pid[weft]}" "$cp_pid" 2>/dev/null || true
      fi
    else
      log "weft-cp did not start:"
      tail -20 "$work/logs/weft-cp-$W.out" >&2 || true
      printf '%s\tweft\tnot serving (weft-cp did not start)\n' "$W" >>"$skipped"
    fi
  else
    log "weft: $bin_dir/weft-cp or weft-proxy missing (build first or pass --bin-dir)"
    printf '%s\tweft\tnot built\n' "$W" >>"$skipped"
  fi

  # The floor: weft-bench-forward copies bytes between each client and its own upstream
  # connection, nothing else (bench/forward/forward.cc), once with epoll and once with io_uring.
  # No socket proxy can use less CPU per request than it, so it shows how much of a proxy's cost
  # is this machine's kernel and how much is the proxy's own code.
  if [ -x "$bin_dir/weft-bench-forward" ]; then
    for io in epoll uring; do
      start "floor-$io-$W" "$bin_dir/weft-bench-forward" --listen "127.0.0.1:${port[floor-$io]}" \
        --upstream "127.0.0.1:$up_port" --workers "$W" --io "$io"
      pid[floor-$io]=$started_pid
      if wait_http "${port[floor-$io]}" 5; then
        systems+=("floor-$io")
      else
        log "floor-$io: not serving:"
        tail -5 "$work/logs/floor-$io-$W.out" >&2 || true
        printf '%s\tfloor-%s\tnot serving\n' "$W" "$io" >>"$skipped"
      fi
    done
  fi

  for s in "${systems[@]}"; do rss_idle[$s]=$(rss_kb "${pid[$s]}"); done

  for ((r = 1; r <= rounds; r++)); do
    # Rotate the order each round: round 1 direct first, round 2 haproxy first, ...
    n=${#systems[@]}
    order=()
    for ((i = 0; i < n; i++)); do order+=("${systems[$(((i + r - 1) % n))]}"); done
    log "W=$W round $r/$rounds: ${order[*]}"
    for s in "${order[@]}"; do
      url="http://127.0.0.1:${port[$s]}/"
      tag="$work/logs/$s-w$W-r$r"
      "${load_cpu[@]}" wrk -t"$threads" -c"$connections" -d1s "$url" >/dev/null 2>&1 || true

      # Max throughput, sampling the server's RSS while wrk runs.
      "${load_cpu[@]}" wrk -t"$threads" -c"$connections" -d"$duration" --latency \
        -s "$here/wrk.lua" "$url" >"$tag-max.txt" 2>&1 &
      wrk_pid=$!
      rss_max=0
      while kill -0 "$wrk_pid" 2>/dev/null; do
        kb=$(rss_kb "${pid[$s]}")
        ((kb > rss_max)) && rss_max=$kb
        sleep 0.25
      done
      wait "$wrk_pid" || true
      parse_result "$tag-max.txt"
      rps=$(python3 -c "print(round($r_requests / ($r_duration_us / 1e6), 1))")
      max_line="$rps	$r_p50_us	$r_p90_us	$r_p99_us	$((r_errors + r_non2xx))"

      # Fixed rate, with the server's CPU time around it.
      t0=$(cpu_ticks "${pid[$s]}")
      fixed_rate "$url" "$tag-fixed.txt"
      t1=$(cpu_ticks "${pid[$s]}")
      fr_rps=$(python3 -c "print(round($r_requests / ($r_duration_us / 1e6), 1))")
      cpu=$(python3 -c "print(round(($t1 - $t0) / $clk_tck / max($r_requests, 1) * 1000, 5))")
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$W" "$s" "$r" "$max_line" \
        "$fr_rps" "$r_p50_us" "$r_p90_us" "$r_p99_us" "$((r_errors + r_non2xx))" "$cpu" \
        "${rss_idle[$s]}" "$rss_max" >>"$results"
      log "  $s: $rps rps at max; ${fr_rps} rps fixed, p50 ${r_p50_us} us, p99 ${r_p99_us} us," \
        "$cpu CPU-s/1000 req ($((t1 - t0)) ticks)"
    done
  done
  stop_all
  unset port pid rss_idle
done

# --- report ----------------------------------------------------------------------------------
mkdir -p "$(dirname "$out")"
{
  echo "# Data plane: weft vs HAProxy vs nginx vs direct"
  echo
  echo "- Date: $(date -u +%Y-%m-%dT%H:%M:%SZ); machine: nproc=$(nproc)," \
    "CPU \"$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)\"; load before run:" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- Versions: $(nginx -v 2>&1 | sed 's/.*: //'), $(haproxy -v | head -1 | cut -d' ' -f1-3)," \
    "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), weft: $weft_version"
  echo "- Load: wrk -t$threads -c$connections --latency, HTTP/1.1 keep-alive, GET / with a" \
    "1024-byte response from an nginx origin; $duration per run; $rounds round(s), order" \
    "rotating; medians over rounds. Fixed rate: $rate rps over $fr_connections connection(s) via" \
    "$fixed_rate_tool. Workers = worker processes or threads of the proxy and of the origin."
  echo "- CPU-s / 1000 req: the proxy's utime+stime (/proc/PID/stat, all threads and worker" \
    "processes) during the fixed-rate run. RSS: VmRSS summed over the proxy's processes; idle" \
    "after the readiness probe, under load = max during the max-throughput run."
  ((pin)) && echo "- Pinned: wrk on CPU 0, origin and proxy on CPU 1 (W=1 only)."
  echo "- Command: bench/dataplane.sh --workers \"$workers_list\" --rounds $rounds --duration" \
    "$duration --rate $rate$( ((pin)) && echo ' --pin')"
  echo
  python3 "$here/report.py" "$results" "$skipped"
} >"$out"
cp "$results" "${out%.md}.tsv"
cat "$out"
log "written to $out (raw rows: ${out%.md}.tsv)"
