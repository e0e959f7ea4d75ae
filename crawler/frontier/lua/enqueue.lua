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

-- What this call added, for the other workers (see publish_links): each a fingerprint, then
-- the link when the request is a plain GET.
local new_links = {}

-- Dedup and enqueue, as one step. ``fp`` is '' for dont_filter requests (not recorded as seen);
-- ``link`` is the URL of a plain GET ('' for any other request).
local function enqueue(fp, sc, raw, host, link)
  if fp ~= '' and redis.call('SADD', P .. 'seen', fp) == 0 then return 0 end
  local id = string.format('%016.0f', next_seq()) .. '@' .. host
  redis.call('ZADD', P .. 'q:' .. host, sc, id)
  redis.call('HSET', K_DATA, id, raw)
  if sc ~= '0' then redis.call('HSET', K_SCORE, id, sc) end
  touch(host)
  if fp ~= '' then new_links[#new_links + 1] = fp .. link end
  return 1
end
-- One request as the worker sends it, one argument: 'f' and its 16-byte fingerprint ('n' for
-- dont_filter), its queue score, '\n', its host, '\n', its link ('' but for a plain GET),
-- '\n', its stored JSON. Enqueued as above.
local function enqueue_packed(s)
  local fp, from = '', 2
  if string.byte(s, 1) == 102 then fp, from = string.sub(s, 2, 17), 18 end  -- 'f'
  local a = string.find(s, '\n', from, true)
  local b = string.find(s, '\n', a + 1, true)
  local c = string.find(s, '\n', b + 1, true)
  return enqueue(fp, string.sub(s, from, a - 1), string.sub(s, c + 1),
                 string.sub(s, a + 1, b - 1), string.sub(s, b + 1, c - 1))
end

-- P:links: LIST of the requests enqueued lately, each its fingerprint and its link (see
-- new_links), so that a worker skips a link another worker sent before it builds a Request for
-- it; P:nlinks counts the entries ever pushed (the absolute index past the list's tail). Hints
-- only: dedup stays the seen set's, so trimming the list to its last LINKS_KEEP loses nothing.
local LINKS_MAX, LINKS_KEEP = 20000, 10000
local links_total, links_len = 0, nil
-- Push this call's new_links; returns the absolute index of the first of them.
local function publish_links()
  local n = #new_links
  links_total = redis.call('INCRBY', P .. 'nlinks', n)
  for i = 1, n, 1000 do
    links_len = redis.call('RPUSH', P .. 'links', unpack(new_links, i, math.min(i + 999, n)))
  end
  if links_len and links_len > LINKS_MAX then
    redis.call('LTRIM', P .. 'links', -LINKS_KEEP, -1)
    links_len = LINKS_KEEP
  end
  return links_total - n
end
-- After publish_links: the entries pushed from absolute index ``cursor`` up to ``own`` (where
-- this call's begin), at most ``limit``, and the cursor for next time: past this call's own
-- entries once every earlier one is returned, so a worker is not sent back what it sent.
-- Entries trimmed away are skipped.
local function links_since(cursor, own, limit)
  local first = links_total - (links_len or redis.call('LLEN', P .. 'links'))
  if cursor < first then cursor = first end
  local stop = math.min(own, cursor + limit)
  local out = {}
  if stop > cursor then
    out = redis.call('LRANGE', P .. 'links', cursor - first, stop - 1 - first)
  end
  if stop >= own then return links_total, out end
  return stop, out
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
