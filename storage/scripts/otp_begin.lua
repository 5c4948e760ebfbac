-- otp_begin: admit one second-factor verification of a user, or say why not (spec §4.5-4.7).
-- The same reservation design as password_begin, with its own budget: failed_otp + reserved
-- never exceeds max, so concurrent wrong codes cannot pass the lockout limit.
-- KEYS[1] user:{U}  KEYS[2] user:{U}:otp_attempts (zset: attempt id → deadline ms)
-- ARGV[1] attempt id  ARGV[2] deadline ms  ARGV[3] max attempts (0 = no lockout)
-- ARGV[4] now ms  ARGV[5] kind: totp | otp_sms | otp_email | recovery_code
-- Reply: {status, sealed TOTP seed, last TOTP step, recovery code hashes (space-separated)};
--   status OK | NOTFOUND | NOTREADY | LOCKED | BUSY. ZITADEL's order: for recovery codes a
--   locked user comes before "not ready", for the others after it.
local k_user, k_attempts = KEYS[1], KEYS[2]
local kind = ARGV[5]
local f = redis.call('HMGET', k_user, 'state', 'failed_otp', 'totp', 'totp_ok', 'totp_step',
                     'otp_sms', 'otp_email', 'rc')
local state, failed = f[1], f[2]
if not state or state == 'USER_STATE_DELETED' then return {'NOTFOUND', '', '0', ''} end
local locked = state == 'USER_STATE_LOCKED'
local ready
if kind == 'totp' then ready = f[4] == '1'
elseif kind == 'otp_sms' then ready = f[6] == '1'
elseif kind == 'otp_email' then ready = f[7] == '1'
else ready = f[8] ~= false and f[8] ~= '' end
if kind == 'recovery_code' and locked then return {'LOCKED', '', '0', ''} end
if not ready then return {'NOTREADY', '', '0', ''} end
if locked then return {'LOCKED', '', '0', ''} end
local max, deadline, now = tonumber(ARGV[3]), tonumber(ARGV[2]), tonumber(ARGV[4])
if max > 0 then
  redis.call('ZREMRANGEBYSCORE', k_attempts, '-inf', '(' .. ARGV[4])
  local reserved = redis.call('ZCARD', k_attempts)
  if tonumber(failed or '0') + reserved >= max then return {'BUSY', '', '0', ''} end
  redis.call('ZADD', k_attempts, deadline, ARGV[1])
  if redis.call('PTTL', k_attempts) < deadline - now then
    redis.call('PEXPIREAT', k_attempts, deadline)
  end
end
return {'OK', f[3] or '', f[5] or '0', f[8] or ''}
