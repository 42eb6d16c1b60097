-- idem_begin.lua: claim an Idempotency-Key before an API operation starts.
--
-- The operation scripts themselves replay stored results atomically; this
-- claim covers the time the API spends before its script runs (reading the
-- customer, building the order), so a second request with the same key
-- meanwhile is told "in flight" (409) instead of racing the first. The marker
-- expires on its own if the first request dies; the operation's script (or the
-- API on a refusal that is not stored) removes it.
--
-- KEYS[1]  merchant prefix
-- KEYS[2]  the merchant's guard (never touched; see lib.lua)
-- ARGV[1]  operation id (string, 1-128 chars)
-- ARGV[2]  body fingerprint (string)
-- ARGV[3]  in-flight marker lifetime, milliseconds (integer >= 1)
--
-- Returns (JSON, replayed flag):
--   ok                      {} : the caller holds the claim
--   <stored result>, 1      the operation already finished: replay it (with
--                           its continuation fills as a fourth element)
--   idempotency_key_reused  {}: a finished operation had another body
--   idempotency_in_flight   {}: another request holds the claim (also after
--                           its outcome is stored, while it still fills)
--   not_ready, invalid
--
-- Writes: P:if:<op>
--
-- Invariant kept: at most one request works on an operation id at a time.

local P = KEYS[1]
local op, fp, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
if type(op) ~= 'string' or #op < 1 or #op > 128 or not ttl or ttl < 1 then
  return {cjson.encode({c = 'invalid', field = 'op_id', detail = 'bad claim arguments'}), 0, ''}
end
if redis.call('EXISTS', P .. ':epoch') == 0 then
  return {cjson.encode({c = 'not_ready', detail = 'state is being rebuilt'}), 0, ''}
end
local rec = redis.call('HMGET', P .. ':i:' .. op, 'f', 'r', 'x')
if rec[2] then
  if rec[1] ~= fp then
    return {cjson.encode({c = 'idempotency_key_reused',
      detail = 'this Idempotency-Key was used with another body'}), 0, ''}
  end
  if redis.call('EXISTS', P .. ':if:' .. op) == 1 then
    return {cjson.encode({c = 'idempotency_in_flight',
      detail = 'a request with this Idempotency-Key is still being processed'}), 0, ''}
  end
  return {rec[2], 1, '', rec[3] or ''}
end
if not redis.call('SET', P .. ':if:' .. op, fp, 'NX', 'PX', ttl) then
  return {cjson.encode({c = 'idempotency_in_flight',
    detail = 'a request with this Idempotency-Key is still being processed'}), 0, ''}
end
return {cjson.encode({c = 'ok'}), 0, ''}
