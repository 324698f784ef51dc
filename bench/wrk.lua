-- wrk script for bench/run.
--
-- BENCH_MODE=join: every request is POST {"lobby_id":...,"nick":...} with a
-- nick never used before (a counter per thread, the thread's number and a
-- per-run prefix), so each one is a real new durable join, not a retry.
-- BENCH_MODE=conditional and gzip: see below.
-- Other modes: wrk's own static request (the URL given on the command line).
--
-- done() prints one machine-readable line, BENCH_RESULT key=value..., that
-- bench/bench.py parse-wrk reads (latencies in microseconds).

local mode = os.getenv("BENCH_MODE") or "get"
local lobby_id = os.getenv("BENCH_LOBBY_ID") or ""
local prefix = os.getenv("BENCH_NICK_PREFIX") or "n"

local next_thread = 0

function setup(thread)
  next_thread = next_thread + 1
  thread:set("thread_no", next_thread)
end

if mode == "join" then
  local counter = 0
  local headers = { ["Content-Type"] = "application/json" }
  function request()
    counter = counter + 1
    local body = string.format('{"lobby_id":"%s","nick":"%s%d-%d"}',
                               lobby_id, prefix, counter, thread_no or 0)
    return wrk.format("POST", nil, headers, body)
  end
end

-- BENCH_MODE=conditional: GET with If-None-Match: BENCH_ETAG (a poll of an
-- unchanged listing, answered 304); BENCH_MODE=gzip: GET with
-- Accept-Encoding: gzip.
if mode == "conditional" or mode == "gzip" then
  local headers = {}
  if mode == "conditional" then
    headers["If-None-Match"] = os.getenv("BENCH_ETAG") or ""
  else
    headers["Accept-Encoding"] = "gzip"
  end
  function request()
    return wrk.format("GET", nil, headers)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d p50_us=%.0f p99_us=%.0f status_errors=%d "
      .. "connect=%d read=%d write=%d timeout=%d bytes=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout, summary.bytes))
end
