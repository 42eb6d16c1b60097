-- receive.lua: stock arrived; on hand rises and waiting lines fill.
--
-- Each SKU's rise fills its open backorders and exception units in acceptance
-- order inside the same call (wholesale lines only down to dtc_reserve). A
-- receipt reference can be used once, so a re-sent delivery note cannot count
-- the same goods twice.
--
-- KEYS[1]  merchant prefix (see lib.lua for the derived key patterns)
-- KEYS[2]  the merchant's guard (never touched; see lib.lua)
-- ARGV     common ARGV[1..7] (lib.lua); ARGV[6] command:
--   receipt_id  string, 1-64 of [A-Za-z0-9_-]
--   reference   optional string, 1-128 characters, unique among receipts
--   lines       array of 1-5000 {sku, qty}; a SKU named twice is summed
--
-- Returns (JSON, replayed flag):
--   ok          {receipt = {id, reference, lines}, fills = [{sku, order_id,
--               line, units}], more}
--   conflict    {reason = "reference_used", receipt_id}             (stored)
--   not_found   {kind = "sku", skus = [...]}
--   invalid     {field, detail}
--   not_ready, idempotency_key_reused
--
-- Writes: P:rref (hash reference -> receipt id), P:s:<sku>, P:r:<sku>,
--   P:wd:<sku>, P:ww:<sku>, P:o:<order> (orders filled), P:outbox, P:dirty, P:dirtyat,
--   P:fillq, P:unsynced, P:i:<op>, P:if:<op>
--
-- Invariant kept: fills never take available below zero nor a wholesale fill
-- below dtc_reserve; older waiting lines fill before newer ones.

local cmd, early = begin()
if early then return early end

local rid, ref = cmd.receipt_id, cmd.reference
if not is_id(rid) then return invalid('receipt_id', 'must be 1-64 of [A-Za-z0-9_-]') end
if ref == cjson.null then ref = nil end
if ref ~= nil and (type(ref) ~= 'string' or #ref < 1 or #ref > 128) then
  return invalid('reference', 'must be 1-128 characters')
end
if type(cmd.lines) ~= 'table' or #cmd.lines < 1 or #cmd.lines > 5000 then
  return invalid('lines', 'a receipt has 1 to 5000 lines')
end
local qty, order_of = {}, {}
for i, l in ipairs(cmd.lines) do
  local field = 'lines[' .. (i - 1) .. ']'
  if type(l) ~= 'table' or not is_sku(l.sku) then
    return invalid(field .. '.sku', 'must be 1-64 of letters, digits and -_.')
  end
  if not is_int(l.qty, 1, MAX_QTY) then
    return invalid(field .. '.quantity', 'must be an integer from 1 to 1000000000')
  end
  if not qty[l.sku] then order_of[#order_of + 1] = l.sku end
  qty[l.sku] = (qty[l.sku] or 0) + l.qty
end

-- ---- check (reads only)
local missing = {}
for _, sku in ipairs(order_of) do
  if not load_sku(sku) then missing[#missing + 1] = sku end
end
if #missing > 0 then
  return refuse('not_found', 'unknown SKU', {kind = 'sku', skus = missing})
end
if ref then
  local used = redis.call('HGET', P .. ':rref', ref)
  if used then
    return refuse_outcome('conflict', 'this receipt reference was already used',
      {reason = 'reference_used', receipt_id = used})
  end
end

-- ---- write
if ref then redis.call('HSET', P .. ':rref', ref, rid) end
local received = {}
for _, sku in ipairs(order_of) do
  local s = SKUS[sku]
  s.oh = s.oh + qty[sku]
  s.touched = true
  ledger(sku, '', 'receipt', qty[sku], 0, 0, 0, 0, 0)
  received[#received + 1] = {sku = sku, quantity = qty[sku]}
end
fill_all(order_of)

local receipt = {id = rid, reference = ref or cjson.null, lines = received,
                 received_at_ms = NOW_MS}
return commit('stock.received', {receipt = receipt}, {receipt = receipt})
