-- org_create: a new organization with an instance-unique name and generated domain.
-- KEYS[1] org:{O}  KEYS[2] orgs:names  KEYS[3] orgs:domains  KEYS[4] sessiond:events:{P}
-- ARGV[1] org id  ARGV[2] lower(name)  ARGV[3] domain  ARGV[4] MAXLEN ~  ARGV[5] payload JSON
-- ARGV[6..] two counted lists: field/value pairs of the org hash, envelope pairs.
-- Reply: {status, sequence}; status OK | EXISTS (id taken) | NAME_TAKEN (name or domain).
--#include _emit
local k_org, k_names, k_domains, k_stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local fields, i = read_list(6)
local envelope = read_list(i)
if redis.call('EXISTS', k_org) == 1 then return {'EXISTS', 0} end
if redis.call('HEXISTS', k_names, ARGV[2]) == 1 or redis.call('HEXISTS', k_domains, ARGV[3]) == 1 then
  return {'NAME_TAKEN', 0}
end
redis.call('HSET', k_org, unpack(fields))
redis.call('HSET', k_names, ARGV[2], ARGV[1])
redis.call('HSET', k_domains, ARGV[3], ARGV[1])
local seq = emit(k_org, k_stream, ARGV[4], ARGV[1], envelope, 'org.added', ARGV[5])
return {'OK', seq}
