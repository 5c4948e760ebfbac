--#read-only
-- st_read: a session by its PingOne token (``/sessions/me``) in one round trip.
-- KEYS[1] st:{sha256(T)}
-- Reply: {session id, doc, tok} or nil (a pending claim's owner too, once written). The session's key is derived here, so this script is
-- for a single node; the session's own state decides whether the token is still its own.
local sid = redis.call('GET', KEYS[1])
if not sid then return nil end
if string.sub(sid, 1, 1) == '~' then sid = string.sub(sid, 2) end  -- a pending claim
local doc = redis.call('HGET', 'sess:{' .. sid .. '}', 'doc')
if not doc then return nil end
return {sid, doc, redis.call('HGET', 'sess:{' .. sid .. '}', 'tok')}
