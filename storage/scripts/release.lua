-- release: give up a lease (or a name's claim), only if we still own it.
-- KEYS[1] sess:{S}:lease (login:{name}, ...)  ARGV[1] owner.  Reply: 1 released, 0 not ours (expired/taken).
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
