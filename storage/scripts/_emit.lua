-- Shared by the user, org, PAT and credential-check scripts (spliced in where a script says
-- "--#include _emit").
--
-- emit(k_agg, k_stream, maxlen, owner, envelope, etype, payload) appends one ZITADEL event to
-- the partition stream, numbered with the aggregate's next sequence (HINCRBY seq on k_agg),
-- and returns that sequence. ``envelope`` is the flat field/value list all events of one
-- write share (aggregateType, aggregateId, aggregateVersion, instanceId, creator, createdAt).
local function emit(k_agg, k_stream, maxlen, owner, envelope, etype, payload)
  local seq = redis.call('HINCRBY', k_agg, 'seq', 1)
  redis.call('XADD', k_stream, 'MAXLEN', '~', maxlen, '*', 'type', etype,
             'sequence', tostring(seq), 'resourceOwner', owner, 'payload', payload,
             unpack(envelope))
  return seq
end

-- read_list(i): ARGV[i] is a count n; returns ARGV[i+1..i+n] as a table and the next index.
local function read_list(i)
  local n = tonumber(ARGV[i])
  local out = {}
  for j = 1, n do out[j] = ARGV[i + j] end
  return out, i + n + 1
end

-- record_failure(k_user, k_stream, maxlen, owner, envelope, counter, now, etype, max): one
-- failed credential check: counter += 1 and its event; at ``max`` (max > 0) the user is
-- locked in the same step (user.locked). Returns the new count and 1 if this locked the user.
local function record_failure(k_user, k_stream, maxlen, owner, envelope, counter, now, etype, max)
  local failed = redis.call('HINCRBY', k_user, counter, 1)
  redis.call('HSET', k_user, 'mtime', now)
  emit(k_user, k_stream, maxlen, owner, envelope, etype, '{}')
  if max > 0 and failed >= max then
    redis.call('HSET', k_user, 'state', 'USER_STATE_LOCKED')
    redis.call('HINCRBY', k_user, 'vv', 1)
    emit(k_user, k_stream, maxlen, owner, envelope, 'user.locked', '{}')
    return failed, 1
  end
  return failed, 0
end
