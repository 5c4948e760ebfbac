-- commit: write a change of an existing session, only by the current lease holder.
-- The fencing check lives here, at the storage, so a writer whose lease expired (paused
-- process, network partition) can never overwrite a newer writer's state.
-- KEYS[1] sess:{S}:lease  KEYS[2] sess:{S}  KEYS[3] sess:{S}:fence
-- KEYS[4] sess:{S}:relay  KEYS[5] relay:{t}
-- ARGV[1] owner  ARGV[2] fencing token  ARGV[3] lease TTL ms (renewed: the lease is released
-- when the relay has applied this commit, so the session's next commit never overtakes it)
-- ARGV[4..] apply_write arguments.
-- Reply: see apply_write, or an error: LEASE_LOST, STALE_FENCE, STALE.
--#include _write
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('LEASE_LOST') end
if redis.call('GET', KEYS[3]) ~= ARGV[2] then return redis.error_reply('STALE_FENCE') end
local result = apply_write(KEYS[2], KEYS[3], KEYS[4], KEYS[5], 4)
if type(result) == 'table' and result.err then return result end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return result
