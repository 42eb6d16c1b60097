-- shopify_webhook.lua: apply one verified Shopify delivery, with its dedupe
-- records, in one step.
--
-- A delivery whose record exists (same topic + event id, same webhook id, or
-- for orders/create the same Shopify order) is a duplicate: it answers ok and
-- writes nothing. Otherwise, by topic:
--   orders/create     place the DTC order under accept (lib.lua place_order:
--                     what stock cannot cover becomes exception units), then
--                     apply every cancel or refund kept for it while it was
--                     unknown, in arrival order.
--   orders/cancelled  apply the refunds the cancel made, then cancel the
--                     unshipped remainder.
--   refunds/create    per refund line (mapped to the order line through its
--                     Shopify line item id), by restock type: cancel takes
--                     unshipped units only; no_restock and legacy_restock take
--                     unshipped units first, then return shipped ones
--                     (legacy_restock with restock, no_restock as a write-off);
--                     return brings shipped units back with restock. Every
--                     take is clamped to what the line still has, so a refund
--                     and the cancel that made it release the units once.
--   app/uninstalled   stop the channel sync (all data is kept).
-- A refund is applied at most once, whichever delivery brings it (its own
-- record rf:<refund id>). A cancel or refund for an order Redis does not hold
-- is kept (P:shp:pend:<shopify order id>) when the caller says "pend" (the
-- caller first made sure PostgreSQL has no older copy of the order).
--
-- The channel sync's count of what Shopify did to its own available moves in
-- the same step (only for SKUs the sync has pushed, P:sy:<sku> present):
-- w += units sold by an order, w -= units Shopify restocked by a refund, and
-- the event carries each SKU's change of the sync balance (sync = [{sku, l
-- (the state's lineage), dx}], see shopify_sync_commit.lua) for PostgreSQL. A
-- sale (of any SKU onhand has) is also noted in P:syr:<sku> ("<shopify order
-- id>:<units>", scored by when the sync may stop holding it back: now +
-- sale_hold_ms, brought forward by the API once its 200 has been sent).
--
-- KEYS[1]  merchant prefix (see lib.lua for the derived key patterns)
-- KEYS[2]  the merchant's guard (never touched; see lib.lua)
-- ARGV     common ARGV[1..7] (lib.lua), ARGV[3] = 0; ARGV[6] command:
--   topic             "orders/create" | "orders/cancelled" | "refunds/create" |
--                     "app/uninstalled"
--   keys              array of 1-4 dedupe keys, each 1-128 of [A-Za-z0-9:_.-]
--   record_ttl_ms     integer >= 1: how long the records live (milliseconds)
--   event_id, webhook_id   optional strings <= 64 (kept in the records)
--   shopify_order_id  string of digits (every topic but app/uninstalled)
--   order_id          onhand's order id, "shp_<shopify order id>"
--   order             orders/create: reserve.lua's command (order_id, channel,
--                     policy, doc, lines, unknown_sku, test)
--   sold              orders/create: array of [sku, units] Shopify sold
--   sale_hold_ms      orders/create: integer >= 0, milliseconds (see above)
--   cancel            boolean: cancel the unshipped remainder
--   refunds           array of {id (digits), lines = [{li, qty, restock_type}],
--                     restocked = [[sku, units]]}
--   if_missing        "report" | "pend" (cancel and refund topics)
--
-- Returns (JSON, replayed flag):
--   ok          {order_id, duplicate = true, key}     (a repeat: nothing written)
--               {order_id, pending = true}            (kept for a later order)
--               {order_id, order, applied, held (sales held back from
--               the sync: the API releases them once its 200 is sent), fills, more}
--               {uninstalled = true}
--   not_found   {kind = "order"}  (if_missing = "report"; nothing written)
--   conflict    {reason = "order_exists"}    (place_order: an id clash)
--   insufficient_stock {lines}   (place_order under all_or_nothing; Shopify
--               orders are placed under accept, so it does not happen)
--   invalid     {field, detail}
--   not_ready, idempotency_key_reused
--
-- Writes: P:wh:<key>, P:shp:pend:<shopify order id>, P:shopify:app, P:sy:<sku>,
--   P:syr:<sku>, P:seq, P:o:<order> (and the orders a fill reaches),
--   P:s:<sku>, P:r:<sku>, P:wd:<sku>, P:ww:<sku>, P:outbox, P:dirty,
--   P:dirtyat, P:fillq, P:unsynced
--
-- Invariant kept: every Shopify delivery changes the pool at most once, and
-- a line never cancels or returns more units than it holds.

local cmd, early = begin()
if early then return early end

-- ---- validate (nothing is written before the duplicate check)
local TOPICS = {['orders/create'] = true, ['orders/cancelled'] = true,
                ['refunds/create'] = true, ['app/uninstalled'] = true}
local topic = cmd.topic
if not TOPICS[topic] then return invalid('topic', 'not a topic onhand acts on') end
if type(cmd.keys) ~= 'table' or #cmd.keys < 1 or #cmd.keys > 4 then
  return invalid('keys', 'give 1 to 4 dedupe keys')
end
for _, k in ipairs(cmd.keys) do
  if type(k) ~= 'string' or #k > 128 or not string.find(k, '^[%w:_%.%-]+$') then
    return invalid('keys', 'a dedupe key is 1-128 of [A-Za-z0-9:_.-]')
  end
end
local ttl = cmd.record_ttl_ms
if not is_int(ttl, 1, 1e11) then return invalid('record_ttl_ms', 'must be an integer >= 1') end
if not opt_string(cmd.event_id, 64) then return invalid('event_id', 'at most 64 characters') end
if not opt_string(cmd.webhook_id, 64) then return invalid('webhook_id', 'at most 64 characters') end
local sid, oid = cmd.shopify_order_id, cmd.order_id
if topic ~= 'app/uninstalled' then
  if type(sid) ~= 'string' or not string.find(sid, '^%d+$') or #sid > 32 then
    return invalid('shopify_order_id', 'must be a string of digits')
  end
  if oid ~= 'shp_' .. sid then return invalid('order_id', 'must be shp_<shopify order id>') end
end

local function sku_units(list, field)
  if list == nil then return {}, nil end
  if type(list) ~= 'table' then return nil, invalid(field, 'must be an array of [sku, units]') end
  for _, pair in ipairs(list) do
    if type(pair) ~= 'table' or type(pair[1]) ~= 'string' or #pair[1] > 255
        or not is_int(pair[2], 0, MAX_QTY) then
      return nil, invalid(field, 'must be an array of [sku, units]')
    end
  end
  return list, nil
end

local sold, bad = sku_units(cmd.sold, 'sold')
if bad then return bad end
local hold_ms = cmd.sale_hold_ms or 0
if not is_int(hold_ms, 0, 1e9) then return invalid('sale_hold_ms', 'must be an integer >= 0') end
local refunds = cmd.refunds
if refunds == nil or refunds == cjson.null then refunds = {} end
if type(refunds) ~= 'table' or #refunds > 100 then return invalid('refunds', 'at most 100 refunds') end
for i, r in ipairs(refunds) do
  local field = 'refunds[' .. (i - 1) .. ']'
  if type(r) ~= 'table' or type(r.id) ~= 'string' or not string.find(r.id, '^%d+$') or #r.id > 32 then
    return invalid(field .. '.id', 'must be a string of digits')
  end
  if r.lines == nil or r.lines == cjson.null then r.lines = {} end
  if type(r.lines) ~= 'table' or #r.lines > MAX_LINES then
    return invalid(field .. '.lines', 'at most 500 lines')
  end
  for _, l in ipairs(r.lines) do
    if type(l) ~= 'table' or type(l.li) ~= 'string' or #l.li > 32 or not is_int(l.qty, 1, MAX_QTY)
        or type(l.restock_type) ~= 'string' then
      return invalid(field .. '.lines', 'each line is {li, qty >= 1, restock_type}')
    end
  end
  r.restocked, bad = sku_units(r.restocked, field .. '.restocked')
  if bad then return bad end
end
if cmd.if_missing ~= nil and cmd.if_missing ~= 'report' and cmd.if_missing ~= 'pend' then
  return invalid('if_missing', 'must be report or pend')
end
if topic == 'orders/create' and type(cmd.order) ~= 'table' then
  return invalid('order', 'orders/create carries the order to place')
end

-- ---- duplicates: answer at once, write nothing
for _, k in ipairs(cmd.keys) do
  if redis.call('EXISTS', P .. ':wh:' .. k) == 1 then
    return reply({c = 'ok', duplicate = true, key = k, order_id = oid})
  end
end
if topic == 'orders/create' and redis.call('EXISTS', P .. ':o:' .. oid) == 1 then
  return reply({c = 'ok', duplicate = true, key = 'order', order_id = oid})
end

-- ---- helpers (called only after every check above has passed)
local records = {}
local held = false
local function record(key, result)
  redis.call('SET', P .. ':wh:' .. key, result, 'PX', ttl)
  records[#records + 1] = {key = key, topic = topic, event_id = cmd.event_id,
                           webhook_id = cmd.webhook_id, order = sid, r = result,
                           exp = NOW_MS + ttl}
end

-- What Shopify did to its own available: units > 0 sold, < 0 restocked.
-- Each SKU's change of the sync count goes into the event (PostgreSQL sums
-- them per lineage, so a rebuilt Redis gets the count back).
local sync = {}
local sync_of = {}
local function shopify_moved(sku, units)
  if units == 0 then return end
  -- a sale is held back even before the SKU's first push (which may come
  -- before Shopify has read our 200)
  if units > 0 and hold_ms > 0 then
    local key_recent = P .. ':syr:' .. sku
    redis.call('ZADD', key_recent, NOW_MS + hold_ms, sid .. ':' .. units)
    redis.call('PEXPIRE', key_recent, hold_ms + 60000)
    held = true
  end
  local key_sync = P .. ':sy:' .. sku
  if redis.call('EXISTS', key_sync) == 0 then return end
  redis.call('HINCRBY', key_sync, 'w', units)
  local moved = sync_of[sku]
  if not moved then
    moved = {sku = sku, l = tonumber(redis.call('HGET', key_sync, 'l') or '0'), dx = 0}
    sync_of[sku] = moved
    sync[#sync + 1] = moved
  end
  moved.dx = moved.dx - units
  redis.call('SADD', P .. ':dirty', sku)
  redis.call('HSETNX', P .. ':dirtyat', sku, NOW_MS)
end

local released = {}   -- SKUs whose reserved units went back (fill them)
local returns = {}    -- return records made by refunds
local applied = 0     -- refunds and cancels applied to the order

-- Cancels up to `units` of a line's unshipped units (exception, then
-- backordered, then reserved); returns how many it took.
local function cancel_units(o, idx, units)
  local line = o.L[idx + 1]
  local took = 0
  for _, pair in ipairs({{L_EXC, 'exc'}, {L_BO, 'bo'}, {L_RES, 'res'}}) do
    local t = math.min(line[pair[1]], units - took)
    if t > 0 then
      local d = {canc = t}
      d[pair[2]] = -t
      move(o, idx, d, 'cancel')
      if pair[1] == L_RES and line[L_POOL] == 1 then released[#released + 1] = line[L_SKU] end
      took = took + t
    end
  end
  return took
end

-- Records up to `units` shipped units of a line as returned; restocked ones
-- go back on hand. Returns the units returned.
local function return_units(o, idx, units, restock, lines_out)
  local line = o.L[idx + 1]
  local t = math.min(units, line[L_SHIP] - line[L_RET])
  if t <= 0 then return 0 end
  line[L_RET] = line[L_RET] + t
  touch_order(o)
  if line[L_POOL] == 1 then
    local s = load_sku(line[L_SKU])
    if restock then
      s.oh = s.oh + t
      s.touched = true
      ledger(s.sku, o.id, 'return_restock', t, 0, 0, 0, 0, 0)
      released[#released + 1] = s.sku
    else
      ledger(s.sku, o.id, 'return_write_off', 0, 0, 0, 0, 0, 0, t)
    end
  end
  lines_out[#lines_out + 1] = {sku = line[L_SKU], line = idx, quantity = t, restock = restock}
  return t
end

local function line_index(o)
  if o.li_index then return o.li_index end
  local index = {}
  local ok, doc = pcall(cjson.decode, o.d)
  if ok and type(doc) == 'table' and type(doc.lines) == 'table' then
    for i, l in ipairs(doc.lines) do
      if type(l) == 'table' and type(l.shopify_line_item_id) == 'string' then
        index[l.shopify_line_item_id] = i - 1
      end
    end
  end
  o.li_index = index
  return index
end

local function apply_refund(o, r)
  local index = line_index(o)
  local lines_out = {}
  for _, l in ipairs(r.lines) do
    local idx = index[l.li]
    if idx then
      local kind = l.restock_type
      if kind == 'return' then
        return_units(o, idx, l.qty, true, lines_out)
      else
        local rest = l.qty - cancel_units(o, idx, l.qty)
        if rest > 0 and kind ~= 'cancel' then
          return_units(o, idx, rest, kind == 'legacy_restock', lines_out)
        end
      end
    end
  end
  if #lines_out > 0 then
    local ret = {id = 'shpr_' .. r.id, order_id = o.id, reason = 'shopify refund ' .. r.id,
                 lines = lines_out, returned_at_ms = NOW_MS}
    local entry = cjson.encode(ret)
    if o.R == '[]' then o.R = '[' .. entry .. ']'
    else o.R = string.sub(o.R, 1, -2) .. ',' .. entry .. ']' end
    returns[#returns + 1] = ret
  end
  applied = applied + 1
end

local function cancel_remainder(o)
  for i, line in ipairs(o.L) do
    cancel_units(o, i - 1, line[L_EXC] + line[L_BO] + line[L_RES])
  end
  applied = applied + 1
end

-- ---- write
local summary = cjson.encode({topic = topic, order_id = oid})

if topic == 'app/uninstalled' then
  redis.call('SET', P .. ':shopify:app', 'uninstalled')
  for _, k in ipairs(cmd.keys) do record(k, summary) end
  return commit('shopify.app_uninstalled', {uninstalled = true},
    {webhooks = records, shopify_app = {installed = false, at = NOW_MS}})
end

local key_pending = P .. ':shp:pend:' .. (sid or '')

if topic == 'orders/create' then
  local o, refused = place_order(cmd.order)
  if refused then return refused end
  for _, raw in ipairs(redis.call('LRANGE', key_pending, 0, -1)) do
    local ok, action = pcall(cjson.decode, raw)
    if ok and type(action) == 'table' then
      for _, r in ipairs(action.refunds or {}) do apply_refund(o, r) end
      if action.cancel then cancel_remainder(o) end
    end
  end
  redis.call('DEL', key_pending)
  for _, pair in ipairs(sold) do
    if load_sku(pair[1]) then shopify_moved(pair[1], pair[2]) end
  end
  fill_all(released)
  for _, k in ipairs(cmd.keys) do record(k, summary) end
  return commit('shopify.order_created', {order_id = oid, applied = applied, held = held},
    {webhooks = records, returns = returns, sync = sync})
end

-- orders/cancelled and refunds/create: each refund once, by its own record
local fresh = {}
for _, r in ipairs(refunds) do
  if redis.call('EXISTS', P .. ':wh:rf:' .. r.id) == 0 then fresh[#fresh + 1] = r end
end
local o = load_order(oid)
if not o and cmd.if_missing ~= 'pend' then
  return refuse('not_found', 'no such order', {kind = 'order'})
end
local result = {order_id = oid}
local pending = nil
if o then
  for _, r in ipairs(fresh) do apply_refund(o, r) end
  if cmd.cancel then cancel_remainder(o) end
  fill_all(released)
  result.applied = applied
elseif cmd.cancel or #fresh > 0 then
  local kept = {}
  for _, r in ipairs(fresh) do kept[#kept + 1] = {id = r.id, lines = r.lines} end
  local action = {topic = topic, cancel = cmd.cancel == true, refunds = kept, at = NOW_MS}
  redis.call('RPUSH', key_pending, cjson.encode(action))
  redis.call('PEXPIRE', key_pending, ttl)
  pending = {order = sid, key = cmd.keys[1], topic = topic, action = action, exp = NOW_MS + ttl}
  result.pending = true
end
for _, r in ipairs(fresh) do
  for _, pair in ipairs(r.restocked) do
    if load_sku(pair[1]) then shopify_moved(pair[1], -pair[2]) end
  end
  record('rf:' .. r.id, summary)
end
for _, k in ipairs(cmd.keys) do record(k, summary) end
return commit(topic == 'refunds/create' and 'shopify.refunded' or 'shopify.cancelled', result,
  {webhooks = records, returns = returns, shopify_pending = pending, sync = sync})
