-- password_begin: admit one password verification of a user, or say why not (spec §4.2).
-- With lockout on (max > 0) every admitted verification holds a reservation until
-- password_finish; failed + reserved never exceeds max, so however many wrong passwords
-- arrive at once, at most max are ever verified before the lock lands. Reservations of a
-- crashed process expire at their deadline (pruned here by score).
-- KEYS[1] user:{U}  KEYS[2] user:{U}:attempts (zset: attempt id → deadline ms)
-- ARGV[1] attempt id  ARGV[2] deadline ms  ARGV[3] max attempts (0 = no lockout)
-- ARGV[4] now ms
-- Reply: {status, password hash, view version}; status OK | NOTFOUND | LOCKED | NOPW | BUSY.
local k_user, k_attempts = KEYS[1], KEYS[2]
local fields = redis.call('HMGET', k_user, 'state', 'pw', 'failed', 'vv')
local state, hash, failed, vv = fields[1], fields[2], fields[3], fields[4]
if not state or state == 'USER_STATE_DELETED' then return {'NOTFOUND', '', '0'} end
if state == 'USER_STATE_LOCKED' then return {'LOCKED', '', '0'} end
if not hash or hash == '' then return {'NOPW', '', '0'} end
local max, deadline, now = tonumber(ARGV[3]), tonumber(ARGV[2]), tonumber(ARGV[4])
if max > 0 then
  redis.call('ZREMRANGEBYSCORE', k_attempts, '-inf', '(' .. ARGV[4])
  local reserved = redis.call('ZCARD', k_attempts)
  if tonumber(failed or '0') + reserved >= max then return {'BUSY', '', '0'} end
  redis.call('ZADD', k_attempts, deadline, ARGV[1])
  if redis.call('PTTL', k_attempts) < deadline - now then
    redis.call('PEXPIREAT', k_attempts, deadline)
  end
end
return {'OK', hash, vv or '0'}
