-- wrk script: each thread posts its own slice of the pre-signed events (every N-th line), so
-- no two threads send the same event; prints p50/p99 latency and the answer statuses.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  local file = args[1]
  local nthreads = tonumber(args[2])
  requests = {}
  local i = 0
  for line in io.lines(file) do
    if i % nthreads == id then
      local sig, body = line:match("^(%x+) (.*)$")
      requests[#requests + 1] = wrk.format("POST", "/api/smartcar/webhook",
        { ["Content-Type"] = "application/json", ["SC-Signature"] = sig }, body)
    end
    i = i + 1
  end
  n = 0
  sent = 0
  statuses = {}
  wrapped = 0
end

function request()
  sent = sent + 1
  n = n + 1
  if n > #requests then
    n = 1
    wrapped = wrapped + 1
  end
  return requests[n]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  local wraps = 0
  local per_thread = {}
  for _, t in ipairs(threads) do
    per_thread[#per_thread + 1] = tostring(t:get("sent"))
    local s = t:get("statuses")
    for k, v in pairs(s) do merged[k] = (merged[k] or 0) + v end
    wraps = wraps + t:get("wrapped")
  end
  local parts = {}
  for k, v in pairs(merged) do parts[#parts + 1] = string.format("%d:%d", k, v) end
  io.write(string.format("RESULT requests=%d seconds=%.3f p50_ms=%.3f p99_ms=%.3f errors=%d statuses=%s wrapped=%d sent=%s\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout + summary.errors.status,
    table.concat(parts, ","), wraps, table.concat(per_thread, ",")))
end
