-- intent_write: move one IdP intent from the state the caller read to the next, with its event.
-- The compare on ``state`` makes every step happen once: two callbacks cannot both finish an
-- intent, two sessions cannot both consume it. The intent's own key only, plus the event.
-- KEYS[1] intent:{I}  KEYS[2] sessiond:events:{P}
-- ARGV[1] expected state ("" = the intent must not exist yet)  ARGV[2] new state
-- ARGV[3] document  ARGV[4] time to live, ms  ARGV[5] MAXLEN ~ of the partition stream
-- ARGV[6] event type  ARGV[7] event payload JSON  ARGV[8] resource owner
-- ARGV[9..] envelope field/value pairs
-- Reply: {status, current state}; status OK | CONFLICT.
--#include _emit
local k_intent = KEYS[1]
local current = redis.call('HGET', k_intent, 'state') or ''
if current ~= ARGV[1] then return {'CONFLICT', current} end
local kind = redis.call('TYPE', KEYS[2])['ok']
if kind ~= 'none' and kind ~= 'stream' then return redis.error_reply('WRONGTYPE_KEY ' .. KEYS[2]) end
redis.call('HSET', k_intent, 'state', ARGV[2], 'doc', ARGV[3])
redis.call('PEXPIRE', k_intent, ARGV[4])
local envelope = {}
for j = 9, #ARGV do envelope[#envelope + 1] = ARGV[j] end
emit(k_intent, KEYS[2], ARGV[5], ARGV[8], envelope, ARGV[6], ARGV[7])
return {'OK', ARGV[2]}
