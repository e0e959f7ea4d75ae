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
-- One request as the worker sends it, one argument: 'f' and its 16-byte fingerprint ('n' for
-- dont_filter), its queue score, '\n', its host, '\n', its stored JSON. Enqueued as above.
local function enqueue_packed(s)
  local fp, from = '', 2
  if string.byte(s, 1) == 102 then fp, from = string.sub(s, 2, 17), 18 end  -- 'f'
  local a = string.find(s, '\n', from, true)
  local b = string.find(s, '\n', a + 1, true)
  return enqueue(fp, string.sub(s, from, a - 1), string.sub(s, b + 1), string.sub(s, a + 1, b - 1))
end
