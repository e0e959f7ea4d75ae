--: Lua: whether ``worker`` heartbeated within its lease_timeout and has not stopped.
local function worker_alive(k_workers, k_info, worker, now, default_timeout)
  local beat = tonumber(redis.call('ZSCORE', k_workers, worker))
  if not beat then return false end
  local timeout = default_timeout
  local info = redis.call('HGET', k_info, worker)
  if info then
    local ok, d = pcall(cjson.decode, info)
    if ok and type(d) == 'table' then
      if d.stopped then return false end
      if d.lease_timeout then timeout = tonumber(d.lease_timeout) end
    end
  end
  return now - beat <= timeout
end
