-- ARGV from 9: (fp, score, raw, host) quads. Returns how many were enqueued.
local added = 0
for i = 9, #ARGV, 4 do added = added + enqueue(ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3]) end
if added > 0 then redis.call('INCRBY', K_NPENDING, added) end
settle()
return added
