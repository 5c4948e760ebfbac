-- commit: write a change of an existing session, only by the current lease holder.
-- The fencing check lives here, at the storage, so a writer whose lease expired (paused
-- process, network partition) can never overwrite a newer writer's state.
-- KEYS[1] sess:{S}:lease  KEYS[2] sess:{S}  KEYS[3] sess:{S}:fence
-- KEYS[4] sessiond:events:{P}  KEYS[5] sessiond:outbox  KEYS[6..] index keys
-- ARGV[1] owner  ARGV[2] fencing token  ARGV[3] "1" = release the lease after writing
-- ARGV[4] lease TTL ms (renewed when not releasing)  ARGV[5..] apply_write arguments.
-- Reply: the previous sequence, or an error: LEASE_LOST, STALE_FENCE, STALE.
--#include _write
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('LEASE_LOST') end
if redis.call('GET', KEYS[3]) ~= ARGV[2] then return redis.error_reply('STALE_FENCE') end
local result = apply_write(KEYS[2], KEYS[3], KEYS[4], KEYS[5], 5, 5)
if type(result) == 'table' and result.err then return result end
if ARGV[3] == '1' then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return result
