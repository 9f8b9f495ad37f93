-- wrk script: POST pre-signed Stripe webhooks, cycling through a file of "<Stripe-Signature>\t<body>" lines.
--   BENCH_BODIES   path of the lines file (bench/bodies.py writes it)
--   BENCH_PATH     request path (default /webhooks/stripe)
--   BENCH_SUMMARY  where done() writes a JSON summary (latencies, errors, per-thread acknowledgements)
-- Usage: wrk -t2 -c64 -d15s -s bench/webhooks.lua http://127.0.0.1:8000 -- 2   (the last arg = thread count)
-- Thread k sends lines k, k+T, k+2T, ... so the driver knows exactly which event ids were sent.

local threads = {}
local created = 0

function setup(thread)
  thread:set("tid", created)
  created = created + 1
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(args[1] or "1")
  local path = os.getenv("BENCH_PATH") or "/webhooks/stripe"
  reqs = {}
  local n = 0
  for line in io.lines(os.getenv("BENCH_BODIES")) do
    if n % nthreads == tid then
      local tab = line:find("\t", 1, true)
      local headers = {["Content-Type"] = "application/json", ["Stripe-Signature"] = line:sub(1, tab - 1)}
      reqs[#reqs + 1] = wrk.format("POST", path, headers, line:sub(tab + 1))
    end
    n = n + 1
  end
  nlines = #reqs
  sent, ok_new, ok_dup, failed = 0, 0, 0, 0
  acked = {}
end

function request()
  sent = sent + 1
  return reqs[(sent - 1) % #reqs + 1]
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    local id = body:match('"delivery_id":(%d+)')
    if id then
      ok_new = ok_new + 1
      acked[#acked + 1] = id
    else
      ok_dup = ok_dup + 1
    end
  else
    failed = failed + 1
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local out = assert(io.open(os.getenv("BENCH_SUMMARY"), "w"))
  out:write(string.format(
    '{"duration_us":%d,"requests":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d},"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f},"threads":[',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
  for i, thread in ipairs(threads) do
    local ids = thread:get("acked")
    out:write(string.format('%s{"tid":%d,"lines":%d,"sent":%d,"ok_new":%d,"ok_dup":%d,"failed":%d,"acked":[%s]}',
      i > 1 and "," or "", thread:get("tid"), thread:get("nlines"), thread:get("sent"), thread:get("ok_new"),
      thread:get("ok_dup"), thread:get("failed"), table.concat(ids, ",")))
  end
  out:write("]}\n")
  out:close()
end
