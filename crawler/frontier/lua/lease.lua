-- ARGV from 9: limit worker max_deliveries batch mine (JSON host -> this worker's leases of
-- it, '' for none)
-- Returns {{id, deliveries, raw, ...}, pending, leased, ready hosts (that this worker may take
-- from), next ('-1': none: seconds until the earliest waiting host or delayed request),
-- reclaimed, dead_lettered}
local limit, worker = tonumber(ARGV[9]), ARGV[10]
local maxd, batch = tonumber(ARGV[11]), tonumber(ARGV[12])
local askers = asking(worker)
local mine = {}
if askers > 1 and ARGV[13] ~= '' then mine = cjson.decode(ARGV[13]) end
local expired = reclaim(batch)
local out, dead, ready = take(limit, worker, maxd, askers, mine, false)
return {out, tonumber(redis.call('GET', K_NPENDING) or '0'), redis.call('ZCARD', K_LEASED),
        ready, next_due(), expired, dead}
