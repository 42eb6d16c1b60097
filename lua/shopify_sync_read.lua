-- shopify_sync_read.lua: take SKUs to push to Shopify, with what the push
-- must know about each, read in one step.
--
-- Takes up to ARGV[2] SKUs from the dirty set (after moving the SKUs whose
-- recheck is due into it) and notes them in flight; or, given ARGV[3], reads
-- again exactly those SKUs and moves nothing (the push reads onhand once more
-- right before its write, after reading Shopify: see workers/shopify_sync.py). For each it reads
-- onhand's available (0 while a fill owes units to waiting lines) together
-- with the sync state the intake scripts keep, so the two cannot disagree.
-- Sales still held back (P:syr:<sku> entries whose score, the end of their
-- hold, is not past: Shopify may not have had our 200 for them yet) are
-- summed; the push holds them back as if unseen. A SKU pushed for the first
-- time settles for a while (see workers/shopify_sync.py and
-- shopify_sync_commit.lua): the settle is read too.
--
-- KEYS[1]  merchant prefix
-- KEYS[2]  the merchant's guard (never touched; see lib.lua)
-- ARGV[1]  now, milliseconds since the epoch
-- ARGV[2]  most SKUs to take (integer 1..250)
-- ARGV[3]  optional JSON array of SKUs to read again (nothing is taken or moved)
--
-- Returns: {JSON, 0, ""} with JSON one of
--   ok          {skus = [{sku, available, pushed (absent: never pushed), owed,
--               seen, gen, recent (units held back), recent_until (when the
--               last hold ends), settle_until (absent: not settling),
--               settle_quiet, settle_started, settle_gap, settle_mark,
--               dirty_at, m (the SKU's details)}]}
--               {stopped = "uninstalled", skus = []}
--   invalid     {field, detail}
--   not_ready
--
-- Writes: P:dirty, P:dirtyat, P:sync:due, P:sync:inflight, P:syr:<sku>
--
-- Invariant kept: a SKU taken here is in flight until the push commits or
-- releases it, and a change made after this read marks it dirty again.

local P = KEYS[1]
local function out(t) return {cjson.encode(t), 0, ''} end
local now, most = tonumber(ARGV[1]), tonumber(ARGV[2])
if not now or not most or most < 1 or most > 250 then
  return out({c = 'invalid', field = 'argv', detail = 'now, most (1..250)'})
end
local again = nil
if ARGV[3] then
  local ok, list = pcall(cjson.decode, ARGV[3])
  if not ok or type(list) ~= 'table' or #list > 250 then
    return out({c = 'invalid', field = 'skus', detail = 'a JSON array of at most 250 SKUs'})
  end
  again = list
end
if redis.call('EXISTS', P .. ':epoch') == 0 then
  return out({c = 'not_ready', detail = 'state is being rebuilt'})
end
if redis.call('GET', P .. ':shopify:app') == 'uninstalled' then
  return out({c = 'ok', stopped = 'uninstalled', skus = {}})
end
local taken = again
if not again then
  local due = redis.call('ZRANGEBYSCORE', P .. ':sync:due', '-inf', now, 'WITHSCORES', 'LIMIT', 0, most)
  for i = 1, #due, 2 do
    -- a recheck is due when held-back sales are released: lag counts from then
    redis.call('SADD', P .. ':dirty', due[i])
    redis.call('HSETNX', P .. ':dirtyat', due[i], tonumber(due[i + 1]))
    redis.call('ZREM', P .. ':sync:due', due[i])
  end
  taken = redis.call('SPOP', P .. ':dirty', most)
end
local skus = {}
for _, sku in ipairs(taken) do
  local dirty_at = nil
  if not again then
    dirty_at = redis.call('HGET', P .. ':dirtyat', sku)
    redis.call('HDEL', P .. ':dirtyat', sku)
  end
  local c = redis.call('HMGET', P .. ':s:' .. sku, 'oh', 'rd', 'rw', 'fc', 'm')
  if c[1] then
    local available = tonumber(c[1]) - tonumber(c[2]) - tonumber(c[3])
    if c[4] then available = 0 end
    local st = redis.call('HMGET', P .. ':sy:' .. sku, 'p', 'o', 'w', 'g', 'b', 'bq', 'bs', 'bg',
      'bm')
    local key_recent = P .. ':syr:' .. sku
    redis.call('ZREMRANGEBYSCORE', key_recent, '-inf', '(' .. now)
    local recent, last = 0, nil
    local entries = redis.call('ZRANGE', key_recent, 0, -1, 'WITHSCORES')
    for i = 1, #entries, 2 do
      recent = recent + tonumber(string.match(entries[i], ':(%d+)$') or '0')
      last = tonumber(entries[i + 1])
    end
    skus[#skus + 1] = {sku = sku, available = available, pushed = tonumber(st[1]),
                       owed = tonumber(st[2] or '0'), seen = tonumber(st[3] or '0'),
                       gen = tonumber(st[4] or '0'), recent = recent,
                       recent_until = last or cjson.null,
                       settle_until = tonumber(st[5]) or cjson.null, settle_quiet = st[6] == '1',
                       settle_started = tonumber(st[7] or '0'), settle_gap = tonumber(st[8] or '0'),
                       settle_mark = st[9] or cjson.null,
                       dirty_at = tonumber(dirty_at), m = c[5] or cjson.null}
    if not again then redis.call('ZADD', P .. ':sync:inflight', now, sku) end
  end
end
return out({c = 'ok', skus = skus})
