-- ARGV from 9: want worker max_deliveries mine acks cursor. ``acks`` is one packed argument
-- (see fields): for each ack, its id, how many children, then the children (each as
-- enqueue_packed reads it). ``want`` > 0: lease up to that many more to ``worker`` in the
-- same call (not from hosts with a delay; ``mine`` as in lease.lua). ``cursor``: how far this
-- worker has read P:links (see links_since).
-- Returns {{children added, 1 if this ack completed the request else 0, ...} per ack, flat;
-- the next cursor; the links other workers added since the cursor; then, when ``want`` > 0,
-- the leases {id, deliveries, raw, ...}; ready hosts this worker may take from; leased;
-- next as in lease.lua}. The first ack of a request wins, whoever holds its lease now: the
-- work is done, and a second ack is a no-op.
local want, worker, maxd = tonumber(ARGV[9]), ARGV[10], tonumber(ARGV[11])
local LINKS_READ = 2000  -- most links one reply carries
local out, done = {}, {}
local total = 0
local field = fields(ARGV[13])
local freed = {}  -- host -> places these acks free on it
for id in field do
  local nc = tonumber(field())
  local host = host_of(id)
  local found = 0
  if redis.call('ZREM', K_LEASED, id) == 1 then
    found = 1
    freed[host] = (freed[host] or 0) + 1
  elseif redis.call('ZREM', P .. 'q:' .. host, id) == 1 then
    found = 1
    redis.call('DECR', K_NPENDING)
    touch(host)
  elseif redis.call('ZREM', K_DELAYED, id) + redis.call('HDEL', P .. 'dead', id) > 0 then
    found = 1
  end
  if found == 1 then done[#done + 1] = id end
  local added = 0
  for _ = 1, nc do added = added + enqueue_packed(field()) end
  total = total + added
  out[#out + 1] = added
  out[#out + 1] = found
end
for host, n in pairs(freed) do
  redis.call('HINCRBY', P .. 'h:' .. host, 'a', -n)
  touch(host)
end
if #done > 0 then
  -- One call per hash for the whole batch (at most a few hundred ids: unpack's limit is far).
  redis.call('HDEL', K_DATA, unpack(done))
  redis.call('HDEL', K_SCORE, unpack(done))
  redis.call('HDEL', K_DELIV, unpack(done))
  redis.call('HDEL', K_OWNER, unpack(done))
  redis.call('INCRBY', P .. 'done', #done)
end
if total > 0 then redis.call('INCRBY', K_NPENDING, total) end
local cursor, links = links_since(tonumber(ARGV[14]), publish_links(), LINKS_READ)
settle()
if want <= 0 then return {out, cursor, links} end
local askers = asking(worker)
local mine = {}
if askers > 1 and ARGV[12] ~= '' then mine = cjson.decode(ARGV[12]) end
reclaim(want)
local leases, _, ready = take(want, worker, maxd, askers, mine, true)
return {out, cursor, links, leases, ready, redis.call('ZCARD', K_LEASED), next_due()}
