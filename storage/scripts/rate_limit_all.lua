-- rate_limit_all: one GCRA step for every subject of a credential check, all or nothing.
-- As rate_limit.lua, for several keys at once (a single Redis, or keys of one slot): the
-- check is admitted only if every subject is within its rate, and then every subject's TAT
-- moves on; a refused check changes nothing. One script call instead of one per subject.
-- KEYS[1..n] rl:{<kind>:<digest>}
-- ARGV[2i-1] emission interval ms of KEYS[i]  ARGV[2i] its burst tolerance ms
-- Reply: {1, 0} admitted, or {0, ms until every subject would admit a request}.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local tats, wait = {}, 0
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local allowed_at = tat - tonumber(ARGV[2 * i])
  if now < allowed_at and allowed_at - now > wait then wait = allowed_at - now end
  tats[i] = tat
end
if wait > 0 then return {0, wait} end
for i, key in ipairs(KEYS) do
  local next_tat = tats[i] + tonumber(ARGV[2 * i - 1])
  redis.call('SET', key, next_tat, 'PX', next_tat - now)
end
return {1, 0}
