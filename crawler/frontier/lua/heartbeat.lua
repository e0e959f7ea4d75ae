-- KEYS: leased owner workers workerinfo crawl
-- ARGV: worker lease_timeout info_json ('' = keep) crawl_marker ('' = not joined yet) ids...
-- Extends this worker's leases; returns the ids it no longer holds (expired and reclaimed).
-- Writes nothing once the crawl's state vanished (the marker is not this worker's crawl's).
if ARGV[4] ~= '' and redis.call('GET', KEYS[5]) ~= ARGV[4] then
  return redis.error_reply('CRAWL_LOST ' .. KEYS[5])
end
local worker = ARGV[1]
local expiry = lease_expiry(tonumber(ARGV[2]))
redis.call('ZADD', KEYS[3], now, worker)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[4], worker, ARGV[3]) end
local lost = {}
for i = 5, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[2], id) == worker and redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZADD', KEYS[1], 'XX', expiry, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
