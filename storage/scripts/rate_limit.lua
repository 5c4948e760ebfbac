-- rate_limit: one GCRA (generic cell rate algorithm) step for one subject, atomically.
-- The key holds the subject's "theoretical arrival time" (TAT, ms). A request at ``now`` is
-- admitted if TAT - burst_tolerance <= now; admitting moves TAT one emission interval on.
-- So a subject gets ``count`` requests per ``period`` with bursts of up to ``count``, and a
-- denied request changes nothing. Redis's clock is used so every worker shares one time.
-- KEYS[1] rl:{<kind>:<digest>}
-- ARGV[1] emission interval ms (period / count)  ARGV[2] burst tolerance ms
-- Reply: {1, 0} admitted, or {0, ms until the next request would be admitted}.
local interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local allowed_at = tat - tolerance
if now < allowed_at then return {0, allowed_at - now} end
local next_tat = tat + interval
redis.call('SET', KEYS[1], next_tat, 'PX', next_tat - now)
return {1, 0}
