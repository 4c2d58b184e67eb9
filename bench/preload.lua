-- wrk script that fills shardkv before the GET and mix scenarios of bench/run.
--
--   wrk -t1 -c1 -d<bound>s -s bench/preload.lua URL -- NKEYS [VALUE_BYTES]
--
-- PUTs keys 0..NKEYS-1 once each, in order, then ends wrk at once with
-- os.exit (wrk itself would sleep out the whole -d): exit 0 after printing
-- "preload: ok" when every response was 2xx, exit 1 otherwise. It must run
-- with one connection: responses then arrive in request order, so "NKEYS
-- responses seen" means "every key answered". If -d runs out first, wrk prints
-- its usual report without the "preload: ok" line, which bench/run checks.
-- Key and value layout must match bench/kv.lua.

local nkeys
local puts = {}
local responses, failures = 0, 0

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
   nkeys = tonumber(args[1] or "10000")
   local value = make_value(tonumber(args[2] or "64"))
   if nkeys == nil or nkeys < 1 then error("preload.lua: NKEYS must be >= 1") end
   for i = 0, nkeys - 1 do
      puts[i + 1] = wrk.format("PUT", string.format("/v1/kv/bench-%07d", i), nil, value)
   end
end

-- The key to send is the number of responses seen, not a call counter: wrk
-- calls request() once more than it sends (to count pipelined requests), and
-- with one connection the next request always follows the last response.
function request()
   return puts[math.min(responses, nkeys - 1) + 1]
end

function response(status, headers, body)
   responses = responses + 1
   if status < 200 or status > 299 then
      if failures == 0 then io.stderr:write("preload: first failure: HTTP " .. status .. " " .. body .. "\n") end
      failures = failures + 1
   end
   if responses < nkeys then return end
   if failures > 0 then
      io.stderr:write(string.format("preload: %d of %d PUTs failed\n", failures, nkeys))
      io.stderr:flush()
      os.exit(1)
   end
   io.write(string.format("preload: ok, %d keys written\n", nkeys))
   io.flush()
   os.exit(0)
end
