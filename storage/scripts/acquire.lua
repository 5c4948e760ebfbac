-- acquire: take the write lease of a session and load its state in one round trip.
-- KEYS[1] sess:{S}:lease  KEYS[2] sess:{S}:fence  KEYS[3] sess:{S}
-- ARGV[1] owner (unique per actor incarnation)  ARGV[2] lease TTL ms
-- Reply: {fencing token, state document or nil, token hash}, or {0, remaining ms of the
-- other lease}.
-- The fence only grows while the session exists; it lives as long as the session's keys
-- (a probe of an unknown id leaves a fence that expires with the lease).
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {0, redis.call('PTTL', KEYS[1])}
end
local fence = redis.call('INCR', KEYS[2])
local ttl = redis.call('PTTL', KEYS[3])
if ttl == -2 then
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[2]) * 2)
elseif ttl == -1 then
  redis.call('PERSIST', KEYS[2])
else
  redis.call('PEXPIRE', KEYS[2], math.max(ttl, tonumber(ARGV[2])))
end
return {fence, redis.call('HGET', KEYS[3], 'doc'), redis.call('HGET', KEYS[3], 'tok')}
