-- outbox_delivered: a job's outbox entry is done; its sent event is published at most once.
-- With ARGV[3] = 1 (the worker has just sent the job) the job is recorded as sent (SET NX of
-- its marker) and, only if that set the marker, its sent event is appended: a job recorded as
-- sent before (another entry of it, another worker's send) publishes nothing. With 0 (the job
-- was found recorded as sent) the entry is only acknowledged. Either way the entry is
-- acknowledged and deleted and its attempts and scheduled retry are forgotten.
-- KEYS[1] sessiond:outbox  KEYS[2] sessiond:outbox:attempts  KEYS[3] sessiond:outbox:retry
-- KEYS[4] outbox:sent:{J}  KEYS[5] sessiond:events:{P} (only when there is an event)
-- ARGV[1] consumer group  ARGV[2] entry id  ARGV[3] 1 sent now, 0 acknowledge only
-- ARGV[4] marker TTL ms  ARGV[5] event stream MAXLEN (~)  ARGV[6..] the event's field/value pairs
-- Reply: 1 recorded as sent (and the event published) by this call, else 0.
local recorded = 0
if ARGV[3] == '1' and redis.call('SET', KEYS[4], '1', 'NX', 'PX', ARGV[4]) then
  recorded = 1
  if KEYS[5] then
    redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[5], '*', unpack(ARGV, 6))
  end
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
return recorded
