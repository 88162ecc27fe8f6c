-- Keep a live lease until at least now + seconds, marked as borrowed; nil
-- when it is not live or lingers. ARGV[3] session id, ARGV[4] duration ms, ARGV[5] the
-- latest the borrow may end, ms ('' for no limit: a perpetual license),
-- ARGV[6] the audit event of the borrow ('' or absent for none; see
-- record_event), ARGV[7] the borrow's own id.
-- The record keeps the borrow's id and what it changed (`bid`, the end of
-- the borrow before it `pb`, the expiry before it `pe`), so that
-- unborrow.lua can put back exactly this borrow and no later one.
-- Returns {record, expiry}.
local sid, duration, not_after = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local expiry = redis.call('ZSCORE', live, sid)
local raw = expiry and redis.call('HGET', leases, sid)
if not raw or lingering(raw) then
  return nil
end
local lease = cjson.decode(raw)
lease.bid = ARGV[7]
lease.pb = lease.b or false
lease.pe = tonumber(expiry)
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
return {record, expiry}
