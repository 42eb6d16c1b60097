-- replay.lua: wrk script that POSTs pre-built requests from a file, one after
-- another (the Shopify webhook intake: each line a signed delivery), so the
-- pace is wrk's, not a signing client's.
--
-- Arguments (after `--`): path, requests file, first line (1-based), delay ms
-- between a connection's requests (0: closed loop, as fast as answered).
-- Each line of the file: <header>=<value>|<header>=<value>|...\t<body>.
-- When the file is used up it starts again from its first line (duplicates).
-- done() prints "statuses <code>=<count> ..." (checked by the caller).
-- wrk calls request() once per thread before connecting and does not send
-- that request: a run's first line is never sent.

dofile((debug.getinfo(1, "S").source:sub(2):match("^(.*/)") or "./") .. "statuses.lua")
local entries = {}
local path, next_i, delay_ms

function setup(thread)
  track(thread)
end

function init(args)
  path = args[1]
  for line in io.lines(args[2]) do
    local head, body = line:match("^([^\t]*)\t(.*)$")
    local headers = {["Content-Type"] = "application/json"}
    for kv in head:gmatch("[^|]+") do
      local k, v = kv:match("^([^=]+)=(.*)$")
      headers[k] = v
    end
    entries[#entries + 1] = wrk.format("POST", path, headers, body)
  end
  next_i = tonumber(args[3]) or 1
  delay_ms = tonumber(args[4]) or 0
end

function request()
  local r = entries[next_i]
  next_i = next_i + 1
  if next_i > #entries then next_i = 1 end
  return r
end

function delay()
  return delay_ms
end
