-- cancel.lua: cancel an order's unshipped units (all of them, or some per SKU).
--
-- Per SKU the units come from exception units first, then backordered ones,
-- then reserved ones (each kind across the SKU's lines in line order). Released reserved units raise
-- available, so the same call fills that SKU's waiting lines, oldest first.
--
-- KEYS[1]  merchant prefix (see lib.lua for the derived key patterns)
-- ARGV     common ARGV[1..7] (lib.lua); ARGV[6] command:
--   order_id  string
--   lines     optional array of 1-500 {sku, qty}; absent or null: the whole
--             unshipped remainder. sku matches the order's lines exactly
--             ("" addresses lines that came without a SKU).
--
-- Returns (JSON, replayed flag):
--   ok          {order_id, order, cancelled = [{sku, line, units}], fills, more}
--   conflict    {reason = "cancel_exceeds_open" (with sku, requested, open)
--               | "nothing_to_cancel" | "not_on_order" (with sku)}   (stored)
--   not_found   {kind = "order"}
--   invalid     {field, detail}
--   not_ready, idempotency_key_reused
--
-- Writes: P:o:<order>, P:s:<sku>, P:r:<sku>, P:wd:<sku>, P:ww:<sku> (also of
--   the orders the fill reaches), P:outbox, P:dirty, P:dirtyat, P:fillq, P:unsynced,
--   P:i:<op>, P:if:<op>
--
-- Invariant kept: quantity = reserved + backordered + exception + shipped +
-- cancelled on every line; shipped units are never cancelled.

local cmd, early = begin()
if early then return early end

local oid = cmd.order_id
if not is_id(oid) then return invalid('order_id', 'must be 1-64 of [A-Za-z0-9_-]') end
local want = nil
if cmd.lines ~= nil and cmd.lines ~= cjson.null then
  if type(cmd.lines) ~= 'table' or #cmd.lines < 1 or #cmd.lines > MAX_LINES then
    return invalid('lines', 'give 1 to 500 lines, or none for the whole order')
  end
  want = {}
  for i, l in ipairs(cmd.lines) do
    local field = 'lines[' .. (i - 1) .. ']'
    if type(l) ~= 'table' or type(l.sku) ~= 'string' or #l.sku > 255 then
      return invalid(field .. '.sku', 'must be a string')
    end
    if not is_int(l.qty, 1, MAX_QTY) then
      return invalid(field .. '.quantity', 'must be an integer from 1 to 1000000000')
    end
    want[#want + 1] = {sku = l.sku, qty = l.qty}
  end
end

local o = load_order(oid)
if not o then return refuse('not_found', 'no such order', {kind = 'order'}) end

local function open_units(line)
  return line[L_EXC] + line[L_BO] + line[L_RES]
end

-- ---- check (reads only)
if want then
  local asked, order_of = {}, {}
  for _, w in ipairs(want) do
    if not asked[w.sku] then order_of[#order_of + 1] = w.sku end
    asked[w.sku] = (asked[w.sku] or 0) + w.qty
  end
  for _, sku in ipairs(order_of) do
    local open, found = 0, false
    for _, line in ipairs(o.L) do
      if line[L_SKU] == sku then
        found = true
        open = open + open_units(line)
      end
    end
    if not found then
      return refuse_outcome('conflict', 'the order has no line with this SKU',
        {reason = 'not_on_order', sku = sku})
    end
    if asked[sku] > open then
      return refuse_outcome('conflict', 'cannot cancel more than the unshipped units',
        {reason = 'cancel_exceeds_open', sku = sku, requested = asked[sku], open = open})
    end
  end
else
  local open = 0
  for _, line in ipairs(o.L) do open = open + open_units(line) end
  if open == 0 then
    return refuse_outcome('conflict', 'nothing left to cancel: every unit shipped or cancelled',
      {reason = 'nothing_to_cancel'})
  end
end

-- ---- write
local cancelled, released = {}, {}
local FIELD_DELTA = {[L_EXC] = 'exc', [L_BO] = 'bo', [L_RES] = 'res'}
-- Cancels up to `units` of one kind (exception, backordered or reserved) on
-- a line; returns how many it took.
local function cancel_kind(idx, field, units)
  local line = o.L[idx + 1]
  local t = math.min(line[field], units)
  if t == 0 then return 0 end
  local d = {canc = t}
  d[FIELD_DELTA[field]] = -t
  move(o, idx, d, 'cancel')
  cancelled[#cancelled + 1] = {sku = line[L_SKU], line = idx, units = t}
  if field == L_RES and line[L_POOL] == 1 then released[#released + 1] = line[L_SKU] end
  return t
end

-- exception units first, then backordered, then reserved, across the lines
for _, field in ipairs({L_EXC, L_BO, L_RES}) do
  if want then
    for _, w in ipairs(want) do
      for i, line in ipairs(o.L) do
        if w.qty == 0 then break end
        if line[L_SKU] == w.sku then w.qty = w.qty - cancel_kind(i - 1, field, w.qty) end
      end
    end
  else
    for i, line in ipairs(o.L) do cancel_kind(i - 1, field, line[field]) end
  end
end
fill_all(released)

return commit('order.cancelled', {order_id = oid, cancelled = cancelled}, {})
