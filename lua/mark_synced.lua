-- mark_synced.lua: note that PostgreSQL now holds these order and record versions.
--
-- Called by the outbox worker after its transaction committed. An order
-- leaves P:unsynced once PostgreSQL has its newest version (reads then need
-- Redis only for what is still unsynced). A closed order (nothing reserved,
-- backordered or in exception) whose newest version is in PostgreSQL expires
-- from Redis after the retention; any script that changes it again removes the
-- expiry (PERSIST), so an order never leaves Redis before PostgreSQL has it.
--
-- Records (customers, API keys: doc_put.lua) leave P:unsynced:d the same way,
-- so lists of them read PostgreSQL plus only the unsynced ones from Redis.
--
-- KEYS[1]  merchant prefix
-- KEYS[2]  the merchant's guard (never touched; see lib.lua)
-- ARGV[1]  retention of closed orders, milliseconds (integer >= 1)
-- ARGV[2]  n, the number of orders that follow (integer >= 0)
-- ARGV[3..2+2n]  pairs: order id, version now in PostgreSQL
-- ARGV[3+2n..]   pairs: "<kind>:<id>" of a record, version now in PostgreSQL
--
-- Returns: integer, the orders and records taken off P:unsynced, P:unsynced:d
--
-- Writes: P:unsynced, P:unsynced:d, P:o:<order> (expiry only)
--
-- Invariant kept: an order or record is off its unsynced set, and a closed
-- order expiring, only when PostgreSQL has its newest version.

local P = KEYS[1]
local retention = tonumber(ARGV[1])
local n_orders = tonumber(ARGV[2])
local L_RES, L_BO, L_EXC = 3, 4, 5
local removed = 0
for i = 3, 2 + 2 * n_orders - 1, 2 do
  local oid, v = ARGV[i], tonumber(ARGV[i + 1])
  local key = P .. ':o:' .. oid
  local h = redis.call('HMGET', key, 'v', 'L')
  local current = tonumber(h[1] or '0')
  if current <= v then
    -- PostgreSQL has the newest version (or the order left Redis)
    removed = removed + redis.call('SREM', P .. ':unsynced', oid)
    if h[1] and current == v then
      local open = 0
      for _, line in ipairs(cjson.decode(h[2])) do
        open = open + line[L_RES] + line[L_BO] + line[L_EXC]
      end
      if open == 0 then redis.call('PEXPIRE', key, retention) end
    end
  end
end
for i = 3 + 2 * n_orders, #ARGV - 1, 2 do
  local rec, v = ARGV[i], tonumber(ARGV[i + 1])
  local key = P .. ':d:' .. rec
  local current = tonumber(redis.call('HGET', key, 'v') or redis.call('HGET', key .. ':gone', 'v') or '0')
  if current <= v then
    removed = removed + redis.call('SREM', P .. ':unsynced:d', rec)
  end
end
return removed
