-- ARGV from 9: worker, ids... Returns how many were put back.
local worker = ARGV[9]
local released = 0
for i = 10, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', K_OWNER, id) == worker and redis.call('ZREM', K_LEASED, id) == 1 then
    local host = host_of(id)
    redis.call('HINCRBY', P .. 'h:' .. host, 'a', -1)
    redis.call('ZADD', P .. 'q:' .. host, redis.call('HGET', K_SCORE, id) or 0, id)
    redis.call('HINCRBY', K_DELIV, id, -1)
    redis.call('HDEL', K_OWNER, id)
    touch(host)
    released = released + 1
  end
end
if released > 0 then redis.call('INCRBY', K_NPENDING, released) end
settle()
return released
