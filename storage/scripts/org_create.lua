-- org_create: a new organization, in its own slot, with its event recorded for the relay.
-- Its name and generated domain are claimed before (storage.name_claims); the write refuses
-- once those claims may have expired, and its relay entry carries the ops confirming them.
-- KEYS[1] org:{O}  KEYS[2] org:{O}:relay  KEYS[3] its relay:{t}
-- ARGV[1] org id  ARGV[2] payload JSON  ARGV[3] deadline of the claims, ms (0 = none)
-- ARGV[4] the relay ops (msgpack list of storage.codec.IndexOp)
-- ARGV[5..] two counted lists: field/value pairs of the org hash, envelope pairs.
-- Reply: {status, sequence, relay entry, entries}; status OK | EXISTS (id taken) |
-- CLAIM_EXPIRED.
--#include _emit
local k_org, k_relay = KEYS[1], KEYS[2]
relay.k_relay, relay.aggregate = k_relay, ARGV[1]
local fields, i = read_list(5)
local envelope = read_list(i)
if claims_expired(ARGV[3]) then return done({'CLAIM_EXPIRED', 0}) end
if redis.call('EXISTS', k_org) == 1 then return done({'EXISTS', 0}) end
redis.call('HSET', k_org, unpack(fields))
local seq = emit(k_org, k_relay, ARGV[1], envelope, 'org.added', ARGV[2])
return done({'OK', seq}, cmsgpack.unpack(ARGV[4]))
