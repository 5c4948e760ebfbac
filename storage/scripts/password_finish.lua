-- password_finish: record the outcome of a verification admitted by password_begin.
-- wrong: failed += 1 and user.human.password.check.failed; when max > 0 and failed >= max,
--   the user is locked in the same step (user.locked).
-- right: failed = 0 and user.human.password.check.succeeded.
-- A user locked (by someone else) while the hash was being verified gets neither: the
-- outcome is LOCKED (ZITADEL re-reads the user after verifying, COMMAND-SFA3t).
-- KEYS[1] user:{U}  KEYS[2] user:{U}:attempts  KEYS[3] user:{U}:relay  KEYS[4] its relay:{t}
-- ARGV[1] attempt id  ARGV[2] "1" right / "0" wrong  ARGV[3] max attempts  ARGV[4] now ms
-- ARGV[5..] envelope as a counted list (n, field/value pairs...)
-- Reply: {status, failed attempts, "1" if this outcome locked the user, relay entry, entries}
--   status OK | LOCKED | NOTFOUND.
--#include _emit
local k_user, k_attempts, k_relay = KEYS[1], KEYS[2], KEYS[3]
redis.call('ZREM', k_attempts, ARGV[1])
local state = redis.call('HGET', k_user, 'state')
if not state or state == 'USER_STATE_DELETED' then return done({'NOTFOUND', 0, 0}) end
local failed = tonumber(redis.call('HGET', k_user, 'failed') or '0')
if state == 'USER_STATE_LOCKED' then return done({'LOCKED', failed, 0}) end
local envelope = read_list(5)
local owner = redis.call('HGET', k_user, 'org')
local max = tonumber(ARGV[3])
local locked_now = 0
if ARGV[2] == '1' then
  failed = 0
  redis.call('HSET', k_user, 'failed', 0, 'mtime', ARGV[4])
  emit(k_user, k_relay, owner, envelope, 'user.human.password.check.succeeded', '{}')
else
  failed, locked_now = record_failure(k_user, k_relay, owner, envelope, 'failed',
                                      ARGV[4], 'user.human.password.check.failed', max)
end
redis.call('HINCRBY', k_user, 'rev', 1)
return done({'OK', failed, locked_now})
