-- wrk script of the counter section of bench/run: one hot counter.
--
--   wrk -t1 -cN -d<S+1>s --latency -s bench/counter.lua URL -- NAME S
--
-- Sends POST /v1/counters/NAME/incr?by=1 for S seconds, then stops sending
-- and lets the connections drain for the rest of the run (wrk's -d must be
-- S + 1). Why the drain: wrk stops at -d with up to one request per
-- connection in flight; the server may still apply those increments, but wrk
-- never counts their answers, so the counter would end up to N above the
-- increments wrk reported and bench/run could not tell a correct server from
-- one that loses an acknowledged increment now and then. After S seconds
-- request() returns an empty string, which wrk "writes" (0 bytes) and then
-- waits forever for an answer that never comes: the connection goes quiet
-- with nothing in flight, and wrk's reported request count is exactly the
-- number of increments answered. This relies on wrk 4's connection loop
-- (request() once per request, a request of length 0 written as complete,
-- no timer that times out idle connections).
--
-- done() prints two lines that bench/run reads:
--   latency_us p50 .. p90 .. p99 .. p999 .. max ..   (exact microseconds)
--   counter sent N phase_s S                         (increments sent)
-- bench/run checks sent == wrk's request count (every increment answered
-- before wrk stopped) and reports req/s as requests / S, not wrk's
-- Requests/sec, which divides by the whole run including the idle drain.
-- The request string is built once in init(); no response() on purpose
-- (it would make wrk parse every response header into Lua, see kv.lua).

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } skv_bench_timespec;
int clock_gettime(int clk_id, skv_bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("skv_bench_timespec")

local function now()
   ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
   return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

-- Thread state (read by done() in the main state through thread:get).
sent = 0
phase_s = 0
local incr, seconds
local deadline = nil
local verified = false

-- Main state: the threads, for done().
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   local name = args[1]
   seconds = tonumber(args[2] or "")
   if name == nil or name == "" then error("counter.lua: NAME missing") end
   if seconds == nil or seconds <= 0 then error("counter.lua: S must be > 0") end
   phase_s = seconds
   incr = wrk.format("POST", "/v1/counters/" .. name .. "/incr?by=1", nil, "")
end

function request()
   -- wrk calls request() once before the run to check that it returns a
   -- well-formed request (script_verify_request); that call sends nothing.
   if not verified then
      verified = true
      return incr
   end
   local t = now()
   if deadline == nil then deadline = t + seconds end
   if t >= deadline then return "" end
   sent = sent + 1
   return incr
end

function done(summary, latency, requests)
   io.write(string.format("latency_us p50 %d p90 %d p99 %d p999 %d max %d\n",
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max))
   local total, phase = 0, 0
   for _, thread in ipairs(threads) do
      total = total + thread:get("sent")
      phase = thread:get("phase_s")
   end
   io.write(string.format("counter sent %d phase_s %s\n", total, tostring(phase)))
end
