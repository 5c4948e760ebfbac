-- outbox_delivered: a job's outbox entry is done, in the outbox's slot.
-- With ARGV[3] = 1 (the worker has just sent the job) the job is recorded as sent (SET NX of
-- its marker); the reply says whether that set the marker, and only then does the caller
-- publish the job's sent event: a job recorded as sent before (another entry of it, another
-- worker's send) publishes nothing. With 0 (the job was found recorded as sent) the entry is
-- only acknowledged. Either way the entry is acknowledged and deleted and its attempts and
-- scheduled retry are forgotten.
-- KEYS[1] sessiond:outbox  KEYS[2] its attempts  KEYS[3] its retries  KEYS[4] the job's marker
-- (all tagged {sessiond:outbox})
-- ARGV[1] consumer group  ARGV[2] entry id  ARGV[3] 1 sent now, 0 acknowledge only
-- ARGV[4] marker TTL ms
-- Reply: 1 recorded as sent by this call, else 0.
local recorded = 0
if ARGV[3] == '1' and redis.call('SET', KEYS[4], '1', 'NX', 'PX', ARGV[4]) then
  recorded = 1
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
return recorded
