local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
-- A lease's expiry ``lease_timeout`` seconds from now, as its score in ``leased``: whole
-- milliseconds, which a small sorted set stores as integers (a fractional score is kept as
-- text there and parsed again at every look, which made each lease cost several times more).
local function lease_expiry(lease_timeout) return math.ceil((now + lease_timeout) * 1000) end
