-- The start of every script that touches hosts (after now.lua). ARGV: prefix, crawl token,
-- epoch (the token's time), policy changes (JSON or ''), default concurrency, default delay,
-- default minimum delay, lease_timeout; each script's own arguments follow from ARGV[9].
--
-- place(host) puts a host where its state says (see crawler/frontier/redis_lua.py). Its rank in
-- ``ready`` is -priority * SPAN + the milliseconds since the crawl began at which it became
-- ready: the best priority first, then the longest ready. Hosts changed by a script are
-- "touched" and placed once at its end (settle), however many of their requests moved.
local P = ARGV[1]
if redis.call('GET', P .. 'crawl') ~= ARGV[2] then
  return redis.error_reply('CRAWL_LOST ' .. P .. 'crawl')
end
local EPOCH, C0 = tonumber(ARGV[3]), tonumber(ARGV[5])
local D0, M0, LT = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local K_READY, K_WAIT = P .. 'ready', P .. 'wait'
local K_LEASED, K_DELAYED = P .. 'leased', P .. 'delayed'
local K_DATA, K_SCORE, K_DELIV, K_OWNER = P .. 'data', P .. 'score', P .. 'deliveries', P .. 'owner'
local K_NPENDING = P .. 'npending'
local SPAN = 68719476736

local function f6(x) return string.format('%.6f', x) end
-- The gap kept between two starts on a host: crawler.slots.spaced(delay).
local function spaced(d) return d + math.min(d * 0.01, 0.01) end
local function host_of(id) return string.sub(id, 18) end

local touched = {}
local function touch(host, since)
  local old = touched[host]
  if old == nil or (since and (old == true or since < old)) then touched[host] = since or true end
end

local function place(host, since)
  local hk = P .. 'h:' .. host
  local st = redis.call('HMGET', hk, 'a', 'n', 'p', 'h', 'c', 'd', 'm')
  local a = tonumber(st[1]) or 0
  local at = math.max(tonumber(st[2]) or 0, tonumber(st[3]) or 0, tonumber(st[4]) or 0)
  local top = redis.call('ZRANGE', P .. 'q:' .. host, 0, 0, 'WITHSCORES')
  if #top == 0 or a >= (tonumber(st[5]) or C0) then
    redis.call('ZREM', K_READY, host)
    redis.call('ZREM', K_WAIT, host)
    if #top == 0 and a <= 0 and not (st[5] or st[6] or st[7]) then
      -- Nothing left to remember about this host once its next start or pause has passed
      -- (a lease or a report makes the hash PERSIST again).
      if at <= now then
        redis.call('DEL', hk)
      else
        redis.call('PEXPIREAT', hk, math.ceil(at * 1000) + 1000)
      end
    end
    return
  end
  if at > now then
    redis.call('ZREM', K_READY, host)
    redis.call('ZADD', K_WAIT, at, host)
    return
  end
  redis.call('ZREM', K_WAIT, host)
  local old = tonumber(redis.call('ZSCORE', K_READY, host))
  local ms
  if old then
    ms = old - math.floor(old / SPAN) * SPAN  -- ready already: keep how long
  else
    ms = math.min(math.max(math.floor(((since or now) - EPOCH) * 1000), 0), SPAN - 1)
  end
  redis.call('ZADD', K_READY, tonumber(top[2]) * SPAN + ms, host)
end

local function settle()
  for host, since in pairs(touched) do
    if since == true then place(host) else place(host, since) end
  end
  touched = {}
end

-- What the engine reported about hosts (crawler.slots: pause, hold, Crawl-delay, delay).
if ARGV[4] ~= '' then
  for host, ch in pairs(cjson.decode(ARGV[4])) do
    local hk = P .. 'h:' .. host
    redis.call('PERSIST', hk)
    if ch.c then redis.call('HSET', hk, 'c', ch.c) end
    local m = tonumber(redis.call('HGET', hk, 'm')) or M0
    if ch.m and ch.m > m then
      m = ch.m
      redis.call('HSET', hk, 'm', f6(m))
      local n = tonumber(redis.call('HGET', hk, 'n')) or 0
      redis.call('HSET', hk, 'n', f6(math.max(n, now + m)))
      if not ch.d then ch.d = tonumber(redis.call('HGET', hk, 'd')) or D0 end
    end
    if ch.d then redis.call('HSET', hk, 'd', f6(math.max(ch.d, m))) end
    if ch.s then
      -- A request went out ch.s seconds ago: the next start waits the delay from then.
      local d = math.max(tonumber(redis.call('HGET', hk, 'd')) or D0, m)
      local n = tonumber(redis.call('HGET', hk, 'n')) or 0
      if now - ch.s + spaced(d) > n then redis.call('HSET', hk, 'n', f6(now - ch.s + spaced(d))) end
    end
    if ch.p and now + ch.p > (tonumber(redis.call('HGET', hk, 'p')) or 0) then
      redis.call('HSET', hk, 'p', f6(now + ch.p))
    end
    if ch.h then
      if ch.h > 0 then
        redis.call('HSET', hk, 'h', f6(now + LT))
      else
        redis.call('HDEL', hk, 'h')
      end
    end
    touch(host)
  end
end
