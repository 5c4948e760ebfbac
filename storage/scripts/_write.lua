-- Shared by create.lua and commit.lua (spliced in where a script says "--#include _write").
-- apply_write(k_state, k_fence, k_relay, k_pending, a) writes one session change and records
-- its effects for the relay, all in the session's own slot (storage.relay applies them):
--   ARGV[a]   expected sequence of the stored session ("" = the session must not exist yet)
--   ARGV[a+1] "1" = replace the hash (termination leaves a tombstone), else merge fields
--   ARGV[a+2] absolute expiry in ms for the session's keys (0 = no expiry)
--   ARGV[a+3] nfields, then field/value pairs
--   then: the relay entry's field in k_relay, the encoded entry, its time (ms), session id,
--   the deadline (ms, this server's clock; 0 = none) of the token claim the write relies on.
-- Returns {previous sequence ("" for a new session), the session's unrelayed entries now
-- (more than 1: an earlier commit's relay failed, apply that first)}, or an error reply:
-- EXISTS, STALE, CLAIM_EXPIRED (too late: the pending claim may have expired).
local function apply_write(k_state, k_fence, k_relay, k_pending, a)
  local expected = ARGV[a]
  local deadline = tonumber(ARGV[a + 3 + tonumber(ARGV[a + 3]) * 2 + 5])
  if deadline > 0 then
    local now = redis.call('TIME')
    if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > deadline then
      return redis.error_reply('CLAIM_EXPIRED')
    end
  end
  local current = redis.call('HGET', k_state, 'seq')
  if expected == '' then
    if redis.call('EXISTS', k_state) == 1 then return redis.error_reply('EXISTS') end
  elseif current ~= expected then
    return redis.error_reply('STALE')
  end
  if ARGV[a + 1] == '1' then redis.call('DEL', k_state) end
  local expire_at = tonumber(ARGV[a + 2])
  local i = a + 3
  local nfields = tonumber(ARGV[i]); i = i + 1
  redis.call('HSET', k_state, unpack(ARGV, i, i + nfields * 2 - 1))
  i = i + nfields * 2
  redis.call('HSET', k_relay, ARGV[i], ARGV[i + 1])
  -- NX: the score stays the oldest unrelayed commit's time, which the repair goes by
  redis.call('ZADD', k_pending, 'NX', ARGV[i + 2], ARGV[i + 3])
  if expire_at > 0 then
    redis.call('PEXPIREAT', k_state, expire_at)
    if redis.call('EXISTS', k_fence) == 1 then redis.call('PEXPIREAT', k_fence, expire_at) end
  else
    redis.call('PERSIST', k_state)
    redis.call('PERSIST', k_fence)
  end
  return {current or '', redis.call('HLEN', k_relay)}
end
