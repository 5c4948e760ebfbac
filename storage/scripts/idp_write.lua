-- idp_write: add, update or remove one identity provider configuration, with its event.
-- An update or removal names the revision it read: a writer working from an older read gets
-- CONFLICT and retries from a fresh read (no lost update). The document is opaque here.
-- The provider's own slot only: its owner's list of providers (another slot) is changed by
-- the relay, with the event.
-- KEYS[1] idp:{I}  KEYS[2] idp:{I}:relay  KEYS[3] its relay:{t}
-- ARGV[1] "add" | "update" | "remove"  ARGV[2] idp id  ARGV[3] expected rev (update/remove)
-- ARGV[4] document  ARGV[5] event type  ARGV[6] payload JSON  ARGV[7] resource owner
-- ARGV[8] the relay ops (msgpack list of storage.codec.IndexOp: the owner's list)
-- ARGV[9..] envelope field/value pairs
-- Reply: {status, sequence, relay entry, entries}; status OK | EXISTS | GONE | CONFLICT.
--#include _emit
local k_idp, k_relay = KEYS[1], KEYS[2]
local mode = ARGV[1]
local exists = redis.call('EXISTS', k_idp) == 1
if mode == 'add' then
  if exists then return done({'EXISTS', 0}) end
else
  if not exists then return done({'GONE', 0}) end
  if redis.call('HGET', k_idp, 'rev') ~= ARGV[3] then return done({'CONFLICT', 0}) end
end
local envelope = {}
for j = 9, #ARGV do envelope[#envelope + 1] = ARGV[j] end
local seq = emit(k_idp, k_relay, ARGV[7], envelope, ARGV[5], ARGV[6])
if mode == 'remove' then
  redis.call('DEL', k_idp)
else
  redis.call('HSET', k_idp, 'doc', ARGV[4])
  redis.call('HINCRBY', k_idp, 'rev', 1)
end
return done({'OK', seq}, cmsgpack.unpack(ARGV[8]))
