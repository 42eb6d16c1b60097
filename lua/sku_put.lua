-- sku_put.lua: create or update a SKU (its details and its DTC ring-fence).
--
-- dtc_reserve ring-fences units for DTC: wholesale reservations and
-- wholesale fills never take available below it. Lowering it raises what
-- wholesale may take, so the same call fills waiting wholesale lines (oldest
-- first). Raising it takes nothing back from reservations already made.
--
-- KEYS[1]  merchant prefix (see lib.lua for the derived key patterns)
-- KEYS[2]  the merchant's guard (never touched; see lib.lua)
-- ARGV     common ARGV[1..7] (lib.lua); ARGV[6] command:
--   sku          string, 1-64 of letters, digits and -_. (not starting with .)
--   meta         optional object merged into the SKU's details: name (<= 255
--                chars), upc (<= 64), case_pack (integer 1..10^6),
--                shopify_inventory_item_id (<= 128); a null value clears a field
--   dtc_reserve  optional integer 0..10^9
--
-- Returns (JSON, replayed flag):
--   ok          {sku, inventory, created (boolean), fills, more}
--   invalid     {field, detail}
--   not_ready, idempotency_key_reused
--
-- Writes: P:s:<sku>, P:skus, P:r:<sku>, P:ww:<sku>, P:o:<order> (orders
--   filled), P:outbox, P:dirty, P:dirtyat, P:fillq, P:unsynced, P:i:<op>, P:if:<op>
--
-- Invariant kept: a fill never takes available below dtc_reserve for a
-- wholesale line, nor below zero for any line.

local cmd, early = begin()
if early then return early end

local FIELDS = {name = 255, upc = 64, shopify_inventory_item_id = 128}
local sku = cmd.sku
if not is_sku(sku) then
  return invalid('sku', 'must be 1-64 of letters, digits and -_. not starting with .')
end
local meta = cmd.meta
if meta == nil or meta == cjson.null then meta = {} end
if type(meta) ~= 'table' then return invalid('meta', 'must be an object') end
for k, v in pairs(meta) do
  if k == 'case_pack' then
    if v ~= cjson.null and not is_int(v, 1, 1000000) then
      return invalid('case_pack', 'must be an integer from 1 to 1000000')
    end
  elseif FIELDS[k] then
    if v ~= cjson.null and (type(v) ~= 'string' or #v > FIELDS[k]) then
      return invalid(k, 'must be a string of at most ' .. FIELDS[k] .. ' characters')
    end
  else
    return invalid(tostring(k), 'unknown SKU field')
  end
end
local fence = cmd.dtc_reserve
if fence == cjson.null then fence = nil end
if fence ~= nil and not is_int(fence, 0, MAX_QTY) then
  return invalid('dtc_reserve', 'must be an integer from 0 to 1000000000')
end

-- ---- write (no check can fail past this point)
local s = load_sku(sku)
local created = false
if not s then
  s = new_sku(sku)
  created = true
end
local details = cjson.decode(s.m)
for k, v in pairs(meta) do
  if v == cjson.null then details[k] = nil else details[k] = v end
end
s.m = cjson.encode(details)
s.touched = true
local atw_before = available_to_wholesale(s)
if fence ~= nil then s.fence = fence end
if available_to_wholesale(s) > atw_before then fill(sku) end

return commit('sku.put', {sku = sku, created = created}, {})
