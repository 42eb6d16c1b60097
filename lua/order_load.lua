-- order_load.lua: bring a closed order back from PostgreSQL into Redis.
--
-- Redis keeps open orders and orders changed lately; a return can still come
-- for an older, closed order. Before running restock.lua on it, the API loads
-- PostgreSQL's newest version here. Nothing changes: no counter moves and no
-- outbox event is written (the order is as PostgreSQL already has it).
--
-- KEYS[1]  merchant prefix
-- KEYS[2]  the merchant's guard (never touched; see lib.lua)
-- ARGV[1]  order snapshot, JSON {id, d, n, c, p, L, S, R, v, u} (d, S, R as
--          JSON strings, L as an array)
-- ARGV[2]  how long the loaded order stays if nothing changes it, milliseconds
--
-- Returns: {JSON, 0, ""} with JSON one of
--   ok          {loaded = true|false}  (false: Redis already had the order)
--   conflict    {reason = "open_order"}: an order with open units is never
--               loaded (Redis always holds those; PostgreSQL may lag)
--   invalid     {field, detail}
--   not_ready
--
-- Writes: P:o:<order>
--
-- Invariant kept: Redis never gets an order version older than its own.

local P = KEYS[1]
local function out(t) return {cjson.encode(t), 0, ''} end
if redis.call('EXISTS', P .. ':epoch') == 0 then
  return out({c = 'not_ready', detail = 'state is being rebuilt'})
end
local ok, snap = pcall(cjson.decode, ARGV[1])
local ttl = tonumber(ARGV[2])
if not ok or type(snap) ~= 'table' or type(snap.id) ~= 'string' or type(snap.L) ~= 'table'
    or not ttl or ttl < 1 then
  return out({c = 'invalid', field = 'snapshot', detail = 'bad order snapshot'})
end
for _, line in ipairs(snap.L) do
  if line[3] + line[4] + line[5] > 0 then
    return out({c = 'conflict', reason = 'open_order', detail = 'open orders live in Redis'})
  end
end
local key = P .. ':o:' .. snap.id
if redis.call('EXISTS', key) == 1 then return out({c = 'ok', loaded = false}) end
redis.call('HSET', key, 'd', snap.d, 'n', snap.n, 'c', snap.c, 'p', snap.p,
  'L', cjson.encode(snap.L), 'S', snap.S, 'R', snap.R, 'v', snap.v, 'u', snap.u)
redis.call('PEXPIRE', key, ttl)
return out({c = 'ok', loaded = true})
