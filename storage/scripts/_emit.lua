-- Shared by the user, org, PAT, IdP, intent and credential-check scripts (spliced in where a
-- script says "--#include _emit").
--
-- emit(k_agg, k_relay, owner, envelope, etype, payload) numbers one ZITADEL event with the
-- aggregate's next sequence (HINCRBY seq on k_agg) and keeps it for the relay entry that
-- ``done`` records in k_relay (the aggregate's own slot: ``user:{U}:relay``); storage.relay
-- appends it to the partition stream. ``envelope`` is the flat field/value list all events of
-- one write share (aggregateType, aggregateId, aggregateVersion, instanceId, creator,
-- createdAt). Returns the sequence.
local relay = {events = {}}
local function emit(k_agg, k_relay, owner, envelope, etype, payload)
  local seq = redis.call('HINCRBY', k_agg, 'seq', 1)
  local event = {'type', etype, 'sequence', tostring(seq), 'resourceOwner', owner,
                 'payload', payload}
  for f = 1, #envelope, 2 do
    event[#event + 1] = envelope[f]
    event[#event + 1] = envelope[f + 1]
    if envelope[f] == 'aggregateId' then relay.aggregate = envelope[f + 1] end
  end
  relay.events[#relay.events + 1] = event
  relay.k_relay, relay.seq = k_relay, seq
  return seq
end

-- now_ms(): this server's clock, in ms.
local function now_ms()
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end

-- claims_expired(deadline): whether a write comes too late for the name claims it relies on
-- (``deadline`` ms by this server's clock; 0 = the write claims nothing).
local function claims_expired(deadline)
  return tonumber(deadline) > 0 and now_ms() > tonumber(deadline)
end

-- done(reply, ops, jobs): records the events emitted, ``ops`` (index ops for other slots,
-- as storage.codec.IndexOp lists) and ``jobs`` (delivery jobs for the outbox, field/value
-- lists; both nil = none) as one relay entry (storage.relay.RelayEntry,
-- msgpack) in the aggregate's relay hash, and registers the aggregate in its slot's
-- relay:{t}, the script's last key; then appends the entry and the number of entries the
-- aggregate has waiting to the reply ('' and 0 when there was nothing to record). Every
-- return of a script that emits goes through it.
local function done(reply, ops, jobs)
  ops, jobs = ops or {}, jobs or {}
  if #relay.events == 0 and #ops == 0 and #jobs == 0 then
    reply[#reply + 1] = ''
    reply[#reply + 1] = 0
    return reply
  end
  local at_ms = now_ms()
  local field = tostring(relay.seq)
  if #relay.events == 0 then  -- ops only: right after the last write's entry (storage.relay)
    field = (redis.call('HGET', KEYS[1], 'seq') or '0') .. '+' .. at_ms
  end
  local entry = cmsgpack.pack({relay.aggregate, field, at_ms, relay.events, ops, jobs, '',
                               relay.k_relay})
  redis.call('HSET', relay.k_relay, field, entry)
  redis.call('ZADD', KEYS[#KEYS], 'NX', at_ms, relay.k_relay)
  reply[#reply + 1] = entry
  reply[#reply + 1] = redis.call('HLEN', relay.k_relay)
  return reply
end

-- read_list(i): ARGV[i] is a count n; returns ARGV[i+1..i+n] as a table and the next index.
local function read_list(i)
  local n = tonumber(ARGV[i])
  local out = {}
  for j = 1, n do out[j] = ARGV[i + j] end
  return out, i + n + 1
end

-- record_failure(k_user, k_relay, owner, envelope, counter, now, etype, max): one
-- failed credential check: counter += 1 and its event; at ``max`` (max > 0) the user is
-- locked in the same step (user.locked). Returns the new count and 1 if this locked the user.
local function record_failure(k_user, k_relay, owner, envelope, counter, now, etype, max)
  local failed = redis.call('HINCRBY', k_user, counter, 1)
  redis.call('HSET', k_user, 'mtime', now)
  emit(k_user, k_relay, owner, envelope, etype, '{}')
  if max > 0 and failed >= max then
    redis.call('HSET', k_user, 'state', 'USER_STATE_LOCKED')
    redis.call('HINCRBY', k_user, 'vv', 1)
    emit(k_user, k_relay, owner, envelope, 'user.locked', '{}')
    return failed, 1
  end
  return failed, 0
end
