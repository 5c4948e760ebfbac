-- outbox_adopt: move an earlier version's outbox key (another slot) to its new name; a
-- single node only (there is no earlier data on a cluster). Idempotent: every process may
-- run it at start. If both exist (a process of the earlier version wrote meanwhile), the old
-- one's content is merged in: attempt counts and retry times the new key lacks, dead letters
-- appended (new ids).
-- KEYS[1] the earlier name  KEYS[2] the new name.  Reply: 1 moved or merged, 0 nothing to do.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('RENAME', KEYS[1], KEYS[2])
  return 1
end
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'hash' then
  local flat = redis.call('HGETALL', KEYS[1])
  for i = 1, #flat, 2 do redis.call('HSETNX', KEYS[2], flat[i], flat[i + 1]) end
elseif kind == 'zset' then
  local flat = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  for i = 1, #flat, 2 do redis.call('ZADD', KEYS[2], 'NX', flat[i + 1], flat[i]) end
elseif kind == 'stream' then
  for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
    redis.call('XADD', KEYS[2], '*', unpack(entry[2]))
  end
end
redis.call('DEL', KEYS[1])
return 1
