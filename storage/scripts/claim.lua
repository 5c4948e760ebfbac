-- claim: take a uniqueness key (one value, one owner) for ARGV[1], in the key's own slot.
-- KEYS[1] the claim key (e.g. st:{T})
-- ARGV[1] the new owner  ARGV[2] absolute expiry ms (0 = none)
-- ARGV[3] the owner the caller found stale ("" = none): taken over only if still that one
-- Reply: "" when ARGV[1] holds it now, else the current owner.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] and holder ~= ARGV[3] then return holder end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return ''
