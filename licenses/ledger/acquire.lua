-- Take a seat for a fingerprint, or hand back its live lease, extended.
-- ARGV[3] fingerprint, ARGV[4] ttl ms, ARGV[5] max seats,
-- ARGV[6] a fresh session id, ARGV[7] the new lease's record (JSON, no times)
-- Returns {1, sid, record, expiry, used} for a new lease, {0, ...} for the
-- existing one, {-1, used} when every seat is taken, {-2} if the fresh
-- session id is already known (the caller retries with another).
local fingerprint, ttl, max_seats = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local sid, record = ARGV[6], ARGV[7]

local held = redis.call('HGET', holders, fingerprint)
if held then
  local expiry = redis.call('ZSCORE', live, held)
  if expiry then
    expiry = math.max(tonumber(expiry), now + ttl)
    redis.call('ZADD', live, expiry, held)
    keep()
    return {0, held, redis.call('HGET', leases, held), expiry, redis.call('ZCARD', live)}
  end
end

local used = redis.call('ZCARD', live)
if used >= max_seats then
  return {-1, used}
end
if redis.call('HEXISTS', leases, sid) == 1 then
  return {-2}
end

local lease = cjson.decode(record)
lease.c = now
record = cjson.encode(lease)
redis.call('ZADD', live, now + ttl, sid)
redis.call('HSET', leases, sid, record)
index_add(sid, lease)
redis.call('HSET', holders, fingerprint, sid)
keep()
return {1, sid, record, now + ttl, used + 1}
