-- otp_finish: record the outcome of a second-factor verification admitted by otp_begin.
-- right: a TOTP code must be of a later time step than the last accepted one (else REUSED,
--   RFC 6238 §5.2: refused, but not counted as a failed guess, since only a valid code can be
--   replayed); a recovery code must still be unused (its hash is removed: one use, even
--   under concurrent checks; already gone → a failure). Then failed_otp = 0 and the success
--   event.
-- wrong: failed_otp += 1 and the failure event; at max (max > 0) the user is locked in the
--   same step (user.locked).
-- A user locked (by someone else) while the code was being verified gets neither: LOCKED.
-- KEYS[1] user:{U}  KEYS[2] user:{U}:otp_attempts  KEYS[3] user:{U}:relay  KEYS[4] relay:{t}
-- ARGV[1] attempt id  ARGV[2] "1" right / "0" wrong  ARGV[3] max attempts  ARGV[4] now ms
-- ARGV[5] kind  ARGV[6] TOTP step of the code ("0" if not TOTP)
-- ARGV[7] success event type  ARGV[8] failure event type
-- ARGV[9..] counted list of the recovery code's candidate hashes (one per key), then the
--   envelope as a counted list, then a counted list of 0 or 2 items: the TOTP seed as sealed
--   under a previous master key and as re-sealed under the current one (replaced on a
--   success if still the stored one, so a key rotation completes as users sign in).
-- Reply: {status, failed attempts, "1" if this outcome locked the user, relay entry, entries}
--   status OK | WRONG | REUSED | LOCKED | NOTFOUND.
--#include _emit
local k_user, k_attempts, k_relay = KEYS[1], KEYS[2], KEYS[3]
local max, kind = tonumber(ARGV[3]), ARGV[5]
if max > 0 then redis.call('ZREM', k_attempts, ARGV[1]) end
local f = redis.call('HMGET', k_user, 'state', 'failed_otp', 'org', 'totp_step', 'rc')
local state = f[1]
if not state or state == 'USER_STATE_DELETED' then return done({'NOTFOUND', 0, 0}) end
local failed = tonumber(f[2] or '0')
if state == 'USER_STATE_LOCKED' then return done({'LOCKED', failed, 0}) end
local candidates, i = read_list(9)
local envelope, j = read_list(i)
local reseal = read_list(j)
local owner = f[3]
local status = ARGV[2] == '1' and 'OK' or 'WRONG'
if status == 'OK' and kind == 'totp' then
  local step = tonumber(ARGV[6])
  if step <= tonumber(f[4] or '0') then
    return done({'REUSED', failed, 0})  -- a replay of a seen code, not a guess: nothing counted
  else
    redis.call('HSET', k_user, 'totp_step', ARGV[6])
  end
elseif status == 'OK' and kind == 'recovery_code' then
  local codes = ' ' .. (f[5] or '') .. ' '
  local found = false
  for _, hash in ipairs(candidates) do
    local at = string.find(codes, ' ' .. hash .. ' ', 1, true)
    if at then
      codes = string.sub(codes, 1, at) .. string.sub(codes, at + #hash + 2)
      found = true
      break
    end
  end
  if not found then
    status = 'WRONG'
  else
    local rest = string.match(codes, '^%s*(.-)%s*$')
    if rest == '' then redis.call('HDEL', k_user, 'rc') else redis.call('HSET', k_user, 'rc', rest) end
  end
end
local locked_now = 0
if status == 'OK' then
  if #reseal == 2 and redis.call('HGET', k_user, 'totp') == reseal[1] then
    redis.call('HSET', k_user, 'totp', reseal[2])
  end
  if failed > 0 then redis.call('HSET', k_user, 'failed_otp', 0) end
  failed = 0
  redis.call('HSET', k_user, 'mtime', ARGV[4])
  emit(k_user, k_relay, owner, envelope, ARGV[7], '{}')
else
  failed, locked_now = record_failure(k_user, k_relay, owner, envelope, 'failed_otp',
                                      ARGV[4], ARGV[8], max)
end
redis.call('HINCRBY', k_user, 'rev', 1)
return done({status, failed, locked_now})
