-- reserve.lua: accept a new order and reserve all its lines in one step.
--
-- Every line is reserved in the same atomic call from the one pool both
-- channels share. What stock cannot cover is handled by the order's backorder
-- policy: backorder / ship_complete (backordered), cancel_remainder
-- (cancelled), accept (exception units, DTC only), all_or_nothing (refuse the
-- whole order, nothing written). Wholesale lines take at most
-- available_to_wholesale (available - dtc_reserve); DTC lines may use all of
-- available. Lines naming the same SKU draw on it one after the other.
--
-- KEYS[1]  merchant prefix (see lib.lua for the derived key patterns)
-- ARGV     common ARGV[1..7] (lib.lua); ARGV[6] command:
--   order_id     string, 1-64 of [A-Za-z0-9_-]; must not exist yet
--   channel      "dtc" | "wholesale"
--   policy       "backorder" | "ship_complete" | "cancel_remainder" |
--                "all_or_nothing" | "accept" (accept: DTC only)
--   doc          string, the order's header as JSON (opaque here), <= 2 MiB
--   lines        array of 1-500 {sku, qty}; qty integer 1..10^9
--   unknown_sku  "refuse" (default: a line naming a missing SKU refuses the
--                order) | "exception" (Shopify intake: the line keeps its SKU
--                or "" and becomes exception units that never touch a counter)
--   test         boolean: record the order, reserve nothing (units cancelled)
--
-- Returns (JSON, replayed flag):
--   ok                    {order_id, order = snapshot, fills = [], more = []}
--   insufficient_stock    {lines = [{sku, requested, available}]}  (stored)
--   not_found             {kind = "sku", skus = [...]}
--   conflict              {reason = "order_exists"}
--   invalid               {field, detail}
--   not_ready, idempotency_key_reused
--
-- Writes: P:seq, P:o:<order>, P:s:<sku>, P:r:<sku>, P:wd:<sku>, P:ww:<sku>,
--   P:outbox, P:dirty, P:unsynced, P:i:<op>, P:if:<op>
--
-- Invariant kept: for every SKU, available = on_hand - reserved >= 0, and a
-- wholesale reservation never takes available below dtc_reserve.

local cmd, early = begin()
if early then return early end

-- ---- validate (no writes above this line's section end)
local oid, channel, policy = cmd.order_id, cmd.channel, cmd.policy
if not is_id(oid) then return invalid('order_id', 'must be 1-64 of [A-Za-z0-9_-]') end
if channel ~= 'dtc' and channel ~= 'wholesale' then
  return invalid('channel', 'must be dtc or wholesale')
end
if type(policy) ~= 'string' or not POLICIES[policy] then
  return invalid('backorder_policy', 'unknown backorder policy')
end
if policy == 'accept' and channel ~= 'dtc' then
  return invalid('backorder_policy', 'accept is for DTC orders only')
end
local doc = cmd.doc
if doc == nil or doc == cjson.null then doc = '{}' end
if type(doc) ~= 'string' or #doc > 2097152 then
  return invalid('doc', 'must be a JSON string of at most 2 MiB')
end
local lenient = cmd.unknown_sku == 'exception'
if cmd.unknown_sku ~= nil and cmd.unknown_sku ~= 'exception' and cmd.unknown_sku ~= 'refuse' then
  return invalid('unknown_sku', 'must be refuse or exception')
end
local is_test = cmd.test == true
local lines = cmd.lines
if type(lines) ~= 'table' or #lines < 1 then
  return invalid('lines', 'an order needs 1 to 500 lines')
end
if #lines > MAX_LINES then return invalid('lines', 'an order has at most 500 lines') end

local plan = {}          -- per line: {sku, qty, pooled, why}
local missing = {}
for i, l in ipairs(lines) do
  local field = 'lines[' .. (i - 1) .. ']'
  if type(l) ~= 'table' then return invalid(field, 'must be an object') end
  if not is_int(l.qty, 1, MAX_QTY) then
    return invalid(field .. '.quantity', 'must be an integer from 1 to 1000000000')
  end
  local sku = l.sku
  local p = {sku = '', qty = l.qty, pooled = 1, why = ''}
  if lenient then
    if sku == nil or sku == cjson.null or sku == '' then
      p.pooled, p.why = 0, 'missing_sku'
    elseif type(sku) ~= 'string' or #sku > 255 then
      return invalid(field .. '.sku', 'must be a string of at most 255 characters')
    else
      p.sku = sku
      if not is_sku(sku) or not load_sku(sku) then p.pooled, p.why = 0, 'unknown_sku' end
    end
  else
    if not is_sku(sku) then
      return invalid(field .. '.sku', 'must be 1-64 of letters, digits and -_. not starting with .')
    end
    p.sku = sku
    if not load_sku(sku) then missing[#missing + 1] = sku end
  end
  if is_test then p.pooled, p.why = 0, 'test_order' end
  plan[i] = p
end
if #missing > 0 then
  return refuse('not_found', 'unknown SKU', {kind = 'sku', skus = missing})
end
if redis.call('EXISTS', P .. ':o:' .. oid) == 1 then
  return refuse('conflict', 'order id already exists', {reason = 'order_exists'})
end

-- ---- plan against what is free now (reads only)
local free = {}
local function free_for(sku)
  if free[sku] == nil then free[sku] = cap_for(SKUS[sku], channel) end
  return free[sku]
end

if policy == 'all_or_nothing' and not is_test then
  local demand, order_of = {}, {}
  for _, p in ipairs(plan) do
    if p.pooled == 1 then
      if not demand[p.sku] then order_of[#order_of + 1] = p.sku end
      demand[p.sku] = (demand[p.sku] or 0) + p.qty
    end
  end
  local short = {}
  for _, sku in ipairs(order_of) do
    local have = free_for(sku)
    if demand[sku] > have then
      short[#short + 1] = {sku = sku, requested = demand[sku], available = have}
    end
  end
  if #short > 0 then
    return refuse_outcome('insufficient_stock', 'not enough stock for every line',
      {lines = short})
  end
end

-- ---- write
local seq = redis.call('INCR', P .. ':seq')
local o = {id = oid, d = doc, n = seq, c = channel, p = policy, L = {}, S = '[]',
           R = '[]', v = 0, u = NOW_MS, touched = true}
ORDERS[oid] = o
ORDER_ORDER[#ORDER_ORDER + 1] = oid
for i, p in ipairs(plan) do
  o.L[i] = {p.sku, p.qty, 0, 0, 0, 0, 0, 0, p.why, p.pooled}
  local idx = i - 1
  if p.pooled == 0 then
    if is_test then
      move(o, idx, {canc = p.qty}, 'test_order')
    else
      move(o, idx, {exc = p.qty}, 'exception')
    end
  else
    local take = math.min(p.qty, free_for(p.sku))
    free[p.sku] = free[p.sku] - take
    local rest = p.qty - take
    local d = {res = take}
    if rest > 0 then
      if policy == 'cancel_remainder' then d.canc = rest
      elseif policy == 'accept' then d.exc = rest; o.L[i][L_WHY] = 'oversold'
      else d.bo = rest end
    end
    move(o, idx, d, 'reserve')
  end
end

return commit('order.accepted', {order_id = oid}, {})
