-- wrk script for bench/provider.sh: JSON-RPC POST bodies for lead_provider.
-- Usage: wrk ... -s bench/provider.lua URL -- MODE TOKEN [DOMAINS_FILE [BATCH]]
--   MODE balance: /iap/1/balance calls
--   MODE enrich:  /iap/clearbit/1/lead_enrichment_email with BATCH domains
--                 (default 50) taken in turn from DOMAINS_FILE (one a line)
-- Every request gets its own JSON-RPC id: a repeated id would be answered
-- from the replay store, free and without work.

local counter = 1
local threads = {}

function setup(thread)
   thread:set("tid", counter)
   table.insert(threads, thread)
   counter = counter + 1
end

function init(args)
   mode = args[1] or "balance"
   token = args[2] or "bench"
   batch = tonumber(args[4] or "50")
   domains = {}
   if args[3] then
      for line in io.lines(args[3]) do
         if #line > 0 then domains[#domains + 1] = line end
      end
   end
   n = 0
   pos = ((tid or 1) * 7919) % math.max(#domains, 1)
   run = tostring(os.time())
   if mode == "enrich" then
      path = "/iap/clearbit/1/lead_enrichment_email"
   else
      path = "/iap/1/balance"
   end
   headers = {["Content-Type"] = "application/json"}
end

function request()
   n = n + 1
   local id = string.format("bench-%s-%d-%d", run, tid or 0, n)
   local body
   if mode == "enrich" then
      local parts = {}
      for i = 1, batch do
         pos = pos % #domains + 1
         parts[i] = string.format('"%d": "%s"', i, domains[pos])
      end
      body = string.format('{"jsonrpc": "2.0", "method": "call", "id": "%s", '
         .. '"params": {"account_token": "%s", "dbuuid": "bench", '
         .. '"domains": {%s}}}', id, token, table.concat(parts, ", "))
   else
      body = string.format('{"jsonrpc": "2.0", "method": "call", "id": "%s", '
         .. '"params": {"account_token": "%s", "dbuuid": "bench", '
         .. '"service_name": "reveal"}}', id, token)
   end
   return wrk.format("POST", path, headers, body)
end

errors = 0
function response(status, headers, body)
   if status ~= 200 or string.find(body, '"error"', 1, true) then
      errors = errors + 1
   end
end

function done(summary, latency, requests)
   local e = 0
   for _, t in ipairs(threads) do
      e = e + (t:get("errors") or 0)
   end
   io.write(string.format("rpc-errors: %d\n", e))
end
