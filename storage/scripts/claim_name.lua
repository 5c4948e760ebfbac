-- claim_name: take a unique name's key for an owner before the owner's own write.
-- The claim is pending (it expires at ARGV[2]) until the relay confirms it after the owner's
-- write (SET without expiry); a writer that dies in between leaves a claim that expires.
-- KEYS[1] the name's key (login:{name}, ...)
-- ARGV[1] the owner  ARGV[2] how long a new claim stays pending, ms
-- ARGV[3] the holder the caller found stale ("" = none): taken over only if still that one
-- Reply: {"", this server's time in ms} claimed now, {"=", 0} the owner's already (left as
-- it is), or {holder, ms until the holder's pending claim expires (-1: confirmed)}.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then return {'=', 0} end
if holder and holder ~= ARGV[3] then return {holder, redis.call('PTTL', KEYS[1])} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local now = redis.call('TIME')
return {'', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)}
