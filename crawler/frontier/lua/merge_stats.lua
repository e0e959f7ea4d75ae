-- KEYS: stats; ARGV: (op, key, value) triples; op i = HINCRBY, f = HINCRBYFLOAT, m = max.
for i = 1, #ARGV, 3 do
  local op, k, v = ARGV[i], ARGV[i+1], ARGV[i+2]
  if op == 'i' then
    redis.call('HINCRBY', KEYS[1], k, v)
  elseif op == 'f' then
    redis.call('HINCRBYFLOAT', KEYS[1], k, v)
  else
    local old = tonumber(redis.call('HGET', KEYS[1], k))
    if not old or tonumber(v) > old then redis.call('HSET', KEYS[1], k, v) end
  end
end
return 1
