#!lua flags=no-writes,allow-cross-slot-keys
-- relay_pending: sessions with commits the relay has not applied since before a cutoff
-- (left by a crashed or stalled writer), over the relay:{t} keys of slots one node serves.
-- KEYS[1] one of them (it routes the call to that node; a cluster wants one slot declared)
-- ARGV[1] cutoff ms  ARGV[2] at most this many  ARGV[3] "batch" on a single node
-- ARGV[4..] every relay:{t} key to look at
-- (read as undeclared keys of the same node, which the allow-cross-slot-keys flag permits)
-- Reply: session ids.
-- almost always none exists: on a single node, count them first with a batch of keys per
-- EXISTS (in C, cheap); a cluster node refuses one command over keys of several slots
if ARGV[3] == 'batch' then
  local any = 0
  for first = 4, #ARGV, 4000 do
    any = any + redis.call('EXISTS', unpack(ARGV, first, math.min(first + 3999, #ARGV)))
    if any > 0 then break end
  end
  if any == 0 then return {} end
end
local found = {}
local limit = tonumber(ARGV[2])
for n = 4, #ARGV do
  for _, sid in ipairs(redis.call('ZRANGEBYSCORE', ARGV[n], '-inf', ARGV[1], 'LIMIT', 0, limit)) do
    found[#found + 1] = sid
    if #found >= limit then return found end
  end
end
return found
