-- KEYS: seeded seeder workers workerinfo crawl ready leased wait delayed
-- ARGV: worker lease_timeout hex
-- Returns {claim, crawl marker, ready hosts, leases, seconds until the earliest waiting host
-- or delayed request ('-1': none)}. The first worker to open sets the marker. claim is
-- 'seeded' (all start requests were added), 'mine' (this worker seeds: nobody claimed it,
-- or its claimer stopped or died before finishing) or 'other' (a live worker is seeding).
if not redis.call('GET', KEYS[5]) then
  redis.call('SET', KEYS[5], string.format('%.6f', now) .. ':' .. ARGV[3])
end
local marker = redis.call('GET', KEYS[5])
local nxt = -1
for _, k in ipairs({KEYS[8], KEYS[9]}) do
  local first = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
  if #first > 0 then
    local x = math.max(0, tonumber(first[2]) - now)
    if nxt < 0 or x < nxt then nxt = x end
  end
end
local function reply(claim)
  return {claim, marker, redis.call('ZCARD', KEYS[6]), redis.call('ZCARD', KEYS[7]),
          string.format('%.6f', nxt)}
end
if redis.call('GET', KEYS[1]) then return reply('seeded') end
local owner = redis.call('GET', KEYS[2])
if owner and owner ~= ARGV[1]
   and worker_alive(KEYS[3], KEYS[4], owner, now, tonumber(ARGV[2])) then
  return reply('other')
end
redis.call('SET', KEYS[2], ARGV[1])
return reply('mine')
