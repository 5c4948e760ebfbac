-- pat_add: store a personal access token of a machine user (only the SHA-256 of its secret).
-- Re-adding the same token (same user, same hash) is a no-op, so the configured admin token
-- can be ensured on every start; with ARGV[7] = "1" a token id the same user already holds
-- gets the new hash (the configured admin token was rotated: the old secret stops working).
-- KEYS[1] pat:{T}  KEYS[2] user:{U}  KEYS[3] user:{U}:relay  KEYS[4] its relay:{t}
-- ARGV[1] user id  ARGV[2] secret hash  ARGV[3] expiration ms (0 = never)  ARGV[4] now ms
-- ARGV[5] event payload JSON  ARGV[6] "1" = replace the user's own token
-- ARGV[7..] envelope as a counted list
-- Reply: {status, sequence, relay entry, entries}; status OK | SAME | EXISTS | GONE |
-- NOT_MACHINE.
--#include _emit
local k_pat, k_user, k_relay = KEYS[1], KEYS[2], KEYS[3]
local state, kind = unpack(redis.call('HMGET', k_user, 'state', 'kind'))
if not state or state == 'USER_STATE_DELETED' then return done({'GONE', 0}) end
if kind ~= 'machine' then return done({'NOT_MACHINE', 0}) end
if redis.call('EXISTS', k_pat) == 1 then
  local user, hash = unpack(redis.call('HMGET', k_pat, 'user', 'hash'))
  if user == ARGV[1] and hash == ARGV[2] then
    return done({'SAME', tonumber(redis.call('HGET', k_user, 'seq') or '0')})
  end
  if user ~= ARGV[1] or ARGV[6] ~= '1' then return done({'EXISTS', 0}) end
  redis.call('DEL', k_pat)
end
local expires = tonumber(ARGV[3])
redis.call('HSET', k_pat, 'user', ARGV[1], 'hash', ARGV[2], 'exp', ARGV[3], 'ctime', ARGV[4])
if expires > 0 then redis.call('PEXPIREAT', k_pat, expires) end
redis.call('HSET', k_user, 'mtime', ARGV[4])
redis.call('HINCRBY', k_user, 'rev', 1)
local envelope = read_list(7)
local owner = redis.call('HGET', k_user, 'org')
local seq = emit(k_user, k_relay, owner, envelope, 'user.personal.access.token.added', ARGV[5])
return done({'OK', seq})
