-- fetch: the same fields of many sessions in one round trip (listing).
-- KEYS[1..n] sess:{S} of each session  ARGV: field names.
-- Reply: one array of field values per key, in KEYS order (nil where missing).
local out = {}
for i = 1, #KEYS do out[i] = redis.call('HMGET', KEYS[i], unpack(ARGV)) end
return out
