-- Put a lease back as it was before one borrow that is not to stand (one
-- answered 503: its durable copy or its signature failed); nil when the lease
-- is no longer as that borrow left it (released, ended, borrowed again by
-- another request, restored after a loss), which is then left as it is.
-- ARGV[3] session id, ARGV[4] the borrow's id (borrow.lua's ARGV[7]),
-- ARGV[5] the audit event of the undo ('' for none; see record_event).
-- Returns {record, expiry}.
local sid, borrow_id = ARGV[3], ARGV[4]
if not redis.call('ZSCORE', live, sid) then
  return nil
end
local lease = cjson.decode(redis.call('HGET', leases, sid))
if lease.bid ~= borrow_id then
  return nil
end
local before_expiry = lease.pe
if lease.pb then
  lease.b = lease.pb
else
  lease.b = nil
end
lease.bid, lease.pb, lease.pe = nil, nil, nil
local record = cjson.encode(lease)
if lease.b then
  redis.call('ZADD', borrows, lease.b, sid)
else
  redis.call('ZREM', borrows, sid)
end
-- An expiry already past frees the seat at the next script, as any lease's.
redis.call('ZADD', live, before_expiry, sid)
redis.call('HSET', leases, sid, record)
record_event(ARGV[5], sid, record)
keep()
return {record, before_expiry}
