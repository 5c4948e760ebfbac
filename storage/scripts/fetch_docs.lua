-- fetch_docs: the full state of many sessions in one round trip (PingOne's user listing).
-- KEYS[1..n] sess:{S} of each session.
-- Reply: one ``doc`` per key, in KEYS order (nil where the session is gone or terminated).
local out = {}
for i = 1, #KEYS do
  if redis.call('HEXISTS', KEYS[i], 'term') == 1 then
    out[i] = false
  else
    out[i] = redis.call('HGET', KEYS[i], 'doc')
  end
end
return out
