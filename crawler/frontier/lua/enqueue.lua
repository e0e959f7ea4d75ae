-- Dedup and enqueue, as one step. ``fp`` is '' for dont_filter requests (not recorded as seen).
local function enqueue(fp, sc, raw, host)
  if fp ~= '' and redis.call('SADD', P .. 'seen', fp) == 0 then return 0 end
  local id = string.format('%016.0f', redis.call('INCR', P .. 'seq')) .. '@' .. host
  redis.call('ZADD', P .. 'q:' .. host, sc, id)
  redis.call('HSET', K_DATA, id, raw)
  if sc ~= '0' then redis.call('HSET', K_SCORE, id, sc) end
  touch(host)
  return 1
end
