-- One sign-in attempt on one account's throttle (one key: Redis Cluster safe).
-- The key is a hash: failures (the run of failed attempts), last (ms of the
-- latest), locked_until (ms). Every attempt let through is counted as a
-- failure before its password is checked (a success clears the key), so
-- attempts that arrive together cannot all slip in before the lock: the one
-- that makes the Nth failure sets the lock itself. A refused attempt is not
-- counted: waiting out the lock is always enough.
-- KEYS[1]: the account's key
-- ARGV[1]: now (ms, the app's clock, which the database mirror also uses)
-- ARGV[2]: failures before the throttle (N), ARGV[3]: base backoff (ms),
-- ARGV[4]: longest backoff (ms), ARGV[5]: how long failures are remembered (ms)
-- Returns {allowed (1|0), failures, ms locked: left (refused) or set by this attempt}.
local key = KEYS[1]
local now = tonumber(ARGV[1])
local threshold = tonumber(ARGV[2])
local base = tonumber(ARGV[3])
local longest = tonumber(ARGV[4])
local window = tonumber(ARGV[5])

local state = redis.call('HMGET', key, 'failures', 'last', 'locked_until')
local failures = tonumber(state[1]) or 0
local last = tonumber(state[2]) or 0
local locked_until = tonumber(state[3]) or 0
if locked_until > now then
  return {0, failures, locked_until - now}
end
if now - last > window then
  failures = 0
end
failures = failures + 1
local lock = 0
if failures >= threshold then
  lock = math.floor(math.min(base * 2 ^ math.min(failures - threshold, 40), longest))
end
-- The lock only when this attempt sets one: an attempt that sets none must
-- not refuse, as "locked", one made a moment earlier on a clock behind it.
redis.call('HSET', key, 'failures', failures, 'last', now)
if lock > 0 then
  redis.call('HSET', key, 'locked_until', now + lock)
end
redis.call('PEXPIRE', key, math.max(window, lock) + 1000)
return {1, failures, lock}
