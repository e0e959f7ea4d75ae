-- ARGV[9]: the requests as the fields of one packed argument (see fields), each as
-- enqueue_packed reads it. Returns {how many were enqueued, the absolute index in P:links of
-- the first link this call pushed, the index past its last} (see publish_links).
local added = 0
for entry in fields(ARGV[9]) do added = added + enqueue_packed(entry) end
if added > 0 then redis.call('INCRBY', K_NPENDING, added) end
local first = publish_links()
settle()
return {added, first, links_total}
