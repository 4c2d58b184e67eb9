-- wrk script for the scenarios of bench/run.
--
--   wrk ... -s bench/kv.lua URL -- MODE NKEYS [VALUE_BYTES [PUT_PERCENT]]
--
-- MODE    nginx    same requests as get, sent to the nginx reference (which
--                  answers every path): the client does the same work per
--                  request in every scenario, so ratios compare servers, not
--                  wrk's static request path against its Lua one.
--         get      GET a random key among 0..NKEYS-1 (all hits after preload).
--         put      PUT VALUE_BYTES bytes to a random key among 0..NKEYS-1.
--         mix      PUT_PERCENT% PUTs, the rest GETs, over keys 0..NKEYS-1.
--
-- Keys are "bench-%07d" under /v1/kv/. Every request string is built once in
-- init() with wrk.format, so request() only draws a random number and returns
-- a prebuilt string: the client spends its core on I/O, not on Lua garbage.
-- math.randomseed(42) in each thread makes the key sequence repeatable.
-- No response() here on purpose: defining it makes wrk parse every response
-- header into a Lua table (bench/preload.lua needs that, the timed runs not).
-- done() runs once after the run and prints the latency percentiles in whole
-- microseconds on one line ("latency_us p50 .. p90 .. p99 .. p999 .. max .."),
-- finer than wrk's own report and with p99.9, which bench/run reads for the
-- durable and snapshot sections.
-- Key and value layout must match bench/preload.lua.

local mode, nkeys, put_percent
local gets, puts = {}, {}

local function key_path(i)
   return string.format("/v1/kv/bench-%07d", i)
end

local function make_value(bytes)
   local alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
   local out = {}
   for i = 1, bytes do
      local j = (i - 1) % #alphabet + 1
      out[i] = alphabet:sub(j, j)
   end
   return table.concat(out)
end

function init(args)
   mode = args[1] or "get"
   nkeys = tonumber(args[2] or "10000")
   local value_bytes = tonumber(args[3] or "64")
   put_percent = tonumber(args[4] or "10")
   if nkeys == nil or nkeys < 1 then error("kv.lua: NKEYS must be >= 1") end
   math.randomseed(42)

   local value = make_value(value_bytes)
   local want_gets = (mode == "get" or mode == "mix" or mode == "nginx")
   local want_puts = (mode == "put" or mode == "mix")
   if not (want_gets or want_puts) then error("kv.lua: unknown mode " .. mode) end
   for i = 0, nkeys - 1 do
      local path = key_path(i)
      if want_gets then gets[i + 1] = wrk.format("GET", path) end
      if want_puts then puts[i + 1] = wrk.format("PUT", path, nil, value) end
   end
end

function request()
   if mode == "get" or mode == "nginx" then
      return gets[math.random(nkeys)]
   elseif mode == "put" then
      return puts[math.random(nkeys)]
   elseif mode == "mix" then
      if math.random(100) <= put_percent then return puts[math.random(nkeys)] end
      return gets[math.random(nkeys)]
   end
   error("kv.lua: unknown mode " .. mode)
end

function done(summary, latency, requests)
   io.write(string.format("latency_us p50 %d p90 %d p99 %d p999 %d max %d\n",
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max))
end
