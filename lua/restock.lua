-- restock.lua: record a return of shipped units; restocked units go back on hand.
--
-- Works for orders of both channels. Units returned with restock raise on
-- hand (and so available), which fills the SKU's waiting lines oldest first
-- in the same call; units returned without restock are written off (on hand
-- unchanged: they already left it when they shipped).
--
-- KEYS[1]  merchant prefix (see lib.lua for the derived key patterns)
-- KEYS[2]  the merchant's guard (never touched; see lib.lua)
-- ARGV     common ARGV[1..7] (lib.lua); ARGV[6] command:
--   return_id  string, 1-64 of [A-Za-z0-9_-]
--   order_id   string
--   reason     optional string, at most 500 characters
--   lines      array of 1-500 {sku, qty, restock (boolean)}
--
-- Returns (JSON, replayed flag):
--   ok          {order_id, order, return = {id, reason, lines}, fills, more}
--   conflict    {reason = "return_exceeds_shipped" (sku, requested, returnable)
--               | "not_on_order" (sku)}                             (stored)
--   not_found   {kind = "order"}
--   invalid     {field, detail}
--   not_ready, idempotency_key_reused
--
-- Writes: P:o:<order> (and the orders a fill reaches), P:s:<sku>, P:r:<sku>,
--   P:wd:<sku>, P:ww:<sku>, P:outbox, P:dirty, P:dirtyat, P:fillq, P:unsynced,
--   P:i:<op>, P:if:<op>
--
-- Invariant kept: returned <= shipped on every line.

local cmd, early = begin()
if early then return early end

local rid, oid = cmd.return_id, cmd.order_id
if not is_id(rid) then return invalid('return_id', 'must be 1-64 of [A-Za-z0-9_-]') end
if not is_id(oid) then return invalid('order_id', 'must be 1-64 of [A-Za-z0-9_-]') end
if not opt_string(cmd.reason, 500) then return invalid('reason', 'at most 500 characters') end
if type(cmd.lines) ~= 'table' or #cmd.lines < 1 or #cmd.lines > MAX_LINES then
  return invalid('lines', 'a return has 1 to 500 lines')
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
  if type(l.restock) ~= 'boolean' then
    return invalid(field .. '.restock', 'must be true or false')
  end
  if not asked[l.sku] then order_of[#order_of + 1] = l.sku end
  asked[l.sku] = (asked[l.sku] or 0) + l.qty
end

local o = load_order(oid)
if not o then return refuse('not_found', 'no such order', {kind = 'order'}) end

-- ---- check (reads only)
for _, sku in ipairs(order_of) do
  local returnable, found = 0, false
  for _, line in ipairs(o.L) do
    if line[L_SKU] == sku then
      found = true
      returnable = returnable + line[L_SHIP] - line[L_RET]
    end
  end
  if not found then
    return refuse_outcome('conflict', 'the order has no line with this SKU',
      {reason = 'not_on_order', sku = sku})
  end
  if asked[sku] > returnable then
    return refuse_outcome('conflict', 'cannot return more than was shipped',
      {reason = 'return_exceeds_shipped', sku = sku, requested = asked[sku],
       returnable = returnable})
  end
end

-- ---- write
local returned, restocked = {}, {}
for _, l in ipairs(cmd.lines) do
  local left = l.qty
  for i, line in ipairs(o.L) do
    if left == 0 then break end
    local can = line[L_SHIP] - line[L_RET]
    if line[L_SKU] == l.sku and can > 0 then
      local t = math.min(can, left)
      line[L_RET] = line[L_RET] + t
      touch_order(o)
      if line[L_POOL] == 1 then
        local s = load_sku(l.sku)
        if l.restock then
          s.oh = s.oh + t
          s.touched = true
          ledger(l.sku, oid, 'return_restock', t, 0, 0, 0, 0, 0)
          restocked[#restocked + 1] = l.sku
        else
          ledger(l.sku, oid, 'return_write_off', 0, 0, 0, 0, 0, 0, t)
        end
      end
      returned[#returned + 1] = {sku = l.sku, line = i - 1, quantity = t, restock = l.restock}
      left = left - t
    end
  end
end
fill_all(restocked)

local ret = {id = rid, order_id = oid, reason = cmd.reason or cjson.null, lines = returned,
             returned_at_ms = NOW_MS}
local entry = cjson.encode(ret)
if o.R == '[]' then o.R = '[' .. entry .. ']'
else o.R = string.sub(o.R, 1, -2) .. ',' .. entry .. ']' end

return commit('order.returned', {order_id = oid, ['return'] = ret}, {['return'] = ret})
