-- fill.lua: go on filling a SKU's waiting lines after a call stopped at the limit.
--
-- A rise in available fills at most ARGV[7] waiting lines per call so that
-- no script runs long; the SKU then carries a continuation marker (fc, and
-- it sits in P:fillq) and new orders take nothing from it until this script
-- has caught up. The store calls this until the reply's `more` is empty.
--
-- KEYS[1]  merchant prefix (see lib.lua for the derived key patterns)
-- KEYS[2]  the merchant's guard (never touched; see lib.lua)
-- ARGV     common ARGV[1..7] (lib.lua); ARGV[6] command:
--   sku     string
--   parent  optional operation id (1-128 chars) whose call stopped at the
--           limit: when the SKU still owed that call's fills (fc was set),
--           the fills made here are appended to its idempotency record
--           (P:i:<parent> fields x, n), so a replay lists every fill the
--           first answer did; the event carries them for PostgreSQL
--
-- Returns (JSON, replayed flag):
--   ok          {sku, inventory, fills = [{sku, order_id, line, units}], more}
--   ok          {sku, fills = [], more = [], idle = true} when there was nothing
--               to fill (no event)
--   not_found   {kind = "sku"}
--   invalid     {field, detail}
--   not_ready, idempotency_key_reused
--
-- Writes: P:s:<sku>, P:r:<sku>, P:wd:<sku>, P:ww:<sku>, P:o:<order> (orders
--   filled), P:outbox, P:dirty, P:dirtyat, P:fillq, P:unsynced, P:i:<parent>
--
-- Invariant kept: waiting lines fill in acceptance order; available >= 0.

local cmd, early = begin()
if early then return early end

local sku = cmd.sku
if not is_sku(sku) then return invalid('sku', 'must be 1-64 of letters, digits and -_.') end
local parent = cmd.parent
if parent == cjson.null then parent = nil end
if parent ~= nil and (type(parent) ~= 'string' or #parent < 1 or #parent > 128) then
  return invalid('parent', 'must be an operation id of 1-128 characters')
end
local s = load_sku(sku)
if not s then return refuse('not_found', 'no such SKU', {kind = 'sku'}) end

fill(sku)
if not s.touched then
  redis.call('SREM', P .. ':fillq', sku)
  return reply({c = 'ok', sku = sku, fills = {}, more = {}, idle = true})
end
local event = {}
local ikey = parent and (P .. ':i:' .. parent)
if ikey and s.fc0 and #FILLS > 0 and redis.call('EXISTS', ikey) == 1 then
  local more = cjson.encode(FILLS)
  local x = redis.call('HGET', ikey, 'x')
  if x then x = string.sub(x, 1, -2) .. ',' .. string.sub(more, 2) else x = more end
  local n = redis.call('HINCRBY', ikey, 'n', #FILLS)
  redis.call('HSET', ikey, 'x', x)
  event.idem_x = {op = parent, x = x, n = n, exp = NOW_MS + math.max(0, redis.call('PTTL', ikey))}
end
return commit('stock.filled', {sku = sku}, event)
