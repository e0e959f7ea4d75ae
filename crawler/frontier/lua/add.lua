-- ARGV from 9: requests packed as enqueue_packed reads them. Returns how many were enqueued.
local added = 0
for i = 9, #ARGV do added = added + enqueue_packed(ARGV[i]) end
if added > 0 then redis.call('INCRBY', K_NPENDING, added) end
settle()
return added
