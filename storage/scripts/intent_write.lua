-- intent_write: move one IdP intent from the state the caller read to the next, with its event.
-- The compare on ``state`` makes every step happen once: two callbacks cannot both finish an
-- intent, two sessions cannot both consume it. The intent's own slot only (the event is relayed).
-- KEYS[1] intent:{I}  KEYS[2] intent:{I}:relay  KEYS[3] its relay:{t}
-- ARGV[1] expected state ("" = the intent must not exist yet)  ARGV[2] new state
-- ARGV[3] document  ARGV[4] time to live, ms
-- ARGV[5] event type  ARGV[6] event payload JSON  ARGV[7] resource owner
-- ARGV[8..] envelope field/value pairs
-- Reply: {status, current state, relay entry, entries}; status OK | CONFLICT.
--#include _emit
local k_intent = KEYS[1]
local current = redis.call('HGET', k_intent, 'state') or ''
if current ~= ARGV[1] then return done({'CONFLICT', current}) end
redis.call('HSET', k_intent, 'state', ARGV[2], 'doc', ARGV[3])
redis.call('PEXPIRE', k_intent, ARGV[4])
local envelope = {}
for j = 8, #ARGV do envelope[#envelope + 1] = ARGV[j] end
emit(k_intent, KEYS[2], ARGV[7], envelope, ARGV[5], ARGV[6])
return done({'OK', ARGV[2]})
