--#read-only
-- fetch: the summary rows of many sessions in one round trip (listing).
-- KEYS[1..n] sess:{S} of each session.
-- Reply: one ``row`` per key, in KEYS order (nil where the session is gone or terminated).
local out = {}
for i = 1, #KEYS do out[i] = redis.call('HGET', KEYS[i], 'row') end
return out
