-- KEYS: npending delayed leased done dead seeded seeder workers workerinfo crawl
-- ARGV: worker lease_timeout crawl_marker
-- Returns {pending, delayed, leased, done, dead, seeding} where seeding is 0 (seeded, never
-- claimed, or claimed by this worker), 1 (a live worker is still adding start requests) or
-- 2 (its seeder stopped or died before adding them all).
if redis.call('GET', KEYS[10]) ~= ARGV[3] then
  return redis.error_reply('CRAWL_LOST ' .. KEYS[10])
end
local seeding = 0
if not redis.call('GET', KEYS[6]) then
  local owner = redis.call('GET', KEYS[7])
  if owner and owner ~= ARGV[1] then
    if worker_alive(KEYS[8], KEYS[9], owner, now, tonumber(ARGV[2])) then
      seeding = 1
    else
      seeding = 2
    end
  end
end
return {tonumber(redis.call('GET', KEYS[1]) or '0'), redis.call('ZCARD', KEYS[2]),
        redis.call('ZCARD', KEYS[3]), tonumber(redis.call('GET', KEYS[4]) or '0'),
        redis.call('HLEN', KEYS[5]), seeding}
