-- ARGV from 9: id worker raw score delay. Returns 1 if moved, 0 if the lease was not held.
local id, worker, sc, delay = ARGV[9], ARGV[10], ARGV[12], tonumber(ARGV[13])
if redis.call('HGET', K_OWNER, id) ~= worker or redis.call('ZREM', K_LEASED, id) == 0 then
  settle()
  return 0
end
local host = host_of(id)
redis.call('HINCRBY', P .. 'h:' .. host, 'a', -1)
redis.call('HSET', K_DATA, id, ARGV[11])
if sc ~= '0' then redis.call('HSET', K_SCORE, id, sc) else redis.call('HDEL', K_SCORE, id) end
redis.call('HINCRBY', K_DELIV, id, -1)
redis.call('HDEL', K_OWNER, id)
if delay > 0 then
  redis.call('ZADD', K_DELAYED, now + delay, id)
else
  redis.call('ZADD', P .. 'q:' .. host, sc, id)
  redis.call('INCR', K_NPENDING)
end
touch(host)
settle()
return 1
