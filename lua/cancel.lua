-- cancel.lua: cancel an order's unshipped units (all of them, or some per SKU).
--
-- Per SKU the units come from exception units first, then backordered ones,
-- then reserved ones (each kind across the SKU's lines in line order). Released reserved units raise
-- available, so the same call fills that SKU's waiting lines, oldest first.
--
-- KEYS[1]  merchant prefix (see lib.lua for the derived key patterns)
-- KEYS[2]  the merchant's guard (never touched; see lib.lua)
-- ARGV     common ARGV[1..7] (lib.lua); ARGV[6] command:
--   order_id  string
--   lines     optional array of 1-500 {sku, qty} or {line, qty}; absent or
--             null: the whole unshipped remainder. sku matches the order's
--             lines exactly ("" addresses lines that came without a SKU, any
--             other text a Shopify line's unknown SKU); line is a 0-based
--             line index (a line whose SKU is missing or malformed).
--
-- Returns (JSON, replayed flag):
--   ok          {order_id, order, cancelled = [{sku, line, units}], fills, more}
--   conflict    {reason = "cancel_exceeds_open" (with sku or line, requested,
--               open) | "nothing_to_cancel" | "not_on_order" (with sku or
--               line)}                                               (stored)
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
    if type(l) ~= 'table' then return invalid(field, 'must be an object') end
    local by_line = l.line ~= nil and l.line ~= cjson.null
    if by_line then
      if l.sku ~= nil and l.sku ~= cjson.null then
        return invalid(field, 'give sku or line, not both')
      end
      if not is_int(l.line, 0, MAX_LINES - 1) then
        return invalid(field .. '.line', 'must be a line index from 0 to 499')
      end
    elseif type(l.sku) ~= 'string' or #l.sku > 255 then
      return invalid(field .. '.sku', 'must be a string')
    end
    if not is_int(l.qty, 1, MAX_QTY) then
      return invalid(field .. '.quantity', 'must be an integer from 1 to 1000000000')
    end
    want[#want + 1] = {sku = (not by_line) and l.sku or nil, idx = by_line and l.line or nil,
                       qty = l.qty}
  end
end

local o = load_order(oid)
if not o then return refuse('not_found', 'no such order', {kind = 'order'}) end

local function addresses(w, idx)
  if w.idx ~= nil then return w.idx == idx end
  return o.L[idx + 1][L_SKU] == w.sku
end

local function who(w)
  if w.idx ~= nil then return {line = w.idx} end
  return {sku = w.sku}
end

-- ---- plan (reads only): per SKU or line, exception units first, then
-- backordered, then reserved, across the lines it addresses in line order
local KINDS = {L_EXC, L_BO, L_RES}
local left = {}  -- idx -> {[field] = units not yet planned}
for i, line in ipairs(o.L) do
  left[i - 1] = {[L_EXC] = line[L_EXC], [L_BO] = line[L_BO], [L_RES] = line[L_RES]}
end
local plan = {}  -- {idx, field, units}
if want then
  for _, w in ipairs(want) do
    local found = false
    for i = 1, #o.L do
      if addresses(w, i - 1) then found = true break end
    end
    if not found then
      local r = who(w)
      r.reason = 'not_on_order'
      return refuse_outcome('conflict', 'the order has no such line', r)
    end
  end
  local need = {}
  for k, w in ipairs(want) do need[k] = w.qty end
  for _, field in ipairs(KINDS) do
    for k, w in ipairs(want) do
      for i = 1, #o.L do
        if need[k] == 0 then break end
        local idx = i - 1
        if addresses(w, idx) then
          local t = math.min(left[idx][field], need[k])
          if t > 0 then
            left[idx][field] = left[idx][field] - t
            need[k] = need[k] - t
            plan[#plan + 1] = {idx, field, t}
          end
        end
      end
    end
  end
  for k, w in ipairs(want) do
    if need[k] > 0 then
      local requested, open = 0, 0
      for _, v in ipairs(want) do
        if (w.idx ~= nil and v.idx == w.idx) or (w.idx == nil and v.idx == nil and v.sku == w.sku) then
          requested = requested + v.qty
        end
      end
      for i, line in ipairs(o.L) do
        if addresses(w, i - 1) then open = open + line[L_EXC] + line[L_BO] + line[L_RES] end
      end
      local r = who(w)
      r.reason, r.requested, r.open = 'cancel_exceeds_open', requested, open
      return refuse_outcome('conflict', 'cannot cancel more than the unshipped units', r)
    end
  end
else
  for _, field in ipairs(KINDS) do
    for i, line in ipairs(o.L) do
      if line[field] > 0 then plan[#plan + 1] = {i - 1, field, line[field]} end
    end
  end
  if #plan == 0 then
    return refuse_outcome('conflict', 'nothing left to cancel: every unit shipped or cancelled',
      {reason = 'nothing_to_cancel'})
  end
end

-- ---- write
local cancelled, released = {}, {}
local FIELD_DELTA = {[L_EXC] = 'exc', [L_BO] = 'bo', [L_RES] = 'res'}
for _, step in ipairs(plan) do
  local idx, field, t = step[1], step[2], step[3]
  local line = o.L[idx + 1]
  local d = {canc = t}
  d[FIELD_DELTA[field]] = -t
  move(o, idx, d, 'cancel')
  cancelled[#cancelled + 1] = {sku = line[L_SKU], line = idx, units = t}
  if field == L_RES and line[L_POOL] == 1 then released[#released + 1] = line[L_SKU] end
end
fill_all(released)

return commit('order.cancelled', {order_id = oid, cancelled = cancelled}, {})
