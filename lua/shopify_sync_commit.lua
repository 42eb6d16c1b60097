-- shopify_sync_commit.lua: record pushes Shopify accepted (or baselines
-- taken without a write), close their write-ahead record, and carry the new
-- sync state to PostgreSQL through the outbox, in one step.
--
-- The count the push rule needs is balance = owed + pushed - seen: Shopify's
-- quantity plus what Shopify has sold (net of restocks) that onhand has not
-- heard of. A write that Shopify applied moved its quantity from `now` to
-- `quantity` and nothing else, so it moves the balance by quantity - now,
-- whatever landed since the push read (webhooks already moved `seen`). The
-- new state is pushed = quantity, owed = balance - quantity, seen = 0.
--
-- Settling (workers/shopify_sync.py): a SKU without a state (its first push)
-- starts with balance = `quantity` (nothing assumed in flight) and settles:
-- b (until when the window lasts), bq (quiet: no write of ours and Shopify
-- seen where we left it since the window began), bm (when Shopify's level
-- had last changed as the window began: its updatedAt, `mark`), bs (when the
-- settle began), bg (the gap: Shopify's shortfall against onhand at the first
-- push, held back as if in flight while settling). Per entry, `settle`:
--   start    first push: begin, until `settle_until`, with gap `gap`
--   rebase   the window was quiet: every webhook counted before the push
--            read (`seen_before`) was for a sale made before it, so balance
--            = `quantity` less the webhooks counted since that read (sales
--            after it), as on a first push; the settle ends (only if the
--            state agrees: quiet, same mark)
--   restart  a new window until `settle_until` (Shopify moved)
--   end      the settle ends as it is (it lasted too long)
-- A first push and a rebase start a new lineage (l, increasing): PostgreSQL
-- keeps the newest lineage and sums the changes of its events, so each event
-- lost in a wipe takes exactly its own change with it, in any order.
-- A SKU whose generation moved since the read is still recorded (the write
-- happened) and marked dirty again. A write-ahead key that is no longer open
-- was committed already (by a replay): the call then changes nothing.
--
-- KEYS[1]  merchant prefix
-- KEYS[2]  the merchant's guard (never touched; see lib.lua)
-- ARGV[1]  now, milliseconds since the epoch
-- ARGV[2]  write-ahead record to close (field of P:sync:wal; "" for none)
-- ARGV[3]  JSON array of {sku, gen, now, quantity, set (boolean: a write was
--          made), dirty_at (optional), settle, settle_until, gap, mark,
--          seen_before (see above)}
--          plus any audit fields (copied to the sync log); may be empty (then
--          only ARGV[2] is closed)
--
-- Returns: {JSON, 0, outbox entry id or ""} with JSON one of
--   ok          {committed = n, lag_ms, moved = [sku], closed (false: the
--               write-ahead key was not open, nothing done)}
--   invalid     {field, detail}
--   not_ready   (Redis is being rebuilt: nothing written)
--
-- Writes: P:sy:<sku>, P:sync:inflight, P:sync:wal, P:sync:stats, P:sync:log,
--   P:dirty, P:dirtyat, P:outbox (one shopify.synced event: per SKU its
--   lineage, change of the balance, pushed, generation, settle and time)
--
-- Invariant kept: owed + pushed - seen is always Shopify's quantity plus what
-- Shopify sold (net of its restocks) that onhand has not heard of (from a
-- first push or rebase on: assuming nothing was in flight then), and the sum
-- of the changes in the outbox events of the SKU's lineage is that balance.

local P = KEYS[1]
local function out(t, eid) return {cjson.encode(t), 0, eid or ''} end
local now = tonumber(ARGV[1])
local ok, entries = pcall(cjson.decode, ARGV[3])
if not now or not ok or type(entries) ~= 'table' then
  return out({c = 'invalid', field = 'entries', detail = 'a JSON array of pushes'})
end
for _, e in ipairs(entries) do
  if type(e) ~= 'table' or type(e.sku) ~= 'string' or type(e.gen) ~= 'number'
      or type(e.now) ~= 'number' or type(e.quantity) ~= 'number' then
    return out({c = 'invalid', field = 'entries', detail = 'each entry has sku, gen, now, quantity'})
  end
end
if redis.call('EXISTS', P .. ':epoch') == 0 then
  return out({c = 'not_ready', detail = 'state is being rebuilt'})
end
local key_wal = P .. ':sync:wal'
if ARGV[2] ~= '' and redis.call('HEXISTS', key_wal, ARGV[2]) == 0 then
  return out({c = 'ok', committed = 0, lag_ms = cjson.null, moved = {}, closed = false})
end
local committed, moved, lag, sync = 0, {}, nil, {}
for _, e in ipairs(entries) do
  local key_sync = P .. ':sy:' .. e.sku
  local st = redis.call('HMGET', key_sync, 'p', 'o', 'w', 'g', 'l', 'b', 'bq', 'bs', 'bg', 'bm')
  local gen = tonumber(st[4] or '0')
  local pushed = tonumber(st[1])
  local lineage = tonumber(st[5] or '0')
  local until_, quiet = tonumber(st[6]), st[7] == '1'
  local started, gap = tonumber(st[8] or '0'), tonumber(st[9] or '0')
  local mark = st[10] or nil
  local new_mark = type(e.mark) == 'string' and e.mark or nil
  local before, balance = 0, nil
  if pushed == nil then
    -- first push: the balance starts at Shopify's value (nothing assumed in flight)
    balance = e.quantity
    lineage = math.max(now, lineage + 1)
    until_ = nil
    if e.settle == 'start' and type(e.settle_until) == 'number' then
      -- a window that begins with our write cannot be quiet (the mark moves)
      until_, quiet, started, mark = e.settle_until, not e.set, now, new_mark
      gap = type(e.gap) == 'number' and math.max(0, e.gap) or 0
    end
  else
    before = tonumber(st[2] or '0') + pushed - tonumber(st[3] or '0')
    if e.settle == 'rebase' and until_ and quiet and e.now == pushed and new_mark
        and new_mark == mark then
      local since = tonumber(st[3] or '0') - (tonumber(e.seen_before) or 0)
      balance, before, until_ = e.quantity - since, 0, nil
      lineage = math.max(now, lineage + 1)
    else
      -- Shopify moved on its own, or we write: this window is not quiet
      if until_ and (e.now ~= pushed or e.set) then quiet = false end
      balance = before + (e.quantity - e.now)
      -- a state kept before lineages existed: PostgreSQL starts from its balance
      if not st[5] then before, lineage = 0, now end
      if e.settle == 'end' then
        until_ = nil
      elseif e.settle == 'restart' and until_ and type(e.settle_until) == 'number' then
        until_, quiet, mark = e.settle_until, not e.set, new_mark
      end
    end
  end
  if gen ~= e.gen then
    moved[#moved + 1] = e.sku
    redis.call('SADD', P .. ':dirty', e.sku)
    redis.call('HSETNX', P .. ':dirtyat', e.sku, now)
  end
  -- pt: when Shopify was last known to hold p (the staff UI shows its age)
  redis.call('HSET', key_sync, 'p', e.quantity, 'o', balance - e.quantity, 'w', 0, 'g', gen + 1,
    'l', lineage, 'pt', now)
  local settle = cjson.null
  if until_ then
    redis.call('HSET', key_sync, 'b', until_, 'bq', quiet and 1 or 0, 'bs', started, 'bg', gap)
    if mark then redis.call('HSET', key_sync, 'bm', mark) else redis.call('HDEL', key_sync, 'bm') end
    settle = {u = until_, q = quiet, s = started, g = gap, m = mark or cjson.null}
  else
    redis.call('HDEL', key_sync, 'b', 'bq', 'bs', 'bg', 'bm')
  end
  e.owed_after = balance - e.quantity
  sync[#sync + 1] = {sku = e.sku, l = lineage, dx = balance - before, p = e.quantity,
                     g = gen + 1, s = settle, t = now}
  committed = committed + 1
  if e.set and type(e.dirty_at) == 'number' then
    lag = math.max(lag or 0, now - e.dirty_at)
  end
  redis.call('ZREM', P .. ':sync:inflight', e.sku)
end
if ARGV[2] ~= '' then redis.call('HDEL', key_wal, ARGV[2]) end
local key_stats = P .. ':sync:stats'
redis.call('HINCRBY', key_stats, 'commits', committed)
if lag then redis.call('HSET', key_stats, 'lag_ms', lag, 'last_push_ms', now) end
if #entries > 0 then
  redis.call('XADD', P .. ':sync:log', 'MAXLEN', '~', 20000, '*', 'at', now, 'e',
    cjson.encode(entries))
end
local eid = ''
if #sync > 0 or ARGV[2] ~= '' then
  eid = redis.call('XADD', P .. ':outbox', '*', 'e', cjson.encode(
    {t = 'shopify.synced', op = '', at = now, actor = 'shopify-sync', key = ARGV[2], sync = sync}))
end
return out({c = 'ok', committed = committed, lag_ms = lag or cjson.null, moved = moved,
            closed = true}, eid)
