-- doc_put.lua: write (or remove) a record the order path reads: a customer
-- with its profiles, an API key's hash and role.
--
-- Accepting an order needs only Redis, so these records live here too; the
-- outbox carries each change to PostgreSQL. Removing an API key's record
-- revokes the key at once.
--
-- KEYS[1]  merchant prefix (see lib.lua for the derived key patterns)
-- KEYS[2]  the merchant's guard (never touched; see lib.lua)
-- ARGV     common ARGV[1..7] (lib.lua); ARGV[6] command:
--   kind   "customer" | "api_key" | "user"
--   id     string, 1-64 of [A-Za-z0-9_-]
--   doc    the record as a JSON object in a string (<= 256 KiB), or null to
--          remove it
--
-- Key patterns: P:d:<kind>:<id> hash {doc, v}; P:d:<kind>:<id>:gone hash {v}
--   (the version of a removed record); P:unsynced:d set of "<kind>:<id>" whose
--   newest version PostgreSQL may not have yet (mark_synced.lua removes them)
--
-- Returns (JSON, replayed flag):
--   ok          {kind, id, v, doc, fills = [], more = []}
--   not_found   {kind}: removing a record that does not exist
--   invalid     {field, detail}
--   not_ready, idempotency_key_reused
--
-- Writes: P:d:<kind>:<id>, P:d:<kind>:<id>:gone, P:unsynced:d, P:outbox, P:i:<op>,
--   P:if:<op>; publishes the id of a changed api_key record on the channel
--   "onhand:keys" (every API process drops its cached copy, api/auth.py)
--
-- Invariant kept: each change of a record is one outbox event carrying its
-- new version, so PostgreSQL converges whatever order events apply in.

local cmd, early = begin()
if early then return early end

local KINDS = {customer = true, api_key = true, user = true}
local kind, id, doc = cmd.kind, cmd.id, cmd.doc
if type(kind) ~= 'string' or not KINDS[kind] then return invalid('kind', 'unknown record kind') end
if not is_id(id) then return invalid('id', 'must be 1-64 of [A-Za-z0-9_-]') end
if doc == nil then doc = cjson.null end
if doc ~= cjson.null then
  if type(doc) ~= 'string' or #doc > 262144 then
    return invalid('doc', 'must be a JSON object string of at most 256 KiB')
  end
  local okd, parsed = pcall(cjson.decode, doc)
  if not okd or type(parsed) ~= 'table' then return invalid('doc', 'must be a JSON object') end
end

local key = P .. ':d:' .. kind .. ':' .. id
local v = tonumber(redis.call('HGET', key, 'v') or redis.call('HGET', key .. ':gone', 'v') or '0')
local exists = redis.call('EXISTS', key) == 1
if doc == cjson.null and not exists then
  return refuse('not_found', 'no such record', {kind = kind})
end

-- ---- write
v = v + 1
if doc == cjson.null then
  redis.call('DEL', key)
  -- keep the version so a later re-creation still sorts after the removal
  redis.call('HSET', key .. ':gone', 'v', v)
else
  redis.call('HSET', key, 'doc', doc, 'v', v)
  redis.call('DEL', key .. ':gone')
end
redis.call('SADD', P .. ':unsynced:d', kind .. ':' .. id)
if kind == 'api_key' then redis.call('PUBLISH', 'onhand:keys', id) end
return commit(doc == cjson.null and 'doc.removed' or 'doc.put',
  {kind = kind, id = id, v = v, doc = doc},
  {doc = {kind = kind, id = id, v = v, doc = doc}})
