-- Shared by create.lua and commit.lua (spliced in where a script says "--#include _write").
-- apply_write(k_state, k_fence, k_partition, k_outbox, index_base, a) writes one session change
-- (its events go to the partition stream only: nothing reads a per-session history):
--   ARGV[a]   expected sequence of the stored session ("" = the session must not exist yet)
--   ARGV[a+1] "1" = replace the hash (termination leaves a tombstone), else merge fields
--   ARGV[a+2] absolute expiry in ms for the session's keys (0 = no expiry)
--   ARGV[a+3] MAXLEN ~ of the partition stream
--   then: nfields, field/value pairs; nevents, per event: npairs, field/value pairs;
--   nops, per op: "zadd"|"zrem"|"set"|"del"|"cap", key number (KEYS[index_base + n]),
--   score, member; "cap" adds: limit, the evict index's key number, now ms (see codec.IndexOp);
--   njobs, per job: npairs, field/value pairs (delivery jobs XADDed to k_outbox: the message
--   is queued in the same atomic step as the challenge that needs it).
-- Returns {previous sequence, sessions evicted by a "cap" op...}, or an error reply:
-- EXISTS, STALE, ST_TAKEN (a "set" key names another session: the token is in use).
local function apply_write(k_state, k_fence, k_partition, k_outbox, index_base, a)
  -- A script's writes are not undone by a later error: refuse before the first write if a
  -- stream key is not a stream (a corrupted or foreign key), so a commit is all or nothing.
  for _, key in ipairs({k_partition, k_outbox}) do
    local kind = redis.call('TYPE', key)['ok']
    if kind ~= 'none' and kind ~= 'stream' then return redis.error_reply('WRONGTYPE_KEY ' .. key) end
  end
  local ops_at = a + 4
  ops_at = ops_at + 1 + tonumber(ARGV[ops_at]) * 2
  local nevents_check = tonumber(ARGV[ops_at]); ops_at = ops_at + 1
  for _ = 1, nevents_check do ops_at = ops_at + 1 + tonumber(ARGV[ops_at]) * 2 end
  local j = ops_at + 1
  for _ = 1, tonumber(ARGV[ops_at]) do
    if ARGV[j] == 'set' then
      local holder = redis.call('GET', KEYS[index_base + tonumber(ARGV[j + 1])])
      if holder and holder ~= ARGV[j + 3] then return redis.error_reply('ST_TAKEN') end
    end
    j = j + (ARGV[j] == 'cap' and 7 or 4)
  end
  local expected = ARGV[a]
  local current = redis.call('HGET', k_state, 'seq')
  if expected == '' then
    if redis.call('EXISTS', k_state) == 1 then return redis.error_reply('EXISTS') end
  elseif current ~= expected then
    return redis.error_reply('STALE')
  end
  if ARGV[a + 1] == '1' then redis.call('DEL', k_state) end
  local expire_at = tonumber(ARGV[a + 2])
  local partition_maxlen = ARGV[a + 3]
  local i = a + 4
  local nfields = tonumber(ARGV[i]); i = i + 1
  redis.call('HSET', k_state, unpack(ARGV, i, i + nfields * 2 - 1))
  i = i + nfields * 2
  local nevents = tonumber(ARGV[i]); i = i + 1
  for _ = 1, nevents do
    local npairs = tonumber(ARGV[i]); i = i + 1
    local last = i + npairs * 2 - 1
    redis.call('XADD', k_partition, 'MAXLEN', '~', partition_maxlen, '*', unpack(ARGV, i, last))
    i = last + 1
  end
  local victims = {current or ''}
  local nops = tonumber(ARGV[i]); i = i + 1
  for _ = 1, nops do
    local op, key = ARGV[i], KEYS[index_base + tonumber(ARGV[i + 1])]
    local score, member = ARGV[i + 2], ARGV[i + 3]
    i = i + 4
    if op == 'zadd' then
      redis.call('ZADD', key, score, member)
    elseif op == 'zrem' then
      redis.call('ZREM', key, member)
    elseif op == 'set' then
      if tonumber(score) > 0 then
        redis.call('SET', key, member, 'PXAT', score)
      else
        redis.call('SET', key, member)
      end
    elseif op == 'del' then
      if redis.call('GET', key) == member then redis.call('DEL', key) end
    else -- cap: never more than limit members; the least recently active others go
      local limit, evict, now = tonumber(ARGV[i]), KEYS[index_base + tonumber(ARGV[i + 1])], ARGV[i + 2]
      i = i + 3
      redis.call('ZADD', key, score, member)
      local over = redis.call('ZCARD', key) - limit
      if over > 0 then
        for _, other in ipairs(redis.call('ZRANGE', key, 0, over)) do
          if over > 0 and other ~= member then
            redis.call('ZREM', key, other)
            redis.call('ZADD', evict, now, other)
            victims[#victims + 1] = other
            over = over - 1
          end
        end
      end
    end
  end
  local njobs = tonumber(ARGV[i]); i = i + 1
  for _ = 1, njobs do
    local npairs = tonumber(ARGV[i]); i = i + 1
    local last = i + npairs * 2 - 1
    redis.call('XADD', k_outbox, '*', unpack(ARGV, i, last))
    i = last + 1
  end
  if expire_at > 0 then
    redis.call('PEXPIREAT', k_state, expire_at)
    if redis.call('EXISTS', k_fence) == 1 then redis.call('PEXPIREAT', k_fence, expire_at) end
  else
    redis.call('PERSIST', k_state)
    redis.call('PERSIST', k_fence)
  end
  return victims
end
