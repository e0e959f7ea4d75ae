-- ARGV[9]: the requests as the fields of one packed argument (see fields), each as
-- enqueue_packed reads it. Returns how many were enqueued.
local added = 0
for entry in fields(ARGV[9]) do added = added + enqueue_packed(entry) end
if added > 0 then redis.call('INCRBY', K_NPENDING, added) end
settle()
return added
