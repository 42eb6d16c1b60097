-- statuses.lua: what every onhand wrk script shares (loaded by each with
-- dofile from its own directory): each thread counts its answers by status
-- in `counts`; setup() adds the thread to `threads` (call track(thread));
-- done() prints "statuses <code>=<count> ..." (checked by the caller).

counts = {}
threads = {}

function track(thread)
  table.insert(threads, thread)
end

function response(status, hdrs, b)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for status, n in pairs(c) do total[status] = (total[status] or 0) + n end
  end
  local parts = {}
  for status, n in pairs(total) do parts[#parts + 1] = status .. "=" .. n end
  io.write("statuses " .. table.concat(parts, " ") .. "\n")
end
