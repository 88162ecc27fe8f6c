-- Put a lease back as it was before a borrow that is not to stand (one
-- answered 503: its durable copy or its signature failed); nil when the lease
-- is no longer as that borrow left it (released, ended, borrowed again),
-- which is then left as it is. ARGV[3] session id, ARGV[4] the borrow's end
-- as the borrow recorded it, ms, ARGV[5] the end of the borrow before it, ms
-- ('' for none), ARGV[6] the lease's expiry before it, ms, ARGV[7] the audit
-- event of the undo ('' for none; see record_event). Returns {record, expiry}.
local sid, borrowed = ARGV[3], tonumber(ARGV[4])
local before, before_expiry = tonumber(ARGV[5]), tonumber(ARGV[6])
if not redis.call('ZSCORE', live, sid) then
  return nil
end
local lease = cjson.decode(redis.call('HGET', leases, sid))
if lease.b ~= borrowed then
  return nil
end
lease.b = before
local record = cjson.encode(lease)
-- An expiry already past frees the seat at the next script, as any lease's.
redis.call('ZADD', live, before_expiry, sid)
redis.call('HSET', leases, sid, record)
record_event(ARGV[7], sid, record)
keep()
return {record, before_expiry}
