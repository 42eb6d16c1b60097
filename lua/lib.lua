-- lib.lua: the helpers every onhand stock script shares.
--
-- Not a script on its own: engine/scripts.py builds one Redis Function
-- library ("onhand") from this file followed by every operation's file, each
-- registered as a function (FCALL onhand_<name>), so every operation is still
-- one atomic call, and the helpers are defined once when the library loads
-- instead of on every call. The per-call state below is module-level and
-- reset by init() at the start of each call: Redis runs one function at a
-- time, to completion, so calls never share it.
--
-- Because Redis cannot roll back, the helpers are split in two phases:
-- everything named check_* / load_* only reads; the writes happen in commit()
-- (and the fill/take-back helpers, which scripts call only after every check
-- has passed).
--
-- Common KEYS (every script):
--   KEYS[1]  merchant prefix, e.g. "{m:default}" (hash-tagged: every key below
--            lives in its slot)
--   KEYS[2]  the merchant's guard, "<prefix>:guard": never read or written. With
--            KEYS[1] (never a key either) it makes Redis Cluster refuse the call
--            while the merchant's slot is migrating (a node answers ASK while
--            both are missing, and the importing node TRYAGAIN to a multi-key
--            call with keys missing), so a script never runs while the
--            merchant's keys are split between two nodes (engine/keys.py)
-- Common ARGV (every script):
--   ARGV[1]  operation id (string, 1-128 chars): the idempotency handle
--   ARGV[2]  body fingerprint (string, may be empty: no body comparison)
--   ARGV[3]  idempotency record lifetime, milliseconds (0: keep no record)
--   ARGV[4]  now, milliseconds since the epoch (time is passed in, never read)
--   ARGV[5]  actor (api key id, "staff:<name>", "shopify", "system")
--   ARGV[6]  the command, a JSON object (fields per script)
--   ARGV[7]  fill limit: the most waiting lines one call fills (integer >= 1)
--
-- Key patterns derived from KEYS[1] (P):
--   P:epoch          string  present when Redis holds a complete state
--   P:seq            integer acceptance sequence (also the order number)
--   P:skus           zset    every SKU, scored by when it was created (ms)
--   P:s:<sku>        hash    oh rd rw bd bw ex fence v [fc] [m]
--   P:r:<sku>        zset    lines holding reservations, "<order>#<idx>" by seq
--   P:wd:<sku>       zset    DTC lines waiting (backordered or exception) by seq
--   P:ww:<sku>       zset    wholesale lines waiting by seq
--   P:o:<order>      hash    d n c p L S R v u (see load_order)
--   P:i:<op>         hash    f r [x n]: idempotency record (expires); x: the
--                            fills continuation calls made for it (a JSON
--                            array, fill.lua), n: how many
--   P:if:<op>        string  idempotency "in flight" marker (expires); kept
--                            past the commit while the caller still fills
--   P:outbox         stream  one entry per accepted operation, field e = JSON
--   P:dirty          set     SKUs to push to sales channels
--   P:dirtyat        hash    sku -> ms of its oldest change not yet pushed
--   Shopify (lua/shopify_*.lua): P:wh:<key> (delivery records), P:shp:pend:<id>
--   (cancels and refunds waiting for their order), P:sy:<sku> (sync state:
--   p o w g l [pt] [b bq bs bg bm], see shopify_sync_commit.lua; kept in PostgreSQL),
--   P:syr:<sku> (sales held back from Shopify), P:shopify:app, P:sync:*
--   P:fillq          set     SKUs whose fill stopped at the fill limit
--   P:sscc           integer the last SSCC serial handed out (ship.lua)
--   P:unsynced       set     orders whose newest version is not yet in PostgreSQL
--
-- Line layout inside P:o:<order> field L (a JSON array of arrays):
--   [sku, quantity, reserved, backordered, exception, shipped, cancelled,
--    returned, exception_reason, pooled]
--   invariant: quantity = reserved + backordered + exception + shipped + cancelled
--   pooled = 1 when the line draws on the SKU's counters (0: unknown/missing
--   SKU or a test order; its units never touch a counter and never fill).

-- per-call state, reset by init()
local P, OP_ID, FP, IDEM_TTL_MS, NOW_MS, ACTOR, CMD_JSON, FILL_LIMIT
local NOW_TEXT     -- NOW_MS as text, formatted once (begin()) for every write of it
local SKUS         -- sku -> counters table (loaded once per call)
local SKU_ORDER    -- skus in first-touch order (deterministic events)
local ORDERS       -- order id -> order table (loaded once per call)
local ORDER_ORDER
local LEDGER       -- movements: {sku, order, reason, doh, drd, drw, dbd, dbw, dex, units}
local FILLS        -- {sku, order, line index (0-based), units}
local MORE         -- skus whose fill stopped at the limit
local GUARDED      -- true once the API's guard() passed in this call: it has
                   -- checked readiness and the idempotency record, and knows
                   -- no in-flight marker exists (nothing in this call makes one
                   -- before the commit)

local function init(KEYS, ARGV)
  P = KEYS[1]
  OP_ID, FP = ARGV[1], ARGV[2]
  IDEM_TTL_MS, NOW_MS = tonumber(ARGV[3]), tonumber(ARGV[4])
  ACTOR, CMD_JSON, FILL_LIMIT = ARGV[5], ARGV[6], tonumber(ARGV[7])
  SKUS, SKU_ORDER, ORDERS, ORDER_ORDER = {}, {}, {}, {}
  LEDGER, FILLS, MORE = {}, {}, {}
  GUARDED = false
end

-- line field indexes
local L_SKU, L_QTY, L_RES, L_BO, L_EXC, L_SHIP, L_CANC, L_RET, L_WHY, L_POOL =
  1, 2, 3, 4, 5, 6, 7, 8, 9, 10

--: largest quantity anywhere (API.md: 0 .. 10^9)
local MAX_QTY = 1000000000
--: most lines in one order (API.md)
local MAX_LINES = 500

local POLICIES = {backorder = true, ship_complete = true, cancel_remainder = true,
                  all_or_nothing = true, accept = true}

-- ---------------------------------------------------------------- replies

-- Every script answers {JSON, replayed (0/1), outbox entry id or ""}; a
-- replay adds a fourth element, the continuation fills of the stored result
-- (JSON array text or "").
local function reply(tbl)
  return {cjson.encode(tbl), 0, ''}
end

local function refuse(code, detail, extra)
  local r = extra or {}
  r.c = code
  r.detail = detail
  return reply(r)
end

local function invalid(field, detail)
  return refuse('invalid', detail, {field = field})
end

-- ---------------------------------------------------------------- checks

local function is_int(x, lo, hi)
  return type(x) == 'number' and x == math.floor(x) and x >= lo and x <= hi
end

local function is_sku(s)
  return type(s) == 'string' and #s >= 1 and #s <= 64
    and string.find(s, '^[%w_%-][%w_%.%-]*$') ~= nil
end

local function is_id(s)
  return type(s) == 'string' and #s >= 1 and #s <= 64
    and string.find(s, '^[%w_%-]+$') ~= nil
end

local function opt_string(x, maxlen)
  return x == nil or x == cjson.null or (type(x) == 'string' and #x <= maxlen)
end

-- Checks the common ARGV, readiness and idempotency, and decodes the command.
-- Returns cmd, nil to go on, or nil, reply to answer at once.
local function begin()
  if type(OP_ID) ~= 'string' or #OP_ID < 1 or #OP_ID > 128 then
    return nil, invalid('op_id', 'operation id must be 1-128 characters')
  end
  if not is_int(IDEM_TTL_MS, 0, 1e13) then
    return nil, invalid('idempotency_ttl_ms', 'must be a non-negative integer')
  end
  if not is_int(NOW_MS, 0, 1e14) then
    return nil, invalid('now_ms', 'must be a non-negative integer')
  end
  NOW_TEXT = string.format('%d', NOW_MS)
  if not is_int(FILL_LIMIT, 1, 1e6) then
    return nil, invalid('fill_limit', 'must be an integer >= 1')
  end
  if not GUARDED and redis.call('EXISTS', P .. ':epoch') == 0 then
    return nil, refuse('not_ready', 'state is being rebuilt')
  end
  if IDEM_TTL_MS > 0 and not GUARDED then
    local rec = redis.call('HMGET', P .. ':i:' .. OP_ID, 'f', 'r', 'x')
    if rec[2] then
      if FP ~= '' and rec[1] ~= FP then
        return nil, refuse('idempotency_key_reused',
          'this operation id was used with another body')
      end
      return nil, {rec[2], 1, '', rec[3] or ''}
    end
  end
  local ok, cmd = pcall(cjson.decode, CMD_JSON)
  if not ok or type(cmd) ~= 'table' then
    return nil, invalid('command', 'command is not a JSON object')
  end
  return cmd, nil
end

-- ---------------------------------------------------------------- state


-- A SKU hash's counters, in load_sku's HMGET order.
local SKU_COUNTERS = {'oh', 'rd', 'rw', 'bd', 'bw', 'ex', 'fence'}

-- Loads a SKU's counters, or nil when the SKU does not exist (raw: the
-- hash's values as read, so commit() writes back only what changed).
local function load_sku(sku)
  local s = SKUS[sku]
  if s then return s end
  local v = redis.call('HMGET', P .. ':s:' .. sku,
    'oh', 'rd', 'rw', 'bd', 'bw', 'ex', 'fence', 'v', 'fc', 'm')
  if not v[1] then return nil end
  s = {sku = sku, oh = tonumber(v[1]), rd = tonumber(v[2]), rw = tonumber(v[3]),
       bd = tonumber(v[4]), bw = tonumber(v[5]), ex = tonumber(v[6]),
       fence = tonumber(v[7]), v = tonumber(v[8]), fc = v[9] and true or false,
       fc0 = v[9] and true or false,
       m = v[10] or '{}', touched = false, raw = v}
  SKUS[sku] = s
  SKU_ORDER[#SKU_ORDER + 1] = sku
  return s
end

local function new_sku(sku)
  local s = {sku = sku, oh = 0, rd = 0, rw = 0, bd = 0, bw = 0, ex = 0, fence = 0,
             v = 0, fc = false, fc0 = false, m = '{}', touched = true, created = true}
  SKUS[sku] = s
  SKU_ORDER[#SKU_ORDER + 1] = sku
  return s
end

local function available(s)
  return s.oh - s.rd - s.rw
end

local function available_to_wholesale(s)
  local a = available(s) - s.fence
  if a < 0 then return 0 end
  return a
end

-- What a new order of this channel may take now. A SKU whose fill stopped at
-- the limit (fc) still owes units to older waiting lines, so new orders get
-- nothing from it until the fill has caught up.
local function cap_for(s, channel)
  if s.fc then return 0 end
  if channel == 'wholesale' then return available_to_wholesale(s) end
  return available(s)
end

local function load_order(oid)
  local o = ORDERS[oid]
  if o then return o end
  local h = redis.call('HGETALL', P .. ':o:' .. oid)
  if #h == 0 then return nil end
  o = {id = oid}
  for i = 1, #h, 2 do o[h[i]] = h[i + 1] end
  o.L = cjson.decode(o.L)
  o.n = tonumber(o.n)
  o.v = tonumber(o.v)
  o.touched = false
  o.loaded = true
  ORDERS[oid] = o
  ORDER_ORDER[#ORDER_ORDER + 1] = oid
  return o
end

local function touch_order(o)
  o.touched = true
end

local function member(oid, idx)
  return oid .. '#' .. idx
end

local function split_member(m)
  local i = string.find(m, '#', 1, true)
  return string.sub(m, 1, i - 1), tonumber(string.sub(m, i + 1))
end

-- One inventory movement: deltas of on hand, reserved (dtc, wholesale),
-- backordered (dtc, wholesale) and exception units, and the units concerned
-- (a write-off moves no counter but still concerns units).
local function ledger(sku, oid, reason, doh, drd, drw, dbd, dbw, dex, units)
  if not units then
    units = math.max(math.abs(doh), math.abs(drd + drw), math.abs(dbd + dbw + dex))
  end
  LEDGER[#LEDGER + 1] = {sku, oid or '', reason, doh, drd, drw, dbd, dbw, dex, units}
end

-- Moves `units` of a line's counters, keeping the SKU counters, the per-SKU
-- zsets and the ledger in step. d = {res=, bo=, exc=, ship=, canc=} deltas.
local function move(o, idx, d, reason)
  local line = o.L[idx + 1]
  local dres, dbo, dexc = d.res or 0, d.bo or 0, d.exc or 0
  local dship, dcanc = d.ship or 0, d.canc or 0
  local was_res, was_wait = line[L_RES] > 0, (line[L_BO] + line[L_EXC]) > 0
  line[L_RES] = line[L_RES] + dres
  line[L_BO] = line[L_BO] + dbo
  line[L_EXC] = line[L_EXC] + dexc
  line[L_SHIP] = line[L_SHIP] + dship
  line[L_CANC] = line[L_CANC] + dcanc
  touch_order(o)
  if line[L_POOL] ~= 1 then return end
  local s = load_sku(line[L_SKU])
  local doh = -dship
  local drd, drw, dbd, dbw = 0, 0, 0, 0
  if o.c == 'wholesale' then drw, dbw = dres, dbo else drd, dbd = dres, dbo end
  s.oh = s.oh + doh
  s.rd, s.rw = s.rd + drd, s.rw + drw
  s.bd, s.bw = s.bd + dbd, s.bw + dbw
  s.ex = s.ex + dexc
  s.touched = true
  local m = member(o.id, idx)
  local is_res, is_wait = line[L_RES] > 0, (line[L_BO] + line[L_EXC]) > 0
  if is_res and not was_res then
    redis.call('ZADD', P .. ':r:' .. s.sku, o.n, m)
  elseif was_res and not is_res then
    redis.call('ZREM', P .. ':r:' .. s.sku, m)
  end
  local wkey = P .. (o.c == 'wholesale' and ':ww:' or ':wd:') .. s.sku
  if is_wait and not was_wait then
    redis.call('ZADD', wkey, o.n, m)
  elseif was_wait and not is_wait then
    redis.call('ZREM', wkey, m)
  end
  ledger(s.sku, o.id, reason, doh, drd, drw, dbd, dbw, dexc)
end

-- ---------------------------------------------------------------- fills

-- Fills the SKU's waiting lines in acceptance order (oldest first) from what
-- is available, at most FILL_LIMIT lines per call. Wholesale lines take at
-- most available_to_wholesale and are all passed over when it is 0 (it only
-- falls during a fill), so DTC lines behind them still fill from the
-- ring-fenced units. Exception units fill before backordered ones of the same
-- line. Records FILLS; a SKU that stops at the limit with lines and units left
-- gets the continuation marker (fc) and is listed in MORE.
local function fill(sku)
  local s = load_sku(sku)
  if not s then return end
  local wd, ww = P .. ':wd:' .. sku, P .. ':ww:' .. sku
  local filled, stopped = 0, false
  while available(s) > 0 do
    local hd = redis.call('ZRANGE', wd, 0, 0, 'WITHSCORES')
    local hw = {}
    local atw = available_to_wholesale(s)
    if atw > 0 then hw = redis.call('ZRANGE', ww, 0, 0, 'WITHSCORES') end
    local head, cap
    if hd[1] and (not hw[1] or tonumber(hd[2]) < tonumber(hw[2])) then
      head, cap = hd[1], available(s)
    elseif hw[1] then
      head, cap = hw[1], atw
    else
      break
    end
    if filled >= FILL_LIMIT then
      stopped = true
      break
    end
    local oid, idx = split_member(head)
    local o = load_order(oid)
    local line = o.L[idx + 1]
    local take_exc = math.min(line[L_EXC], cap)
    local take_bo = math.min(line[L_BO], cap - take_exc)
    move(o, idx, {res = take_exc + take_bo, exc = -take_exc, bo = -take_bo}, 'fill')
    FILLS[#FILLS + 1] = {sku = sku, order_id = oid, line = idx, units = take_exc + take_bo}
    filled = filled + 1
  end
  if stopped then
    if not s.fc then s.fc, s.touched = true, true end
    MORE[#MORE + 1] = sku
  elseif s.fc then
    s.fc, s.touched = false, true
  end
end

local function fill_all(skus)
  for _, sku in ipairs(skus) do fill(sku) end
end

-- Takes `units` back from the SKU's reservations, newest acceptance first
-- (a count found fewer units than are reserved). What is taken becomes an
-- exception on DTC orders, is cancelled on cancel_remainder orders, and is
-- backordered otherwise. Returns the list of {order, units, became}.
local function take_back(sku, units)
  local taken = {}
  local rkey = P .. ':r:' .. sku
  while units > 0 do
    local top = redis.call('ZRANGE', rkey, 0, 0, 'REV')
    if not top[1] then break end
    local oid, idx = split_member(top[1])
    local o = load_order(oid)
    local line = o.L[idx + 1]
    local t = math.min(line[L_RES], units)
    local became
    if o.c == 'dtc' then
      became = 'exception'
      move(o, idx, {res = -t, exc = t}, 'take_back')
      if line[L_WHY] == '' then line[L_WHY] = 'stock_count' end
    elseif o.p == 'cancel_remainder' then
      became = 'cancelled'
      move(o, idx, {res = -t, canc = t}, 'take_back')
    else
      became = 'backordered'
      move(o, idx, {res = -t, bo = t}, 'take_back')
    end
    taken[#taken + 1] = {order_id = oid, line = idx, sku = sku, units = t, became = became}
    units = units - t
  end
  return taken
end

-- ---------------------------------------------------------------- commit

-- An order snapshot as JSON text: the hash's fields, with L, d, S and R
-- spliced in as the JSON they are stored as (never re-encoded: ids are
-- checked to be [A-Za-z0-9_-], channel and policy come from fixed sets, and
-- d, S and R are JSON written by the scripts or checked on the way in).
local function order_snapshot_json(o)
  return '{"id":"' .. o.id .. '","n":' .. o.n .. ',"c":"' .. o.c .. '","p":"' .. o.p
    .. '","v":' .. o.v .. ',"u":' .. o.u .. ',"L":' .. (o.Ljson or cjson.encode(o.L))
    .. ',"d":' .. o.d .. ',"S":' .. o.S .. ',"R":' .. o.R .. '}'
end

local function sku_snapshot(s)
  return {sku = s.sku, oh = s.oh, rd = s.rd, rw = s.rw, bd = s.bd, bw = s.bw,
          ex = s.ex, fence = s.fence, v = s.v, m = s.m}
end

-- Adds `"key":<raw JSON>` to an encoded JSON object (encoding big values once).
local function splice(obj_json, key, raw)
  if obj_json == '{}' then return '{"' .. key .. '":' .. raw .. '}' end
  return string.sub(obj_json, 1, -2) .. ',"' .. key .. '":' .. raw .. '}'
end

-- Writes every touched SKU and order, appends the event to the outbox, marks
-- SKUs dirty, stores the idempotency record, and returns the reply.
-- `result` is the script-specific reply table; `event` the event extras.
local function commit(kind, result, event)
  local ev_skus, ev_orders = {}, {}
  for _, sku in ipairs(SKU_ORDER) do
    local s = SKUS[sku]
    if s.touched then
      s.v = s.v + 1
      local key = P .. ':s:' .. sku
      if s.raw then
        -- only what changed (a reserve moves one or two counters): every
        -- number written is formatted by Redis, the most costly step here
        local changed, raw = {'v', s.v}, s.raw
        for i, f in ipairs(SKU_COUNTERS) do
          if s[f] ~= tonumber(raw[i]) then
            changed[#changed + 1] = f
            changed[#changed + 1] = s[f]
          end
        end
        if s.m ~= raw[10] then
          changed[#changed + 1] = 'm'
          changed[#changed + 1] = s.m
        end
        redis.call('HSET', key, unpack(changed))
      else
        redis.call('HSET', key, 'oh', s.oh, 'rd', s.rd, 'rw', s.rw, 'bd', s.bd,
          'bw', s.bw, 'ex', s.ex, 'fence', s.fence, 'v', s.v, 'm', s.m)
      end
      if s.fc ~= s.fc0 then
        if s.fc then
          redis.call('HSET', key, 'fc', 1)
          redis.call('SADD', P .. ':fillq', sku)
        else
          redis.call('HDEL', key, 'fc')
          redis.call('SREM', P .. ':fillq', sku)
        end
      end
      if s.created then redis.call('ZADD', P .. ':skus', NOW_TEXT, sku) end
      redis.call('SADD', P .. ':dirty', sku)
      -- when the oldest change not yet pushed happened (sync lag)
      redis.call('HSETNX', P .. ':dirtyat', sku, NOW_TEXT)
      ev_skus[#ev_skus + 1] = sku_snapshot(s)
    end
  end
  local result_order
  for _, oid in ipairs(ORDER_ORDER) do
    local o = ORDERS[oid]
    if o.touched then
      o.v = o.v + 1
      o.u = NOW_TEXT
      o.Ljson = cjson.encode(o.L)
      local key = P .. ':o:' .. oid
      redis.call('HSET', key, 'd', o.d, 'n', o.n, 'c', o.c, 'p', o.p,
        'L', o.Ljson, 'S', o.S, 'R', o.R, 'v', o.v, 'u', o.u)
      if o.loaded then redis.call('PERSIST', key) end
      redis.call('SADD', P .. ':unsynced', oid)
      local snap = order_snapshot_json(o)
      ev_orders[#ev_orders + 1] = snap
      if oid == result.order_id then result_order = snap end
    end
  end
  -- the reply carries the newest snapshot of the order or SKU it is about
  if result.order_id and not result_order and ORDERS[result.order_id] then
    result_order = order_snapshot_json(ORDERS[result.order_id])
  end
  if result.sku and SKUS[result.sku] then
    result.inventory = sku_snapshot(SKUS[result.sku])
  end
  result.c = 'ok'
  result.fills = FILLS
  result.more = MORE
  local out = cjson.encode(result)
  if result_order then out = splice(out, 'order', result_order) end
  event = event or {}
  event.t = kind
  event.op = OP_ID
  event.at = NOW_MS
  event.actor = ACTOR
  event.skus = ev_skus
  event.ledger = LEDGER
  local ev = splice(cjson.encode(event), 'orders', '[' .. table.concat(ev_orders, ',') .. ']')
  if IDEM_TTL_MS > 0 then
    -- PostgreSQL keeps the record too, so a rebuilt Redis still replays it
    ev = splice(ev, 'idem', '{"f":' .. cjson.encode(FP) .. ',"exp":' .. (NOW_MS + IDEM_TTL_MS)
      .. ',"r":' .. out .. '}')
    local ikey = P .. ':i:' .. OP_ID
    redis.call('HSET', ikey, 'f', FP, 'r', out)
    redis.call('PEXPIRE', ikey, IDEM_TTL_MS)
    -- while fills go on (MORE), a duplicate is still told "in flight": its
    -- replay would list fewer fills than the caller will answer (the caller
    -- removes the marker when its continuation calls are done)
    if #MORE == 0 and not GUARDED then redis.call('DEL', P .. ':if:' .. OP_ID) end
  end
  local eid = redis.call('XADD', P .. ':outbox', '*', 'e', ev)
  return {out, 0, eid}
end

-- Stores a refusal that is an outcome (stock or state), so a retry with the
-- same operation id answers the same. Writes nothing else.
local function refuse_outcome(code, detail, extra)
  local r = extra or {}
  r.c = code
  r.detail = detail
  local out = cjson.encode(r)
  if IDEM_TTL_MS > 0 then
    local ikey = P .. ':i:' .. OP_ID
    redis.call('HSET', ikey, 'f', FP, 'r', out)
    redis.call('PEXPIRE', ikey, IDEM_TTL_MS)
    if not GUARDED then redis.call('DEL', P .. ':if:' .. OP_ID) end
  end
  return {out, 0, ''}
end

-- ---------------------------------------------------------------- orders

-- The name of an order's i-th line (1-based) in a refusal (made only for
-- one: formatting a number is among the costliest steps of a call).
local function line_field(i)
  return 'lines[' .. (i - 1) .. ']'
end

-- Accepts a new order and reserves all its lines (reserve.lua's command,
-- see its header). Checks everything before its first write; returns the
-- new order, or nil and the reply to answer (a refusal, nothing written
-- except a stored insufficient_stock outcome). Shared by reserve.lua and the
-- Shopify intake, which must reserve and apply waiting actions in one call.
local function place_order(cmd)
  -- ---- validate (no writes above this line's section end)
  local oid, channel, policy = cmd.order_id, cmd.channel, cmd.policy
  if not is_id(oid) then return nil, invalid('order_id', 'must be 1-64 of [A-Za-z0-9_-]') end
  if channel ~= 'dtc' and channel ~= 'wholesale' then
    return nil, invalid('channel', 'must be dtc or wholesale')
  end
  if type(policy) ~= 'string' or not POLICIES[policy] then
    return nil, invalid('backorder_policy', 'unknown backorder policy')
  end
  if policy == 'accept' and channel ~= 'dtc' then
    return nil, invalid('backorder_policy', 'accept is for DTC orders only')
  end
  local doc = cmd.doc
  if doc == nil or doc == cjson.null then doc = '{}' end
  if type(doc) ~= 'string' or #doc > 2097152 then
    return nil, invalid('doc', 'must be a JSON string of at most 2 MiB')
  end
  -- the doc is spliced into snapshots as JSON, so it must be a JSON object
  local okdoc, parsed_doc = pcall(cjson.decode, doc)
  if not okdoc or type(parsed_doc) ~= 'table' then
    return nil, invalid('doc', 'must be a JSON object')
  end
  local lenient = cmd.unknown_sku == 'exception'
  if cmd.unknown_sku ~= nil and cmd.unknown_sku ~= 'exception' and cmd.unknown_sku ~= 'refuse' then
    return nil, invalid('unknown_sku', 'must be refuse or exception')
  end
  local is_test = cmd.test == true
  local lines = cmd.lines
  if type(lines) ~= 'table' or #lines < 1 then
    return nil, invalid('lines', 'an order needs 1 to 500 lines')
  end
  if #lines > MAX_LINES then return nil, invalid('lines', 'an order has at most 500 lines') end

  local plan = {}          -- per line: {sku, qty, pooled, why}
  local missing = {}
  for i, l in ipairs(lines) do
    if type(l) ~= 'table' then return nil, invalid(line_field(i), 'must be an object') end
    if not is_int(l.qty, 1, MAX_QTY) then
      return nil, invalid(line_field(i) .. '.quantity', 'must be an integer from 1 to 1000000000')
    end
    local sku = l.sku
    local p = {sku = '', qty = l.qty, pooled = 1, why = ''}
    if lenient then
      if sku == nil or sku == cjson.null or sku == '' then
        p.pooled, p.why = 0, 'missing_sku'
      elseif type(sku) ~= 'string' or #sku > 255 then
        return nil, invalid(line_field(i) .. '.sku', 'must be a string of at most 255 characters')
      else
        p.sku = sku
        if not is_sku(sku) or not load_sku(sku) then p.pooled, p.why = 0, 'unknown_sku' end
      end
    else
      if not is_sku(sku) then
        return nil, invalid(line_field(i) .. '.sku', 'must be 1-64 of letters, digits and -_. not starting with .')
      end
      p.sku = sku
      if not load_sku(sku) then missing[#missing + 1] = sku end
    end
    if is_test then p.pooled, p.why = 0, 'test_order' end
    plan[i] = p
  end
  if #missing > 0 then
    return nil, refuse('not_found', 'unknown SKU', {kind = 'sku', skus = missing})
  end
  if redis.call('EXISTS', P .. ':o:' .. oid) == 1 then
    return nil, refuse('conflict', 'order id already exists', {reason = 'order_exists'})
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
      return nil, refuse_outcome('insufficient_stock', 'not enough stock for every line',
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
  return o, nil
end

-- ---------------------------------------------------------------- API guard

-- The API's variant of each stock operation (FCALL onhand_<version>_<name>_api,
-- registered by engine/scripts.py) runs, in the same atomic call and before
-- the operation's own body: the key's rate limit, the Idempotency-Key claim
-- or replay, and a check that a record the API built the command from (the
-- customer and its profile defaults) is still the version it read. So an API
-- request that changes state is one round trip on its common path.
--
-- KEYS[1]  merchant prefix
-- ARGV     common ARGV[1..7] (above), then:
--   ARGV[8]   rate-limit bucket: the API key id ("" = no limit); its state is
--             P:rl:<bucket> (rate_limit.lua's key and algorithm, shared with it)
--   ARGV[9]   emission interval, milliseconds per request (> 0 with a bucket)
--   ARGV[10]  burst (integer >= 1 with a bucket)
--   ARGV[11]  in-flight marker lifetime, milliseconds, kept while the caller
--             still fills (the reply's more is not empty)
--   ARGV[12]  kind of the record checked ("" = none), e.g. "customer"
--   ARGV[13]  its id
--   ARGV[14]  the version the command was built from (0 = built as absent)
--
-- Returns the operation's reply {JSON, replayed, entry id, fills or ""}
-- followed by the rate verdict {allowed (1/0), remaining (-1 = no limit),
-- retry_after_ms, reset_ms}. Before the body runs it may answer:
--   rate_limited           {detail}: nothing else read or written
--   not_ready              {detail}
--   idempotency_key_reused {detail}: a stored outcome had another body
--   idempotency_in_flight  {detail}: another request holds the claim
--   <stored result>, 1     a replay (with its continuation fills)
--   stale                  {kind, id, v, doc}: the record is at version v
--                          now (doc its JSON text, or null when absent):
--                          build again from it; only the rate limit moved
--
-- Writes: P:rl:<bucket>, and P:if:<op> when fills continue; then the body's.
--
-- Invariant kept: the rate limit counts every request once (shared by every
-- API process); at most one request works on an operation id at a time; an
-- order is built from one version of its customer, current when it is
-- accepted.

local function rate_take(key, now, interval, burst)
  local tolerance = interval * burst
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - tolerance
  if now < allow_at then
    return {0, 0, math.ceil(allow_at - now), math.ceil(tat - now)}
  end
  redis.call('SET', key, new_tat, 'PX', math.ceil(new_tat - now) + 1000)
  return {1, math.floor((tolerance - (new_tat - now)) / interval), 0, math.ceil(new_tat - now)}
end

local function guard(ARGV)
  local rate = {1, -1, 0, 0}
  if ARGV[8] ~= '' then
    rate = rate_take(P .. ':rl:' .. ARGV[8], NOW_MS, tonumber(ARGV[9]), tonumber(ARGV[10]))
    if rate[1] == 0 then return refuse('rate_limited', 'over the rate limit for this key'), rate end
  end
  if redis.call('EXISTS', P .. ':epoch') == 0 then
    return refuse('not_ready', 'state is being rebuilt'), rate
  end
  if IDEM_TTL_MS > 0 then
    local rec = redis.call('HMGET', P .. ':i:' .. OP_ID, 'f', 'r', 'x')
    if rec[2] and FP ~= '' and rec[1] ~= FP then
      return refuse('idempotency_key_reused', 'this Idempotency-Key was used with another body'), rate
    end
    if redis.call('EXISTS', P .. ':if:' .. OP_ID) == 1 then
      return refuse('idempotency_in_flight',
        'a request with this Idempotency-Key is still being processed'), rate
    end
    if rec[2] then return {rec[2], 1, '', rec[3] or ''}, rate end
  end
  if ARGV[12] ~= '' then
    local h = redis.call('HMGET', P .. ':d:' .. ARGV[12] .. ':' .. ARGV[13], 'doc', 'v')
    local v = h[1] and tonumber(h[2]) or 0
    if v ~= tonumber(ARGV[14]) then
      return refuse('stale', 'the record changed', {kind = ARGV[12], id = ARGV[13], v = v,
        doc = h[1] or cjson.null}), rate
    end
  end
  GUARDED = true
  return nil, rate
end

-- The guarded reply: the body's, the in-flight marker kept while fills go on
-- (commit() removes it only when none do), and the rate verdict.
local function guarded(r, rate, ARGV)
  if IDEM_TTL_MS > 0 and #MORE > 0 then
    redis.call('SET', P .. ':if:' .. OP_ID, FP, 'PX', tonumber(ARGV[11]))
  end
  return {r[1], r[2], r[3], r[4] or '', rate[1], rate[2], rate[3], rate[4]}
end
