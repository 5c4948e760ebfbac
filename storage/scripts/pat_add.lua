-- pat_add: a machine user's new personal access token, recorded with its event in the
-- user's slot; the relay creates the token's own key pat:{T} (only the SHA-256 of its secret)
-- with the event, so a token exists exactly when its event does. Whether the token id is
-- free (or the user's own, to rotate) was read by the caller before.
-- KEYS[1] user:{U}  KEYS[2] user:{U}:relay  KEYS[3] its relay:{t}
-- ARGV[1] now ms  ARGV[2] event payload JSON  ARGV[3] the relay ops (msgpack list of
-- storage.codec.IndexOp: the token's hash)  ARGV[4..] envelope as a counted list
-- Reply: {status, sequence, relay entry, entries}; status OK | GONE | NOT_MACHINE.
--#include _emit
local k_user, k_relay = KEYS[1], KEYS[2]
local state, kind = unpack(redis.call('HMGET', k_user, 'state', 'kind'))
if not state or state == 'USER_STATE_DELETED' then return done({'GONE', 0}) end
if kind ~= 'machine' then return done({'NOT_MACHINE', 0}) end
redis.call('HSET', k_user, 'mtime', ARGV[1])
redis.call('HINCRBY', k_user, 'rev', 1)
local envelope = read_list(4)
local owner = redis.call('HGET', k_user, 'org')
local seq = emit(k_user, k_relay, owner, envelope, 'user.personal.access.token.added', ARGV[2])
return done({'OK', seq}, cmsgpack.unpack(ARGV[3]))
