-- ARGV from 9: limit worker max_deliveries batch mine (JSON host -> this worker's leases of
-- it, '' for none)
-- Returns {{id, deliveries, raw, ...}, pending, leased, ready hosts, next ('-1': none: seconds
-- until the earliest waiting host or delayed request), reclaimed, dead_lettered}
local limit, worker = tonumber(ARGV[9]), ARGV[10]
local maxd, batch = tonumber(ARGV[11]), tonumber(ARGV[12])
local expiry = now + LT
local k_dead = P .. 'dead'

-- The workers asking for work in the last second share each host's concurrency: one worker
-- takes at most its share of a host's places, so a worker that joins (or drained) gets
-- places as the others' requests end instead of polling for the few left over.
local K_ASKING = P .. 'asking'
redis.call('ZADD', K_ASKING, now, worker)
redis.call('ZREMRANGEBYSCORE', K_ASKING, '-inf', now - 60)
local askers = redis.call('ZCOUNT', K_ASKING, now - 1, '+inf')
local mine = {}
if askers > 1 and ARGV[13] ~= '' then mine = cjson.decode(ARGV[13]) end

-- Leases whose worker stopped heartbeating go back to their host, freeing its place.
local expired = redis.call('ZRANGEBYSCORE', K_LEASED, '-inf', now, 'LIMIT', 0, batch)
for _, id in ipairs(expired) do
  local host = host_of(id)
  redis.call('ZREM', K_LEASED, id)
  redis.call('HINCRBY', P .. 'h:' .. host, 'a', -1)
  redis.call('ZADD', P .. 'q:' .. host, redis.call('HGET', K_SCORE, id) or 0, id)
  touch(host)
end
if #expired > 0 then redis.call('HINCRBY', P .. 'stats', 'frontier/reclaimed', #expired) end
local due = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', now, 'LIMIT', 0, batch)
for _, id in ipairs(due) do
  local host = host_of(id)
  redis.call('ZREM', K_DELAYED, id)
  redis.call('ZADD', P .. 'q:' .. host, redis.call('HGET', K_SCORE, id) or 0, id)
  touch(host)
end
if #expired + #due > 0 then redis.call('INCRBY', K_NPENDING, #expired + #due) end
-- Hosts whose delay or pause has passed: ready since that moment.
local woke = redis.call('ZRANGEBYSCORE', K_WAIT, '-inf', now, 'WITHSCORES', 'LIMIT', 0, batch)
for i = 1, #woke, 2 do touch(woke[i], tonumber(woke[i + 1])) end
settle()

local out = {}
local capped = {}
local got, dead, rounds = 0, 0, 0
while got < limit and rounds < limit + 100 do
  rounds = rounds + 1
  local best = redis.call('ZPOPMIN', K_READY)
  if #best == 0 then break end
  local host = best[1]
  local hk = P .. 'h:' .. host
  local st = redis.call('HMGET', hk, 'a', 'c', 'd')
  local a = tonumber(st[1]) or 0
  local d = tonumber(st[3]) or D0
  local c = tonumber(st[2]) or C0
  local room = c - a
  if askers > 1 then
    local share = math.ceil(c / askers) - (mine[host] or 0)
    if share < room then room = share end
  end
  if d > 0 and room > 1 then room = 1 end  -- the next start waits for the delay
  local taken = 0
  if room > 0 then
    local ids = redis.call('ZPOPMIN', P .. 'q:' .. host, math.min(room, limit - got))
    if #ids > 0 then redis.call('DECRBY', K_NPENDING, #ids / 2) end
    for i = 1, #ids, 2 do
      local id = ids[i]
      local raw = redis.call('HGET', K_DATA, id)
      if raw then
        local n = redis.call('HINCRBY', K_DELIV, id, 1)
        if n > maxd then
          local reason = 'leased ' .. (n - 1) .. ' times without being acknowledged: each time '
            .. 'its worker stopped heartbeating (killed or crashed) before finishing it'
          redis.call('HSET', k_dead, id, '{"reason":' .. cjson.encode(reason)
            .. ',"deliveries":' .. (n - 1)
            .. ',"last_worker":' .. cjson.encode(redis.call('HGET', K_OWNER, id) or '')
            .. ',"at":' .. string.format('%.3f', now)
            .. ',"request":' .. raw .. '}')
          redis.call('HDEL', K_DATA, id)
          redis.call('HDEL', K_SCORE, id)
          redis.call('HDEL', K_DELIV, id)
          redis.call('HDEL', K_OWNER, id)
          dead = dead + 1
        else
          redis.call('ZADD', K_LEASED, expiry, id)
          redis.call('HSET', K_OWNER, id, worker)
          out[#out + 1] = id
          out[#out + 1] = n
          out[#out + 1] = raw
          taken = taken + 1
        end
      end
    end
  end
  if taken > 0 then
    got = got + taken
    redis.call('HSET', hk, 'a', a + taken)
    redis.call('PERSIST', hk)
    if d > 0 then redis.call('HSET', hk, 'n', f6(now + spaced(d))) end
    mine[host] = (mine[host] or 0) + taken
  end
  if askers > 1 and a + taken < c and (mine[host] or 0) >= math.ceil(c / askers) then
    capped[#capped + 1] = host  -- ready for the others, not this worker: placed after the loop
  else
    place(host)
  end
end
for _, host in ipairs(capped) do place(host) end
if dead > 0 then redis.call('HINCRBY', P .. 'stats', 'frontier/dead_lettered', dead) end

local nxt = -1
local w = redis.call('ZRANGE', K_WAIT, 0, 0, 'WITHSCORES')
if #w > 0 then nxt = math.max(0, tonumber(w[2]) - now) end
local dl = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
if #dl > 0 then
  local x = math.max(0, tonumber(dl[2]) - now)
  if nxt < 0 or x < nxt then nxt = x end
end
-- The ready hosts this worker may take from: the capped ones wait for its own leases to end.
local ready = math.max(0, redis.call('ZCARD', K_READY) - #capped)
return {out, tonumber(redis.call('GET', K_NPENDING) or '0'), redis.call('ZCARD', K_LEASED),
        ready, nxt < 0 and '-1' or f6(nxt), #expired, dead}
