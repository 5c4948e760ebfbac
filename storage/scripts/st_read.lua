--#read-only
-- st_read: a session by its PingOne token (``/sessions/me``) in one round trip.
-- KEYS[1] st:{sha256(T)}
-- Reply: {session id, doc, tok} or nil. The session's key is derived here, so this script is
-- for a single node; the session's own state decides whether the token is still its own.
local sid = redis.call('GET', KEYS[1])
if not sid then return nil end
local doc = redis.call('HGET', 'sess:{' .. sid .. '}', 'doc')
if not doc then return nil end
return {sid, doc, redis.call('HGET', 'sess:{' .. sid .. '}', 'tok')}
