-- org_create: a new organization with an instance-unique name and generated domain.
-- KEYS[1] org:{O}  KEYS[2] orgs:names  KEYS[3] orgs:domains  KEYS[4] org:{O}:relay
-- KEYS[5] its relay:{t}
-- ARGV[1] org id  ARGV[2] lower(name)  ARGV[3] domain  ARGV[4] payload JSON
-- ARGV[5..] two counted lists: field/value pairs of the org hash, envelope pairs.
-- Reply: {status, sequence, relay entry, entries}; status OK | EXISTS (id taken) |
-- NAME_TAKEN (name or domain).
--#include _emit
local k_org, k_names, k_domains, k_relay = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local fields, i = read_list(5)
local envelope = read_list(i)
if redis.call('EXISTS', k_org) == 1 then return done({'EXISTS', 0}) end
if redis.call('HEXISTS', k_names, ARGV[2]) == 1 or redis.call('HEXISTS', k_domains, ARGV[3]) == 1 then
  return done({'NAME_TAKEN', 0})
end
redis.call('HSET', k_org, unpack(fields))
redis.call('HSET', k_names, ARGV[2], ARGV[1])
redis.call('HSET', k_domains, ARGV[3], ARGV[1])
local seq = emit(k_org, k_relay, ARGV[1], envelope, 'org.added', ARGV[4])
return done({'OK', seq})
