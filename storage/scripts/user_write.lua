-- user_write: create or update one user and record its events, atomically, in its own slot.
-- Every write increments ``rev``; an update names the field it expects unchanged (``rev``
-- for read-modify-write, ``pw`` for a rehash), so a writer working from an older read gets
-- CONFLICT and retries from a fresh read. No WATCH.
-- Login names and IdP links are claimed before this write (storage.name_claims), each its
-- own key; the write refuses once the claims may have expired (CLAIM_EXPIRED). Its relay
-- entry carries the ops that confirm the claims and drop what was given up, and the
-- messages this write sends (queued by the relay with the events).
-- KEYS[1] user:{U}  KEYS[2] user:{U}:relay  KEYS[3] relay:{t} of the user's slot
-- ARGV[1] "create" | "update"  ARGV[2] user id
-- ARGV[3] guard field  ARGV[4] its expected value (update only)
-- ARGV[5] deadline of the claims, ms (0 = this write claims nothing)
-- ARGV[6] the relay ops (msgpack list of storage.codec.IndexOp)
-- ARGV[7..] three counted lists (n, items...): field/value pairs to set, fields to delete,
--   envelope field/value pairs; then nevents and per event: type, payload JSON; then njobs
--   and per job: npairs, field/value pairs.
-- Reply: {status, sequence, relay entry, entries}; status OK | EXISTS | GONE | CONFLICT |
-- CLAIM_EXPIRED.
--#include _emit
local k_user = KEYS[1]
local uid = ARGV[2]
relay.k_relay, relay.aggregate = KEYS[2], uid
local set, i = read_list(7)
local del, envelope
del, i = read_list(i)
envelope, i = read_list(i)
if claims_expired(ARGV[5]) then return done({'CLAIM_EXPIRED', 0}) end
local exists = redis.call('EXISTS', k_user) == 1
if ARGV[1] == 'create' then
  if exists then return done({'EXISTS', 0}) end
else
  if not exists then return done({'GONE', 0}) end
  if redis.call('HGET', k_user, ARGV[3]) ~= ARGV[4] then return done({'CONFLICT', 0}) end
end
if #set > 0 then redis.call('HSET', k_user, unpack(set)) end
if #del > 0 then redis.call('HDEL', k_user, unpack(del)) end
redis.call('HINCRBY', k_user, 'rev', 1)
local owner = redis.call('HGET', k_user, 'org')
local seq = tonumber(redis.call('HGET', k_user, 'seq') or '0')
local nevents = tonumber(ARGV[i]); i = i + 1
for _ = 1, nevents do
  seq = emit(k_user, KEYS[2], owner, envelope, ARGV[i], ARGV[i + 1])
  i = i + 2
end
local jobs = {}
local njobs = tonumber(ARGV[i] or '0'); i = i + 1
for _ = 1, njobs do
  local npairs = tonumber(ARGV[i]); i = i + 1
  jobs[#jobs + 1] = {unpack(ARGV, i, i + npairs * 2 - 1)}
  i = i + npairs * 2
end
return done({'OK', seq}, cmsgpack.unpack(ARGV[6]), jobs)
