-- wrk script that bulk-loads shardkv for the recovery section of bench/run.
--
--   wrk -t1 -cC -d<bound>s -s bench/load.lua URL -- NKEYS [BATCH]
--
-- PUTs keys "k%015d" (16 bytes) with values "v%015d" (16 bytes), i = 0 ..
-- NKEYS-1, each exactly once, into an empty node: the same keys and values
-- bench/run loads into Redis. request() hands out BATCH consecutive keys at a
-- time as one string of BATCH pipelined PUTs (wrk counts the requests in the
-- string and waits for as many responses before calling request() again on
-- that connection), so a handful of connections keep the server busy
-- without one round trip per key. Once every key has been handed out, the
-- batches are GET /health/live instead, which change nothing.
--
-- Completion is counted on the responses: a PUT of a new key answers 201
-- and nothing else does, so NKEYS 201s mean every key is stored. Then wrk is
-- ended at once with os.exit(0) after printing "load: ok"; any response
-- other than 200/201 ends it with exit 1. It must run with -t1: a second
-- thread would get its own copy of the counters. If -d runs out first, wrk
-- prints its usual report without "load: ok", which bench/run checks.
-- NKEYS must be a multiple of BATCH (bench/run picks BATCH so).

local nkeys, batch
local next_key = 0
local verified = false
local created, failures = 0, 0
local idle

local function put_batch(first)
   local parts = {}
   for i = first, first + batch - 1 do
      parts[#parts + 1] = wrk.format("PUT", string.format("/v1/kv/k%015d", i), nil, string.format("v%015d", i))
   end
   return table.concat(parts)
end

function init(args)
   nkeys = tonumber(args[1] or "")
   batch = tonumber(args[2] or "100")
   if nkeys == nil or nkeys < 1 then error("load.lua: NKEYS must be >= 1") end
   if batch == nil or batch < 1 or nkeys % batch ~= 0 then error("load.lua: NKEYS must be a multiple of BATCH") end
   local gets = {}
   for i = 1, batch do gets[i] = wrk.format("GET", "/health/live") end
   idle = table.concat(gets)
end

-- wrk calls request() once in thread 1's state before connecting, to count
-- the requests of a batch, and never sends that string: the first call
-- therefore hands out the first batch without using it up. (Were it sent,
-- the repeated PUTs would answer 200 and count for nothing.)
function request()
   if not verified then
      verified = true
      return put_batch(0)
   end
   if next_key >= nkeys then return idle end
   local first = next_key
   next_key = next_key + batch
   return put_batch(first)
end

function response(status, headers, body)
   if status == 201 then
      created = created + 1
   elseif status ~= 200 then
      if failures == 0 then io.stderr:write("load: first failure: HTTP " .. status .. " " .. body .. "\n") end
      failures = failures + 1
      if failures >= 100 then
         io.stderr:write("load: 100 PUTs failed, giving up\n")
         io.stderr:flush()
         os.exit(1)
      end
   end
   if created + failures < nkeys then return end
   if failures > 0 then
      io.stderr:write(string.format("load: %d of %d PUTs failed\n", failures, nkeys))
      io.stderr:flush()
      os.exit(1)
   end
   io.write(string.format("load: ok, %d keys written\n", nkeys))
   io.flush()
   os.exit(0)
end
