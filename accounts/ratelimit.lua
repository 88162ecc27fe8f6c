-- Sliding-window rate limit over one sorted set (one key: Redis Cluster safe).
-- Members are counted requests scored by their time in milliseconds; those
-- older than the window are pruned here, so the window slides with no timer.
-- A refused request is not counted: a client that waits gets back in.
-- KEYS[1]: the limited key
-- ARGV[1]: limit (requests per window), ARGV[2]: window (ms), ARGV[3]: a unique member
-- Returns {allowed (1|0), remaining, ms until the oldest counted request leaves}.
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])

-- Redis's clock, not the app servers': every process shares one window.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local allowed = 0
if count < limit then
  redis.call('ZADD', key, now, ARGV[3])
  count = count + 1
  allowed = 1
end
redis.call('PEXPIRE', key, window)

local reset = window
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
if oldest[2] then
  reset = tonumber(oldest[2]) + window - now
end
return {allowed, limit - count, reset}
