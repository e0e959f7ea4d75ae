-- ARGV from 9, for each ack: id, how many children, then the children's (fp, score, raw,
-- host) quads. Returns {children added, 1 if this ack completed the request else 0} per ack,
-- flat. The first ack of a request wins, whoever holds its lease now: the work is done, and
-- a second ack is a no-op.
local out = {}
local total = 0
local i = 9
while i <= #ARGV do
  local id, nc = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local host = host_of(id)
  local found = 0
  if redis.call('ZREM', K_LEASED, id) == 1 then
    found = 1
    redis.call('HINCRBY', P .. 'h:' .. host, 'a', -1)
    touch(host)
  elseif redis.call('ZREM', P .. 'q:' .. host, id) == 1 then
    found = 1
    redis.call('DECR', K_NPENDING)
    touch(host)
  elseif redis.call('ZREM', K_DELAYED, id) + redis.call('HDEL', P .. 'dead', id) > 0 then
    found = 1
  end
  if found == 1 then
    redis.call('HDEL', K_DATA, id)
    redis.call('HDEL', K_SCORE, id)
    redis.call('HDEL', K_DELIV, id)
    redis.call('HDEL', K_OWNER, id)
    redis.call('INCR', P .. 'done')
  end
  local added = 0
  for _ = 1, nc do
    added = added + enqueue(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  end
  total = total + added
  out[#out + 1] = added
  out[#out + 1] = found
end
if total > 0 then redis.call('INCRBY', K_NPENDING, total) end
settle()
return out
