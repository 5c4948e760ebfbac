-- user_write: create or update one user and record its events, atomically, in its own slot.
-- Every write increments ``rev``; an update names the field it expects unchanged (``rev``
-- for read-modify-write, ``pw`` for a rehash), so a writer working from an older read gets
-- CONFLICT and retries from a fresh read. No WATCH.
-- Login names are claimed before this write (storage.name_claims), each its own key; the
-- write refuses once the claims may have expired (CLAIM_EXPIRED), and its relay entry
-- carries the ops that confirm the claims and drop the names given up.
-- KEYS[1] user:{U}  KEYS[2] user:{U}:relay  KEYS[3] org:{O}
-- KEYS[4] sessiond:outbox (the messages this write sends: queued in the same atomic step)
-- KEYS[5] users:idplinks (idp id:provider user id → user id: each link is unique)
-- KEYS[6] relay:{t} of the user's slot
-- ARGV[1] "create" | "update"  ARGV[2] user id
-- ARGV[3] guard field  ARGV[4] its expected value (update only)
-- ARGV[5] deadline of the login-name claims, ms (0 = this write claims none)
-- ARGV[6] the relay ops (msgpack list of storage.codec.IndexOp)
-- ARGV[7..] five counted lists (n, items...): field/value pairs to set, fields to delete,
--   envelope field/value pairs, IdP links to claim, IdP links to release; then nevents and
--   per event: type, payload JSON; then njobs and per job: npairs, field/value pairs.
-- Reply: {status, sequence, relay entry, entries}; status OK | EXISTS | LINK_TAKEN | NO_ORG |
-- GONE | CONFLICT | CLAIM_EXPIRED.
--#include _emit
local k_user, k_org = KEYS[1], KEYS[3]
local uid = ARGV[2]
relay.k_relay, relay.aggregate = KEYS[2], uid
local set, i = read_list(7)
local del, envelope, link_claim, link_release
del, i = read_list(i)
envelope, i = read_list(i)
link_claim, i = read_list(i)
link_release, i = read_list(i)
-- A script's writes are not undone by a later error: refuse before the first write if the
-- outbox is not a stream (a corrupted or foreign key), so a write is all or nothing.
local outbox_kind = redis.call('TYPE', KEYS[4])['ok']
if outbox_kind ~= 'none' and outbox_kind ~= 'stream' then
  return redis.error_reply('WRONGTYPE_KEY ' .. KEYS[4])
end
local deadline = tonumber(ARGV[5])
if deadline > 0 then
  local now = redis.call('TIME')
  if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > deadline then
    return done({'CLAIM_EXPIRED', 0})
  end
end
local exists = redis.call('EXISTS', k_user) == 1
if ARGV[1] == 'create' then
  if exists then return done({'EXISTS', 0}) end
  if redis.call('EXISTS', k_org) == 0 then return done({'NO_ORG', 0}) end
else
  if not exists then return done({'GONE', 0}) end
  if redis.call('HGET', k_user, ARGV[3]) ~= ARGV[4] then return done({'CONFLICT', 0}) end
end
for _, link in ipairs(link_claim) do
  local owner = redis.call('HGET', KEYS[5], link)
  if owner and owner ~= uid then return done({'LINK_TAKEN', 0}) end
end
for _, link in ipairs(link_release) do
  if redis.call('HGET', KEYS[5], link) == uid then redis.call('HDEL', KEYS[5], link) end
end
for _, link in ipairs(link_claim) do redis.call('HSET', KEYS[5], link, uid) end
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
local njobs = tonumber(ARGV[i] or '0'); i = i + 1
for _ = 1, njobs do
  local npairs = tonumber(ARGV[i]); i = i + 1
  local last = i + npairs * 2 - 1
  redis.call('XADD', KEYS[4], '*', unpack(ARGV, i, last))
  i = last + 1
end
return done({'OK', seq}, cmsgpack.unpack(ARGV[6]))
