-- post.lua: wrk script that POSTs one fixed JSON body, each request with its
-- own Idempotency-Key when asked (the yardstick comparison, the hot path).
--
-- Arguments (after `--`): bearer key ("-" for none), path, body, "idem" or "-".
-- done() prints "statuses <code>=<count> ..." so the caller can check that
-- every answer was the expected one.

dofile((debug.getinfo(1, "S").source:sub(2):match("^(.*/)") or "./") .. "statuses.lua")
local n_threads = 0
local headers, path, body, idem
local tag, sent = "", 0

function setup(thread)
  n_threads = n_threads + 1
  thread:set("tid", n_threads)
  track(thread)
end

function init(args)
  path, body, idem = args[2], args[3], args[4] == "idem"
  headers = {["Content-Type"] = "application/json"}
  if args[1] ~= "-" then headers["Authorization"] = "Bearer " .. args[1] end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
  tag = string.format("%d-%08x", tid or 0, math.random(0, 0x7fffffff))
end

function request()
  if idem then
    sent = sent + 1
    headers["Idempotency-Key"] = tag .. "-" .. sent
  end
  return wrk.format("POST", path, headers, body)
end
