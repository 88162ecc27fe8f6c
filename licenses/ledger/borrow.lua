-- Keep a live lease until at least now + seconds, marked as borrowed; nil
-- when it is not live. ARGV[3] session id, ARGV[4] duration ms, ARGV[5] the
-- latest the borrow may end, ms ('' for no limit: a perpetual license).
-- ARGV[6] the audit event of the borrow ('' or absent for none; see record_event).
-- Returns {record, expiry, the borrow's end before it ('' for none), the
-- expiry before it}: what unborrow.lua puts back should the borrow not stand.
local sid, duration, not_after = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local expiry = redis.call('ZSCORE', live, sid)
if not expiry then
  return nil
end
local before_expiry = expiry
local lease = cjson.decode(redis.call('HGET', leases, sid))
local before = lease.b or ''
lease.b = now + duration
if not_after and not_after < lease.b then
  lease.b = not_after
end
local record = cjson.encode(lease)
expiry = math.max(tonumber(expiry), lease.b)
redis.call('ZADD', live, expiry, sid)
redis.call('HSET', leases, sid, record)
record_event(ARGV[6], sid, record)
keep()
return {record, expiry, before, before_expiry}
