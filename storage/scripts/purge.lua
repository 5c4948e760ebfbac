-- purge: remove a session whose expiration + retention has passed, with its index entries.
-- Re-checks the expiry: a lifetime set since the sweeper looked reschedules instead.
-- KEYS[1] sess:{S}  KEYS[2] sess:{S}:fence  KEYS[3] sess:{S}:events
-- KEYS[4] idx:sessions:purge  KEYS[5..] every other index the session is in
-- ARGV[1] now ms  ARGV[2] retention ms  ARGV[3] session id
-- Reply: 1 purged, 0 rescheduled or left alone.
local exp = redis.call('HGET', KEYS[1], 'exp')
if exp and exp ~= '' then
  local due = tonumber(exp) + tonumber(ARGV[2])
  if due > tonumber(ARGV[1]) then
    redis.call('ZADD', KEYS[4], due, ARGV[3])
    return 0
  end
elseif redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('ZREM', KEYS[4], ARGV[3])
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
for i = 4, #KEYS do redis.call('ZREM', KEYS[i], ARGV[3]) end
return 1
