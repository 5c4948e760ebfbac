-- release: give up the lease, only if we still own it.
-- KEYS[1] sess:{S}:lease  ARGV[1] owner.  Reply: 1 released, 0 not ours (expired/taken).
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
