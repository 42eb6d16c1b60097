-- rate_limit.lua: one request against a key's rate (GCRA, a leaky bucket).
--
-- The bucket holds a "theoretical arrival time" (TAT). Each request moves it
-- one emission interval later; a request is refused when that would take the
-- TAT more than the burst tolerance past now. Counts live in Redis, so every
-- API process shares one limit per API key.
--
-- KEYS[1]  the limiter's key, e.g. "{m:default}:rl:<api key id>" (string, TAT
--          in milliseconds, expires when the bucket is empty)
-- ARGV[1]  now, milliseconds since the epoch (passed in, never read)
-- ARGV[2]  emission interval, milliseconds per request (1000 / rate), > 0
-- ARGV[3]  burst: requests allowed at once (integer >= 1)
--
-- Returns: {allowed (1/0), remaining, retry_after_ms, reset_ms}
--
-- Writes: KEYS[1]
--
-- Invariant kept: over any window, at most burst + window / interval
-- requests of one key are allowed.

local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local tolerance = interval * burst
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if now < allow_at then
  return {0, 0, math.ceil(allow_at - now), math.ceil(tat - now)}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now) + 1000)
local remaining = math.floor((tolerance - (new_tat - now)) / interval)
return {1, remaining, 0, math.ceil(new_tat - now)}
