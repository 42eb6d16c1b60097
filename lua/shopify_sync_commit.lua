-- shopify_sync_commit.lua: record pushes Shopify accepted (or baselines
-- taken without a write), and close their write-ahead record.
--
-- For each SKU, with `pushed`, `owed` and `gen` as the push read them and
-- `now` the Shopify quantity it compared against: what Shopify had sold and
-- onhand had not yet heard of at the moment of the write is
--   owed' = owed + (pushed - now) - seen
-- where seen is the intake scripts' count at this moment (so webhooks that
-- landed between the read and here are counted exactly once). The new state
-- is pushed = quantity, owed = owed', seen = 0. A SKU whose generation moved
-- since the read is left alone and marked dirty again.
--
-- KEYS[1]  merchant prefix
-- ARGV[1]  now, milliseconds since the epoch
-- ARGV[2]  write-ahead record to close (field of P:sync:wal; "" for none)
-- ARGV[3]  JSON array of {sku, gen, pushed (absent: first push), owed, now,
--          quantity, set (boolean: a write was made), dirty_at (optional)}
--          plus any audit fields (copied to the sync log)
--
-- Returns: {JSON, 0, ""} with JSON one of
--   ok          {committed = n, lag_ms, skipped = [sku]}
--   invalid     {field, detail}
--
-- Writes: P:sy:<sku>, P:sync:inflight, P:sync:wal, P:sync:stats, P:sync:log,
--   P:dirty, P:dirtyat
--
-- Invariant kept: owed is always what Shopify sold (net of its restocks) that
-- onhand had not heard of when Shopify's quantity was last `pushed`.

local P = KEYS[1]
local function out(t) return {cjson.encode(t), 0, ''} end
local now = tonumber(ARGV[1])
local ok, entries = pcall(cjson.decode, ARGV[3])
if not now or not ok or type(entries) ~= 'table' then
  return out({c = 'invalid', field = 'entries', detail = 'a JSON array of pushes'})
end
for _, e in ipairs(entries) do
  if type(e) ~= 'table' or type(e.sku) ~= 'string' or type(e.gen) ~= 'number'
      or type(e.now) ~= 'number' or type(e.quantity) ~= 'number' or type(e.owed) ~= 'number' then
    return out({c = 'invalid', field = 'entries', detail = 'each entry has sku, gen, owed, now, quantity'})
  end
end
local committed, skipped, lag = 0, {}, nil
for _, e in ipairs(entries) do
  local key_sync = P .. ':sy:' .. e.sku
  local st = redis.call('HMGET', key_sync, 'w', 'g')
  local gen = tonumber(st[2] or '0')
  if gen ~= e.gen then
    skipped[#skipped + 1] = e.sku
    redis.call('SADD', P .. ':dirty', e.sku)
    redis.call('HSETNX', P .. ':dirtyat', e.sku, now)
  else
    local seen = tonumber(st[1] or '0')
    local pushed = type(e.pushed) == 'number' and e.pushed or e.now
    local owed = e.owed + (pushed - e.now) - seen
    redis.call('HSET', key_sync, 'p', e.quantity, 'o', owed, 'w', 0, 'g', gen + 1)
    e.owed_after = owed
    committed = committed + 1
    if e.set and type(e.dirty_at) == 'number' then
      lag = math.max(lag or 0, now - e.dirty_at)
    end
  end
  redis.call('ZREM', P .. ':sync:inflight', e.sku)
end
if ARGV[2] ~= '' then redis.call('HDEL', P .. ':sync:wal', ARGV[2]) end
local key_stats = P .. ':sync:stats'
redis.call('HINCRBY', key_stats, 'commits', committed)
if lag then redis.call('HSET', key_stats, 'lag_ms', lag, 'last_push_ms', now) end
if #entries > 0 then
  redis.call('XADD', P .. ':sync:log', 'MAXLEN', '~', 20000, '*', 'at', now, 'e',
    cjson.encode(entries))
end
return out({c = 'ok', committed = committed, lag_ms = lag or cjson.null, skipped = skipped})
