-- relay_apply: apply one recorded session commit's effects that live in this call's keys
-- (storage.relay splits an entry by hash slot on a cluster; a single node takes it whole).
-- Every step is idempotent, so an entry applied twice (the repair after a crash) changes
-- nothing more; its events are appended once (see "events").
-- ARGV[1] session id  ARGV[2] the entry's first event sequence  ARGV[3] "r" = repair, else
-- the committing writer's own pass  ARGV[4] MAXLEN ~ of the partition stream
-- ARGV[5] the commit's time ms (the repair looks for its events from 5 s before)  ARGV[6] now
-- then sections, each led by key numbers (0 = not in this call):
--   events: stream key, replayed key, nevents, per event: npairs, field/value pairs
--   ops: nops, per op: "zadd"|"zrem"|"set"|"del"|"cap", key number, score, member;
--        "cap" adds: limit, the evict index's key number (0: the caller records victims)
--   jobs: outbox key, njobs, per job: npairs, field/value pairs
--   ack: relay hash key, pending key, lease key, the entry's field, lease owner to release
-- Reply: the sessions a "cap" op found over the limit (the caller ends them).
local sid, first_seq, repair = ARGV[1], ARGV[2], ARGV[3] == 'r'
local now = ARGV[6]
local i = 7

local function key(n) return KEYS[tonumber(n)] end

-- events: the writer's pass skips an entry the repair already took; the repair marks the
-- entry first, then appends unless the stream already holds it (the writer got there).
local k_stream, k_replayed = ARGV[i], ARGV[i + 1]
local nevents = tonumber(ARGV[i + 2]); i = i + 3
local publish = k_stream ~= '0' and nevents > 0
if publish then
  local kind = redis.call('TYPE', key(k_stream))['ok']
  if kind ~= 'none' and kind ~= 'stream' then
    return redis.error_reply('WRONGTYPE_KEY ' .. key(k_stream))
  end
  if repair then
    redis.call('ZADD', key(k_replayed), now, sid .. ':' .. first_seq)
    redis.call('ZREMRANGEBYSCORE', key(k_replayed), '-inf', tonumber(now) - 86400000)
    local from = math.max(0, tonumber(ARGV[5]) - 5000)
    for _, entry in ipairs(redis.call('XRANGE', key(k_stream), from, '+')) do
      local fields, id, seq = entry[2], nil, nil
      for f = 1, #fields, 2 do
        if fields[f] == 'aggregateId' then id = fields[f + 1] end
        if fields[f] == 'sequence' then seq = fields[f + 1] end
      end
      if id == sid and seq == first_seq then publish = false; break end
    end
  elseif redis.call('ZSCORE', key(k_replayed), sid .. ':' .. first_seq) then
    publish = false
  end
end
for _ = 1, nevents do
  local npairs = tonumber(ARGV[i]); i = i + 1
  local last = i + npairs * 2 - 1
  if publish then
    redis.call('XADD', key(k_stream), 'MAXLEN', '~', ARGV[4], '*', unpack(ARGV, i, last))
  end
  i = last + 1
end

local victims = {}
local nops = tonumber(ARGV[i]); i = i + 1
for _ = 1, nops do
  local op, k, score, member = ARGV[i], key(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3]
  i = i + 4
  if op == 'zadd' then
    redis.call('ZADD', k, score, member)
  elseif op == 'zrem' then
    redis.call('ZREM', k, member)
  elseif op == 'set' then
    -- a token key names one session: never taken over from another (reads check the owner)
    local holder = redis.call('GET', k)
    if not holder or holder == member then
      if tonumber(score) > 0 then
        redis.call('SET', k, member, 'PXAT', score)
      else
        redis.call('SET', k, member)
      end
    end
  elseif op == 'del' then
    if redis.call('GET', k) == member then redis.call('DEL', k) end
  else -- cap: never more than limit members; the least recently active others are ended
    local limit, evict = tonumber(ARGV[i]), ARGV[i + 1]
    i = i + 2
    redis.call('ZADD', k, score, member)
    -- victims stay members until their own termination removes them, so a repeated pass
    -- (the repair) finds the same ones again
    local over = redis.call('ZCARD', k) - limit
    if over > 0 then
      for _, other in ipairs(redis.call('ZRANGE', k, 0, over)) do
        if over > 0 and other ~= member then
          if evict ~= '0' then redis.call('ZADD', key(evict), 'NX', now, other) end
          victims[#victims + 1] = other
          over = over - 1
        end
      end
    end
  end
end

local k_outbox = ARGV[i]
local njobs = tonumber(ARGV[i + 1]); i = i + 2
for _ = 1, njobs do
  local npairs = tonumber(ARGV[i]); i = i + 1
  local last = i + npairs * 2 - 1
  redis.call('XADD', key(k_outbox), '*', unpack(ARGV, i, last))
  i = last + 1
end

local k_relay, k_pending, k_lease = ARGV[i], ARGV[i + 1], ARGV[i + 2]
if k_relay ~= '0' then
  redis.call('HDEL', key(k_relay), ARGV[i + 3])
  if redis.call('EXISTS', key(k_relay)) == 0 then redis.call('ZREM', key(k_pending), sid) end
  if k_lease ~= '0' and ARGV[i + 4] ~= '' and redis.call('GET', key(k_lease)) == ARGV[i + 4] then
    redis.call('DEL', key(k_lease))
  end
end
return victims
