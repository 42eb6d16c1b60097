-- count.lua: set a SKU's on hand by a cycle count, or change it by an adjustment.
--
-- A count or a negative adjustment may find fewer units than are reserved
-- (stock was lost): the shortfall is taken back from the SKU's reservations
-- with the highest acceptance sequence first, so available never goes
-- negative. Taken-back units become exception units on DTC orders, are
-- cancelled on cancel_remainder orders, and become backorders otherwise. A
-- rise in available fills waiting lines oldest first in the same call.
--
-- KEYS[1]  merchant prefix (see lib.lua for the derived key patterns)
-- KEYS[2]  the merchant's guard (never touched; see lib.lua)
-- ARGV     common ARGV[1..7] (lib.lua); ARGV[6] command:
--   sku               string
--   mode              "count" (absolute) | "adjust" (relative)
--   on_hand           count: integer 0..10^9, the units found
--   expected_on_hand  count, optional: refuse when on hand has moved since
--   delta             adjust: integer -10^9..10^9, not 0
--   reason            "count" | "damage" | "found" | "other"
--
-- Returns (JSON, replayed flag):
--   ok          {sku, inventory, before, after, taken_back = [{order_id, line,
--               sku, units, became}], fills, more}
--   conflict    {reason = "count_stale" (expected, on_hand)
--               | "negative_on_hand" (on_hand, delta)}              (stored)
--   not_found   {kind = "sku"}
--   invalid     {field, detail}
--   not_ready, idempotency_key_reused
--
-- Writes: P:s:<sku>, P:r:<sku>, P:wd:<sku>, P:ww:<sku>, P:o:<order> (orders
--   that lose or gain units), P:outbox, P:dirty, P:dirtyat, P:fillq, P:unsynced,
--   P:i:<op>, P:if:<op>
--
-- Invariant kept: on_hand >= 0 and available = on_hand - reserved >= 0.

local cmd, early = begin()
if early then return early end

local REASONS = {count = true, damage = true, found = true, other = true}
local sku, mode = cmd.sku, cmd.mode
if not is_sku(sku) then return invalid('sku', 'must be 1-64 of letters, digits and -_.') end
if mode ~= 'count' and mode ~= 'adjust' then return invalid('mode', 'must be count or adjust') end
if type(cmd.reason) ~= 'string' or not REASONS[cmd.reason] then
  return invalid('reason', 'must be count, damage, found or other')
end
local expected = cmd.expected_on_hand
if expected == cjson.null then expected = nil end
if mode == 'count' then
  if not is_int(cmd.on_hand, 0, MAX_QTY) then
    return invalid('on_hand', 'must be an integer from 0 to 1000000000')
  end
  if expected ~= nil and not is_int(expected, 0, 1e15) then
    return invalid('expected_on_hand', 'must be a non-negative integer')
  end
else
  if not is_int(cmd.delta, -MAX_QTY, MAX_QTY) or cmd.delta == 0 then
    return invalid('delta', 'must be a non-zero integer from -1000000000 to 1000000000')
  end
end

local s = load_sku(sku)
if not s then return refuse('not_found', 'no such SKU', {kind = 'sku'}) end

-- ---- check (reads only)
local before = s.oh
local after
if mode == 'count' then
  if expected ~= nil and expected ~= before then
    return refuse_outcome('conflict', 'on hand moved since the count was taken',
      {reason = 'count_stale', expected = expected, on_hand = before})
  end
  after = cmd.on_hand
else
  after = before + cmd.delta
  if after < 0 then
    return refuse_outcome('conflict', 'an adjustment cannot take on hand below zero',
      {reason = 'negative_on_hand', on_hand = before, delta = cmd.delta})
  end
end

-- ---- write
local avail_before = available(s)
s.oh = after
s.touched = true
ledger(sku, '', mode .. ':' .. cmd.reason, after - before, 0, 0, 0, 0, 0)
local taken = {}
local reserved = s.rd + s.rw
if after < reserved then taken = take_back(sku, reserved - after) end
if available(s) > avail_before then fill(sku) end

return commit(mode == 'count' and 'stock.counted' or 'stock.adjusted',
  {sku = sku, before = before, after = after, taken_back = taken},
  {stock = {sku = sku, before = before, after = after, reason = cmd.reason}})
