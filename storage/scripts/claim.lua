-- claim: take a PingOne token's key (one token, one session) for ARGV[1] before its write.
-- A new claim is pending: the key holds "~" .. owner and expires after ARGV[2] ms, unless the
-- relay confirms it after the owner's write (the owner's id, with the session's expiry). A
-- writer that dies in between leaves a pending claim that expires by itself.
-- KEYS[1] the claim key (st:{T})
-- ARGV[1] the new owner  ARGV[2] how long a new claim stays pending, ms
-- ARGV[3] the confirmed owner the caller found stale ("" = none): taken over only if still it
-- Reply: {"", this server's time in ms} claimed now, or {holder (with its "~" when pending)}.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[3] then return {holder} end
redis.call('SET', KEYS[1], '~' .. ARGV[1], 'PX', ARGV[2])
local now = redis.call('TIME')
return {'', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)}
