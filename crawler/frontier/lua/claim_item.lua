-- KEYS: items workers workerinfo; ARGV: key worker lease_timeout
-- 1: new key, now claimed by this worker; 0: claimed by this worker or a live one (a repeat);
-- 2: claimed by a worker that stopped or died (it may not have written the item): taken over.
local owner = redis.call('HGET', KEYS[1], ARGV[1])
if not owner then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
if owner == ARGV[2] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if worker_alive(KEYS[2], KEYS[3], owner, now, tonumber(ARGV[3])) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 2
