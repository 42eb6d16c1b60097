-- ship.lua: record one shipment of an order; it consumes reserved units.
--
-- On hand and reserved both drop by the shipped units (available does not
-- move). Each shipment is appended to the order with its own id and tracking,
-- so partial shipments stay separately tracked. A ship_complete order ships
-- nothing until no line has backordered or exception units left; once it has
-- shipped (it was complete then), it ships in parts like any other, even if a
-- count took units back from it since (API.md: "after that it may ship in
-- parts").
--
-- KEYS[1]  merchant prefix (see lib.lua for the derived key patterns)
-- KEYS[2]  the merchant's guard (never touched; see lib.lua)
-- ARGV     common ARGV[1..7] (lib.lua); ARGV[6] command:
--   order_id  string
--   shipment  JSON object as a string: {id, method, carrier, service,
--             tracking_number, tracking_url, packages, pallets,
--             bill_of_lading, weight_lb, cartons}; id 1-64 chars; cartons
--             (optional) array of 1-5000 {lines, weight_lb, pallet}, pallet
--             an integer 1-5000 (the pallet the carton is on)
--   lines     array of 1-500 {sku, qty}; spread over the order's lines of
--             that SKU in line order
--   sscc_prefix  string of 8-11 digits (extension digit + GS1 company
--             prefix), or "" / absent: cartons get no SSCC. With it, every
--             carton and every pallet a carton names gets the next serial of
--             P:sscc and its SSCC-18 (prefix, serial zero-padded to 17
--             digits, mod-10 check digit): carton.sscc, carton.serial,
--             shipment.pallet_ssccs[n], shipment.pallet_serials[n]
--
-- Key patterns: P:sscc  integer  the last SSCC serial handed out (never goes
--   back; a rebuild restores it above PostgreSQL's highest, with a gap)
--
-- Returns (JSON, replayed flag):
--   ok          {order_id, order, shipment, fills = [], more = []}
--   conflict    {reason = "ship_exceeds_reserved" (sku, requested, reserved)
--               | "not_complete" | "not_on_order" (sku)
--               | "sscc_exhausted" (the serials after this prefix are used up)}  (stored)
--   not_found   {kind = "order"}
--   invalid     {field, detail}
--   not_ready, idempotency_key_reused
--
-- Writes: P:o:<order>, P:s:<sku>, P:r:<sku>, P:outbox, P:dirty, P:dirtyat, P:unsynced,
--   P:sscc, P:i:<op>, P:if:<op>
--
-- Invariant kept: only reserved units ship; on_hand - reserved is unchanged;
-- an SSCC serial is handed out once.

local cmd, early = begin()
if early then return early end

local oid = cmd.order_id
if not is_id(oid) then return invalid('order_id', 'must be 1-64 of [A-Za-z0-9_-]') end
if type(cmd.shipment) ~= 'string' then return invalid('shipment', 'must be a JSON string') end
local okd, shipment = pcall(cjson.decode, cmd.shipment)
if not okd or type(shipment) ~= 'table' or not is_id(shipment.id) then
  return invalid('shipment', 'must be a JSON object with an id')
end
if type(cmd.lines) ~= 'table' or #cmd.lines < 1 or #cmd.lines > MAX_LINES then
  return invalid('lines', 'a shipment has 1 to 500 lines')
end
local MAX_CARTONS = 5000
local cartons, pallets = shipment.cartons, 0
if cartons == cjson.null then cartons = nil end
if cartons ~= nil then
  if type(cartons) ~= 'table' or #cartons < 1 or #cartons > MAX_CARTONS then
    return invalid('shipment.cartons', 'a shipment has 1 to 5000 cartons')
  end
  for i, c in ipairs(cartons) do
    if type(c) ~= 'table' then return invalid('cartons[' .. (i - 1) .. ']', 'must be an object') end
    if c.pallet ~= nil and c.pallet ~= cjson.null then
      if not is_int(c.pallet, 1, MAX_CARTONS) then
        return invalid('cartons[' .. (i - 1) .. '].pallet', 'must be an integer from 1 to 5000')
      end
      pallets = math.max(pallets, c.pallet)
    end
  end
end
local prefix = cmd.sscc_prefix
if prefix == cjson.null then prefix = nil end
if prefix ~= nil and prefix ~= '' then
  if type(prefix) ~= 'string' or #prefix < 8 or #prefix > 11 or not string.find(prefix, '^%d+$') then
    return invalid('sscc_prefix', 'must be 8-11 digits: extension digit and GS1 company prefix')
  end
else
  prefix = nil
end
local asked, order_of = {}, {}
for i, l in ipairs(cmd.lines) do
  local field = 'lines[' .. (i - 1) .. ']'
  if type(l) ~= 'table' or type(l.sku) ~= 'string' or #l.sku > 255 then
    return invalid(field .. '.sku', 'must be a string')
  end
  if not is_int(l.qty, 1, MAX_QTY) then
    return invalid(field .. '.quantity', 'must be an integer from 1 to 1000000000')
  end
  if not asked[l.sku] then order_of[#order_of + 1] = l.sku end
  asked[l.sku] = (asked[l.sku] or 0) + l.qty
end

local o = load_order(oid)
if not o then return refuse('not_found', 'no such order', {kind = 'order'}) end

-- ---- check (reads only)
if o.p == 'ship_complete' and o.S == '[]' then
  for _, line in ipairs(o.L) do
    if line[L_BO] + line[L_EXC] > 0 then
      return refuse_outcome('conflict', 'a ship_complete order ships only when every line is reserved',
        {reason = 'not_complete'})
    end
  end
end
for _, sku in ipairs(order_of) do
  local reserved, found = 0, false
  for _, line in ipairs(o.L) do
    if line[L_SKU] == sku then
      found = true
      reserved = reserved + line[L_RES]
    end
  end
  if not found then
    return refuse_outcome('conflict', 'the order has no line with this SKU',
      {reason = 'not_on_order', sku = sku})
  end
  if asked[sku] > reserved then
    return refuse_outcome('conflict', 'cannot ship more than is reserved',
      {reason = 'ship_exceeds_reserved', sku = sku, requested = asked[sku], reserved = reserved})
  end
end

local serials = 0
if cartons ~= nil and prefix ~= nil then
  serials = #cartons + pallets
  local last = tonumber(redis.call('GET', P .. ':sscc') or '0')
  if last + serials >= 10 ^ (17 - #prefix) then
    return refuse_outcome('conflict', 'no SSCC serials are left after this company prefix',
      {reason = 'sscc_exhausted'})
  end
end

-- ---- write
if serials > 0 then
  local first = redis.call('INCRBY', P .. ':sscc', serials) - serials + 1
  local width = 17 - #prefix
  local function sscc(serial)
    local data = prefix .. string.format('%0' .. width .. 'd', serial)
    local sum = 0
    for i = 1, 17 do  -- weights 3, 1, 3, ... from the rightmost data digit
      sum = sum + tonumber(string.sub(data, 18 - i, 18 - i)) * ((i % 2 == 1) and 3 or 1)
    end
    return data .. tostring((10 - sum % 10) % 10)
  end
  for i, c in ipairs(cartons) do
    c.serial = first + i - 1
    c.sscc = sscc(c.serial)
  end
  if pallets > 0 then
    local codes, numbers = {}, {}
    for n = 1, pallets do
      numbers[n] = first + #cartons + n - 1
      codes[n] = sscc(numbers[n])
    end
    shipment.pallet_ssccs = codes
    shipment.pallet_serials = numbers
  end
end
local shipped = {}
for _, sku in ipairs(order_of) do
  local left = asked[sku]
  for i, line in ipairs(o.L) do
    if left == 0 then break end
    if line[L_SKU] == sku and line[L_RES] > 0 then
      local t = math.min(line[L_RES], left)
      move(o, i - 1, {res = -t, ship = t}, 'ship')
      shipped[#shipped + 1] = {sku = sku, line = i - 1, quantity = t}
      left = left - t
    end
  end
end
shipment.lines = shipped
shipment.order_id = oid
shipment.shipped_at_ms = NOW_MS
local entry = cjson.encode(shipment)
if o.S == '[]' then o.S = '[' .. entry .. ']'
else o.S = string.sub(o.S, 1, -2) .. ',' .. entry .. ']' end

return commit('order.shipped', {order_id = oid, shipment = shipment}, {shipment = shipment})
