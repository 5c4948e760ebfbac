-- Shared by the user, org and PAT scripts (spliced in where a script says "--#include _emit").
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
