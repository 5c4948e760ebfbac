-- purge: remove a session whose expiration + retention has passed, with its index entries.
-- Re-checks the expiry: a lifetime set since the sweeper looked reschedules instead.
-- KEYS[1] sess:{S}  KEYS[2] sess:{S}:fence
-- KEYS[3] idx:sessions:purge  KEYS[4..] every other index the session is in
-- ARGV[1] now ms  ARGV[2] retention ms  ARGV[3] session id
-- Reply: 1 purged, 0 rescheduled or left alone.
local exp = redis.call('HGET', KEYS[1], 'exp')
if exp and exp ~= '' then
  local due = tonumber(exp) + tonumber(ARGV[2])
  if due > tonumber(ARGV[1]) then
    redis.call('ZADD', KEYS[3], due, ARGV[3])
    return 0
  end
elseif redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('ZREM', KEYS[3], ARGV[3])
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2])
for i = 3, #KEYS do redis.call('ZREM', KEYS[i], ARGV[3]) end
return 1
