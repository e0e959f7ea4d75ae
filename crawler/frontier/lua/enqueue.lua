-- Ids are taken from P:seq a block at a time (one INCRBY per 100 requests enqueued, not one
-- INCR each); what a call leaves of its block is skipped. Ids stay in the order requests
-- were enqueued: every call's block lies above every earlier call's.
local seq_next, seq_last = 1, 0
local function next_seq()
  if seq_next > seq_last then
    seq_last = redis.call('INCRBY', P .. 'seq', 100)
    seq_next = seq_last - 99
  end
  seq_next = seq_next + 1
  return seq_next - 1
end

-- Dedup and enqueue, as one step. ``fp`` is '' for dont_filter requests (not recorded as seen).
local function enqueue(fp, sc, raw, host)
  if fp ~= '' and redis.call('SADD', P .. 'seen', fp) == 0 then return 0 end
  local id = string.format('%016.0f', next_seq()) .. '@' .. host
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
-- The fields of one packed argument, in order: each is its length in digits, ':', then its
-- bytes (a netstring without the trailing comma). One argument carries a whole batch, so
-- neither the worker nor Redis handles an argument per request. Returns an iterator.
local function fields(s)
  local pos = 1
  return function()
    local colon = string.find(s, ':', pos, true)
    if not colon then return nil end
    local stop = colon + tonumber(string.sub(s, pos, colon - 1))
    pos = stop + 1
    return string.sub(s, colon + 1, stop)
  end
end
