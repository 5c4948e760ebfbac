-- create: write a brand-new session (no lease: a fresh id has no other writer; EXISTS guards).
-- KEYS[1] sess:{S}  KEYS[2] sess:{S}:fence  KEYS[3] sess:{S}:relay  KEYS[4] relay:{t}
-- ARGV: the apply_write arguments (see _write.lua), from ARGV[1].
-- Reply: see apply_write, or an error: EXISTS.
--#include _write
return apply_write(KEYS[1], KEYS[2], KEYS[3], KEYS[4], 1)
