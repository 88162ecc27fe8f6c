-- Hand the sweep up to `limit` expired leases and hide them from other
-- sweepers for the claim window; unacknowledged ones come back after it.
-- ARGV[3] limit, ARGV[4] claim window ms.
-- Returns {sid, record, sid, record, ...}; each record carries x, its expiry.
local limit, claim = tonumber(ARGV[3]), tonumber(ARGV[4])
local due = redis.call('ZRANGEBYSCORE', expired, '-inf', now, 'LIMIT', 0, limit)
local found = {}
for _, sid in ipairs(due) do
  local record = redis.call('HGET', leases, sid)
  if record then
    redis.call('ZADD', expired, now + claim, sid)
    found[#found + 1] = sid
    found[#found + 1] = record
  else
    redis.call('ZREM', expired, sid)
  end
end
return found
