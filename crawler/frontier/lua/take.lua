-- Leasing, shared by lease.lua and the leases an ack brings back (ack.lua); after hosts.lua.

-- The workers asking for work in the last second share each host's concurrency: one worker
-- takes at most its share of a host's places, so a worker that joins (or drained) gets
-- places as the others' requests end instead of polling for the few left over. Returns how
-- many workers asked in the last second, this one included.
local K_ASKING = P .. 'asking'
local function asking(worker)
  redis.call('ZADD', K_ASKING, now, worker)
  redis.call('ZREMRANGEBYSCORE', K_ASKING, '-inf', now - 60)
  return redis.call('ZCOUNT', K_ASKING, now - 1, '+inf')
end

-- Leases whose worker stopped heartbeating go back to their host, freeing its place; due
-- delayed requests go back to their host; hosts whose delay or pause has passed become
-- ready. At most ``batch`` of each. Returns how many leases expired.
local function reclaim(batch)
  local expired = redis.call('ZRANGEBYSCORE', K_LEASED, '-inf', now * 1000, 'LIMIT', 0, batch)
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
  return #expired
end

-- Pops the best ready hosts and leases their best requests to ``worker``, up to ``limit``:
-- one when the host has a delay (its next start becomes now + delay), else up to its free
-- places and, with several workers asking, this worker's share of them (``mine``: host ->
-- its leases of it). ``nodelay``: hosts with a delay are left ready for an explicit lease
-- (a lease brought back by an ack may wait a moment before it starts). Returns the flat
-- {id, deliveries, raw, ...}, how many were dead-lettered, and how many ready hosts are left
-- that this worker may take from.
local function take(limit, worker, maxd, askers, mine, nodelay)
  local expiry = lease_expiry(LT)
  local out, later = {}, {}
  local got, dead, rounds, capped = 0, 0, 0, 0
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
    if nodelay and d > 0 then room = 0 end
    local taken = 0
    if room > 0 then
      local popped = redis.call('ZPOPMIN', P .. 'q:' .. host, math.min(room, limit - got))
      local ids = {}
      for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
      -- The batch's requests in one HMGET, its leases in one ZADD and one HSET.
      local raws = #ids > 0 and redis.call('HMGET', K_DATA, unpack(ids)) or {}
      local expiries, owners = {}, {}
      if #ids > 0 then redis.call('DECRBY', K_NPENDING, #ids) end
      for j, id in ipairs(ids) do
        local raw = raws[j]
        if raw then
          local n = redis.call('HINCRBY', K_DELIV, id, 1)
          if n > maxd then
            local reason = 'leased ' .. (n - 1) .. ' times without being acknowledged: each time '
              .. 'its worker stopped heartbeating (killed or crashed) before finishing it'
            redis.call('HSET', P .. 'dead', id, '{"reason":' .. cjson.encode(reason)
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
            expiries[#expiries + 1] = expiry
            expiries[#expiries + 1] = id
            owners[#owners + 1] = id
            owners[#owners + 1] = worker
            out[#out + 1] = id
            out[#out + 1] = n
            out[#out + 1] = raw
            taken = taken + 1
          end
        end
      end
      if #expiries > 0 then
        redis.call('ZADD', K_LEASED, unpack(expiries))
        redis.call('HSET', K_OWNER, unpack(owners))
      end
    end
    if taken > 0 then
      got = got + taken
      redis.call('HSET', hk, 'a', a + taken)
      redis.call('PERSIST', hk)
      if d > 0 then redis.call('HSET', hk, 'n', f6(now + spaced(d))) end
      mine[host] = (mine[host] or 0) + taken
    end
    local full = askers > 1 and (mine[host] or 0) >= math.ceil(c / askers)
    if a + taken < c and (full or (nodelay and d > 0)) then
      later[#later + 1] = host  -- ready, not for this call: placed after the loop
      if full then capped = capped + 1 end
    else
      place(host)
    end
  end
  for _, host in ipairs(later) do place(host) end
  if dead > 0 then redis.call('HINCRBY', P .. 'stats', 'frontier/dead_lettered', dead) end
  return out, dead, math.max(0, redis.call('ZCARD', K_READY) - capped)
end

-- Seconds until the earliest waiting host or delayed request, '-1' for none.
local function next_due()
  local nxt = -1
  local w = redis.call('ZRANGE', K_WAIT, 0, 0, 'WITHSCORES')
  if #w > 0 then nxt = math.max(0, tonumber(w[2]) - now) end
  local dl = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
  if #dl > 0 then
    local x = math.max(0, tonumber(dl[2]) - now)
    if nxt < 0 or x < nxt then nxt = x end
  end
  return nxt < 0 and '-1' or f6(nxt)
end
