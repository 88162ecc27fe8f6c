-- Keep a live lease until at least now + seconds, marked as borrowed; nil
-- when it is not live or lingers. ARGV[3] session id, ARGV[4] duration ms,
-- ARGV[5] the latest the borrow may end, ms ('' for no limit: a perpetual
-- license), ARGV[6] the audit event of the borrow ('' or absent for none; see
-- record_event), ARGV[7] the borrow's own id, ARGV[8] the most leases of the
-- license out on borrow at once, ARGV[9] the most of one user's ('' for no
-- limit, each).
-- The record keeps the borrow's id and what it changed (`bid`, the end of
-- the borrow before it `pb`, the expiry before it `pe`), so that
-- unborrow.lua can put back exactly this borrow and no later one.
-- Returns {record, expiry}, or {-1, scope, borrowed} when the limit of
-- `scope` ('license' or 'user') is reached by `borrowed` other leases. A
-- lease borrowed already (a borrow made longer or shorter) is not counted
-- against them again.
local sid, duration, not_after = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local max_borrowed, max_per_user = tonumber(ARGV[8]), tonumber(ARGV[9])
local expiry = redis.call('ZSCORE', live, sid)
local raw = expiry and redis.call('HGET', leases, sid)
if not raw or lingering(raw) then
  return nil
end
local lease = cjson.decode(raw)
-- Borrows that have ended are out of the count (their leases live on, or not).
redis.call('ZREMRANGEBYSCORE', borrows, '-inf', now)
if not redis.call('ZSCORE', borrows, sid) then
  if max_borrowed then
    local out = redis.call('ZCARD', borrows)
    if out >= max_borrowed then
      return {-1, 'license', out}
    end
  end
  if max_per_user then
    local mine = 0
    for _, other in ipairs(redis.call('ZRANGE', borrows, 0, -1)) do
      local theirs = redis.call('HGET', leases, other)
      if theirs and holder(cjson.decode(theirs).uid, '') == holder(lease.uid, '') then
        mine = mine + 1
      end
    end
    if mine >= max_per_user then
      return {-1, 'user', mine}
    end
  end
end
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
redis.call('ZADD', borrows, lease.b, sid)
redis.call('HSET', leases, sid, record)
record_event(ARGV[6], sid, record)
keep()
return {record, expiry}
