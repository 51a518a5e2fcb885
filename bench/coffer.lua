-- wrk request script for Coffer's native API (bench/run.sh).
-- Environment:
--   BENCH_METHOD, BENCH_PATH, BENCH_AUTH ("Name: value"), BENCH_BODY_FILE (optional)
--   The body may contain @UNIQUE@, replaced per request by "<run>-<thread>-<n>" (distinct
--   names across requests and across wrk runs).
--   BENCH_MAX_PER_THREAD: stop each thread after this many responses (0 = time-bound).
-- done() prints one "RESULT ..." line in the same shape as ../shared/bench/req.lua.
local nthreads = 0
function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
end

local method = os.getenv("BENCH_METHOD") or "GET"
local path = os.getenv("BENCH_PATH") or "/"
local max_per_thread = tonumber(os.getenv("BENCH_MAX_PER_THREAD") or "0")
local body = nil
local bf = os.getenv("BENCH_BODY_FILE")
if bf and bf ~= "" then
  local f = assert(io.open(bf, "rb"))
  body = f:read("*a")
  f:close()
end
local headers = {}
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then
  local name, val = auth:match("^([^:]+):%s*(.*)$")
  headers[name] = val
end
if body then headers["Content-Type"] = "application/json" end
local unique = body ~= nil and body:find("@UNIQUE@", 1, true) ~= nil

local fixed = nil
local n = 0
-- A per-process id keeps names distinct across wrk runs (warm-up, repeats).
local run_id = "r"
do
  local f = io.open("/proc/sys/kernel/random/uuid", "r")
  if f then run_id = f:read("*l"):sub(1, 8); f:close() end
end
local done_count = 0
function init(args)
  if not unique then fixed = wrk.format(method, path, headers, body) end
end

function request()
  if fixed then return fixed end
  n = n + 1
  local b = body:gsub("@UNIQUE@", run_id .. "-" .. tostring(tid) .. "-" .. tostring(n))
  return wrk.format(method, path, headers, b)
end

function response(status, hdrs, resp_body)
  if max_per_thread > 0 then
    done_count = done_count + 1
    if done_count >= max_per_thread then wrk.thread:stop() end
  end
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f requests=%d non2xx=%d sockerr=%d\n",
    summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout))
end
