-- purge: remove a session whose expiration + retention has passed; its index entries are
-- removed by the relay (the entry recorded here lists them).
-- Re-checks the expiry: a lifetime set since the sweeper looked reschedules instead.
-- KEYS[1] sess:{S}  KEYS[2] sess:{S}:fence  KEYS[3] sess:{S}:relay  KEYS[4] relay:{t}
-- ARGV[1] now ms  ARGV[2] retention ms  ARGV[3] session id  ARGV[4] relay field
-- ARGV[5] the encoded relay entry
-- Reply: 1 purged; 0 not purged; or {due ms} to reschedule.
local exp = redis.call('HGET', KEYS[1], 'exp')
if exp and exp ~= '' then
  local due = tonumber(exp) + tonumber(ARGV[2])
  if due > tonumber(ARGV[1]) then return {due} end
elseif redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[3], ARGV[4], ARGV[5])
redis.call('ZADD', KEYS[4], 'NX', ARGV[1], ARGV[3])
return 1
