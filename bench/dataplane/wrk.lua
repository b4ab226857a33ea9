-- wrk script for bench/dataplane.sh.
-- 1. done() prints one machine-readable line, so the harness does not scrape wrk's human output
--    (whose units change between us, ms and s).
-- 2. With WEFT_BENCH_DELAY_MS set, each connection waits about that long between a response and
--    its next request, which turns wrk into an approximately fixed-rate generator:
--    rate ~= connections * 1000 / (delay + latency). It is the fallback for an h2load without
--    --rps (Debian's wrk is not wrk2). The delay is drawn at random around its mean so the
--    connections drift apart instead of firing in lockstep bursts. wrk starts its latency clock
--    when the request is written, so the delay is not counted as latency.

local delay_ms = tonumber(os.getenv("WEFT_BENCH_DELAY_MS") or "")
if delay_ms and delay_ms > 0 then
  local lo = math.floor(delay_ms / 2)
  local hi = 2 * delay_ms - lo
  function delay()
    return math.random(lo, hi)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WEFT_RESULT requests=%d duration_us=%d errors=%d non2xx=%d p50_us=%.0f p90_us=%.0f p99_us=%.0f max_us=%.0f\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
