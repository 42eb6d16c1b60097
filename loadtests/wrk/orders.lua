-- orders.lua: wrk script that POSTs one-unit DTC orders (all_or_nothing).
--
-- Arguments (after `--`): admin key, SKU prefix, SKU count.
--   SKU count 1: every order names "<prefix>" (the hot SKU of a flash sale);
--   N > 1: each order names "<prefix>-<k>" with k uniform in 0..N-1 (spread).
-- done() prints one line "statuses <code>=<count> ..." per run, so the
-- caller can check that every answer was a 201 (or say what else came back).

dofile((debug.getinfo(1, "S").source:sub(2):match("^(.*/)") or "./") .. "statuses.lua")
local key, prefix, spread

function setup(thread)
  track(thread)
end

function init(args)
  key, prefix, spread = args[1], args[2], tonumber(args[3] or "1")
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Bearer " .. key
  wrk.headers["Content-Type"] = "application/json"
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end

local function body(sku)
  return '{"channel":"dtc","lines":[{"sku":"' .. sku .. '","quantity":1}]}'
end

function request()
  local sku = prefix
  if spread > 1 then sku = prefix .. "-" .. math.random(0, spread - 1) end
  return wrk.format(nil, "/v1/orders", nil, body(sku))
end
