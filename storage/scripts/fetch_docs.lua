--#read-only
-- fetch_docs: the full state of many sessions in one round trip (PingOne's user listing).
-- KEYS[1..n] sess:{S} of each session.
-- Reply: {doc, tok} per key, in KEYS order (nil where the session is gone or terminated).
local out = {}
for i = 1, #KEYS do
  if redis.call('HEXISTS', KEYS[i], 'term') == 1 then
    out[i] = false
  else
    local doc = redis.call('HGET', KEYS[i], 'doc')
    out[i] = doc and {doc, redis.call('HGET', KEYS[i], 'tok')} or false
  end
end
return out
