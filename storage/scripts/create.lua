-- create: write a brand-new session (no lease: a fresh id has no other writer; EXISTS guards).
-- KEYS[1] sess:{S}  KEYS[2] sess:{S}:fence
-- KEYS[3] sessiond:events:{P}  KEYS[4] sessiond:outbox  KEYS[5..] index keys
-- ARGV: the apply_write arguments (see _write.lua), from ARGV[1].
-- Reply: "" or an error: EXISTS.
--#include _write
return apply_write(KEYS[1], KEYS[2], KEYS[3], KEYS[4], 4, 1)
