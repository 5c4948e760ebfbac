-- outbox_hold: right before a send, make sure the entry is still this consumer's and start
-- its idle time again, so no other worker takes it over (XAUTOCLAIM) while it is sent.
-- KEYS[1] sessiond:outbox
-- ARGV[1] consumer group  ARGV[2] consumer  ARGV[3] entry id
-- Reply: 1 held (its idle time is 0 again), 0 not pending for this consumer any more (another
-- worker took it over, or it is done): it must not be sent.
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if pending[1] == nil or pending[1][2] ~= ARGV[2] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
