-- relay_apply: apply one recorded write's effects (a session's commit, a user's write...) that live in this call's keys
-- (storage.relay splits an entry by hash slot on a cluster; a single node takes it whole).
-- Every step is idempotent, so an entry applied twice (the repair after a crash) changes
-- nothing more; its events are appended once (see "events").
-- KEYS: every key this call touches (an op whose key is not among them is another call's).
-- ARGV[1] the entry ("": the aggregate's only one, made in the last second; msgpack,
-- storage.relay.RelayEntry: aggregate id, field, time ms, events
-- as field/value lists, ops as {op, key, score, member, limit}, jobs, lease owner, and where
-- it is recorded unless it is a session's)
-- ARGV[2] "r" = repair, else the committing writer's own pass  ARGV[3] MAXLEN ~ of the
-- partition stream  ARGV[4] now ms  ARGV[5] the partition stream, if this call publishes
-- ARGV[6] the outbox, if this call queues the jobs  ARGV[7] the evict index, if this call
-- records a cap's victims  ARGV[8] the relay hash (sess:{S}:relay, user:{U}:relay...), if
-- this call clears the entry; then ARGV[9] relay:{t}  ARGV[10] the lease  ARGV[11] the lease
-- owner to release ("" = none)  ARGV[12] the aggregate's member of relay:{t}.
-- Reply: {1, the sessions a "cap" op found over the limit (the caller ends them)...}, or {0}
-- when a writer's pass that clears the entry found it not recorded as given (its commit was
-- refused, or the repair cleared it) or found older entries (the caller applies them all).
local k_stream, k_outbox, k_evict, k_relay = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local blob = ARGV[1]
if blob == '' then
  -- a writer's pass sent with a write whose entry is made in Lua (a user's, an org's...):
  -- the aggregate's only entry, if that write just made it (an older one, left by a dead
  -- writer, may be the repair's at this moment: the caller applies it instead)
  local recorded = redis.call('HGETALL', k_relay)
  if #recorded ~= 2 then return {0} end
  blob = recorded[2]
end
local e = cmsgpack.unpack(blob)
local sid, field, at_ms, events, ops, jobs = e[1], e[2], e[3], e[4], e[5], e[6]
local repair, now = ARGV[2] == 'r', ARGV[4]
if ARGV[1] == '' then
  local clock = redis.call('TIME')
  if tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000) - at_ms > 1000 then
    return {0}
  end
  now = at_ms
  -- and only if this call was sent with every key the entry needs (else the caller's pass)
  local declared = {}
  for _, k in ipairs(KEYS) do declared[k] = true end
  for _, op in ipairs(ops) do
    if not declared[op[2]] then return {0} end
  end
  if #jobs > 0 and k_outbox == '' then return {0} end
end

-- the writer's pass that clears the entry in the same call (a single node; it may be sent
-- with the commit, before its outcome is known) applies only what its commit recorded, and
-- only when no older entry waits (those go first: the caller applies them all, in order)
local whole = k_relay ~= '' and not repair
if whole then
  if redis.call('HGET', k_relay, field) ~= blob or redis.call('HLEN', k_relay) > 1 then
    return {0}
  end
end

-- events: the writer's pass skips an entry the repair already took; the repair marks the
-- entry first, then appends unless the stream already holds it (the writer got there).
if k_stream ~= '' and #events > 0 then
  local kind = redis.call('TYPE', k_stream)['ok']
  if kind ~= 'none' and kind ~= 'stream' then
    return redis.error_reply('WRONGTYPE_KEY ' .. k_stream)
  end
  local first_seq = ''
  for f = 1, #events[1], 2 do
    if events[1][f] == 'sequence' then first_seq = events[1][f + 1] end
  end
  local mark = sid .. ':' .. first_seq
  local k_replayed = k_stream .. ':replayed'
  local publish = true
  if repair then
    redis.call('ZADD', k_replayed, now, mark)
    redis.call('ZREMRANGEBYSCORE', k_replayed, '-inf', tonumber(now) - 86400000)
    for _, entry in ipairs(redis.call('XRANGE', k_stream, math.max(0, at_ms - 5000), '+')) do
      local fields, id, seq = entry[2], nil, nil
      for f = 1, #fields, 2 do
        if fields[f] == 'aggregateId' then id = fields[f + 1] end
        if fields[f] == 'sequence' then seq = fields[f + 1] end
      end
      if id == sid and seq == first_seq then publish = false; break end
    end
  elseif not whole and redis.call('ZSCORE', k_replayed, mark) then
    -- (a whole pass found its entry recorded: the repair, which clears it, has not run)
    publish = false
  end
  if publish then
    for _, pairs in ipairs(events) do
      redis.call('XADD', k_stream, 'MAXLEN', '~', ARGV[3], '*', unpack(pairs))
    end
  end
end

local here = {}
for _, k in ipairs(KEYS) do here[k] = true end
local victims = {1}
for _, op in ipairs(ops) do
  local kind, k, score, member = op[1], op[2], op[3], op[4]
  if here[k] then
    -- an index kept only while a cap is set starts from the user's sessions (op[6]), on
    -- whichever op reaches it first: a later cap then counts every session
    local source = op[6]
    if source and source ~= '' and redis.call('EXISTS', k) == 0 then
      redis.call('ZUNIONSTORE', k, 1, source)
    end
    if kind == 'zadd' then
      redis.call('ZADD', k, score, member)
    elseif kind == 'zrem' then
      redis.call('ZREM', k, member)
    elseif kind == 'set' then
      -- a token key names one session: never taken over from another (reads check the
      -- owner); the owner's pending claim ("~" .. owner) is confirmed
      local holder = redis.call('GET', k)
      if not holder or holder == member or holder == '~' .. member then
        if score > 0 then
          redis.call('SET', k, member, 'PXAT', score)
        else
          redis.call('SET', k, member)
        end
      end
    elseif kind == 'del' then
      local holder = redis.call('GET', k)
      if holder == member or holder == '~' .. member then redis.call('DEL', k) end
    elseif kind == 'hset' then
      -- a record created with its owner's event (a PAT): its fields, as a JSON list
      redis.call('HSET', k, unpack(cjson.decode(member)))
      if score > 0 then redis.call('PEXPIREAT', k, score) else redis.call('PERSIST', k) end
    elseif kind == 'sadd' then
      redis.call('SADD', k, member)
    elseif kind == 'srem' then
      redis.call('SREM', k, member)
    else -- cap: never more than limit members; the least recently active others are ended
      redis.call('ZADD', k, score, member)
      -- victims stay members until their own termination removes them, so a repeated pass
      -- (the repair) finds the same ones again
      local over = redis.call('ZCARD', k) - op[5]
      if over > 0 then
        for _, other in ipairs(redis.call('ZRANGE', k, 0, over)) do
          if over > 0 and other ~= member then
            if k_evict ~= '' then redis.call('ZADD', k_evict, 'NX', now, other) end
            victims[#victims + 1] = other
            over = over - 1
          end
        end
      end
    end
  end
end

if k_outbox ~= '' then
  for _, pairs in ipairs(jobs) do redis.call('XADD', k_outbox, '*', unpack(pairs)) end
end

if k_relay ~= '' then
  redis.call('HDEL', k_relay, field)
  if redis.call('EXISTS', k_relay) == 0 then redis.call('ZREM', ARGV[9], ARGV[12]) end
  if ARGV[11] ~= '' and redis.call('GET', ARGV[10]) == ARGV[11] then
    redis.call('DEL', ARGV[10])
  end
end
return victims
