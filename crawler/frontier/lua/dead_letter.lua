-- ARGV from 9: id reason. A leased request that cannot be decoded: to the dead letters.
local id = ARGV[9]
local raw = redis.call('HGET', K_DATA, id) or ''
if redis.call('ZREM', K_LEASED, id) == 1 then
  redis.call('HINCRBY', P .. 'h:' .. host_of(id), 'a', -1)
  touch(host_of(id))
end
redis.call('HSET', P .. 'dead', id, '{"reason":' .. cjson.encode(ARGV[10])
  .. ',"deliveries":' .. (tonumber(redis.call('HGET', K_DELIV, id)) or 0)
  .. ',"last_worker":' .. cjson.encode(redis.call('HGET', K_OWNER, id) or '')
  .. ',"at":' .. string.format('%.3f', now) .. ',"raw":' .. cjson.encode(raw) .. '}')
redis.call('HDEL', K_DATA, id)
redis.call('HDEL', K_SCORE, id)
redis.call('HDEL', K_DELIV, id)
redis.call('HDEL', K_OWNER, id)
settle()
return 1
