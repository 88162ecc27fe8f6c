-- Put back what a Redis that lost the license's state must hold before it
-- grants a seat: the borrowed leases kept in PostgreSQL, live to the end of
-- their borrow, then set the generation marker, all at once. Two processes
-- restoring together: the second finds the marker and restores nothing.
-- ARGV[3] the marker's value, ARGV[4] n, then n borrowed leases as
-- (session id, record, borrow's end ms), then the session ids the audit log
-- shows as open.
-- Returns {0} when the marker was already there, else {1, restored, lost},
-- `lost` the open sessions this Redis does not know.
if state_known() then
  return {0}
end
local n = tonumber(ARGV[4])
local restored = 0
for i = 0, n - 1 do
  local sid, record, ends = ARGV[5 + 3 * i], ARGV[6 + 3 * i], tonumber(ARGV[7 + 3 * i])
  -- An ended borrow is not put back (the Redis clock decides), nor one
  -- this Redis still holds (it kept its state but lost the marker).
  if ends > now and not redis.call('ZSCORE', live, sid) then
    redis.call('ZADD', live, ends, sid)
    redis.call('ZADD', borrows, ends, sid)
    redis.call('HSET', leases, sid, record)
    local lease = cjson.decode(record)
    lease_added(sid, lease)
    local key = holder(lease.uid, lease.fp)
    if not redis.call('HGET', holders, key) then
      redis.call('HSET', holders, key, sid)
    end
    restored = restored + 1
  end
end
local lost = {}
for i = 5 + 3 * n, #ARGV do
  if redis.call('HEXISTS', leases, ARGV[i]) == 0 then
    lost[#lost + 1] = ARGV[i]
  end
end
redis.call('HSET', leases, generation, ARGV[3])
keep()
return {1, restored, lost}
