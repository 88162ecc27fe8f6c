-- End a live lease; nil when it is not live (unknown, expired, released), so
-- a second release frees nothing. ARGV[3] session id, ARGV[4] the audit
-- event of the release ('' or absent for none; see record_event), ARGV[5]
-- linger ms ('' or 0 for none).
-- With a linger the seat stays held for the lease's holder until now +
-- linger: the record gains `lg` (the linger's end, ms) and loses its borrow,
-- and the holder's acquire takes it back (acquire.lua). A lingering lease
-- released again with a linger is not live to its client (nil); without one
-- (an operator's release) its seat is freed.
-- Returns {record, ended, borrowed}: the lease as the release left it, when
-- it ended (now; a lingering lease's end of linger), and 1 if it had been
-- borrowed (its durable copy is the caller's to forget).
local sid, linger = ARGV[3], tonumber(ARGV[5]) or 0
if not redis.call('ZSCORE', live, sid) then
  return nil
end
local record = redis.call('HGET', leases, sid)
local decoded = cjson.decode(record)
local borrowed = decoded.b and 1 or 0
if decoded.b then
  redis.call('ZREM', borrows, sid)
end
if linger > 0 then
  if decoded.lg then
    return nil
  end
  decoded.lg = now + linger
  decoded.b, decoded.bid, decoded.pb, decoded.pe = nil, nil, nil, nil
  record = cjson.encode(decoded)
  redis.call('HSET', leases, sid, record)
  redis.call('ZADD', live, now + linger, sid)
  record_event(ARGV[4], sid, record)
  keep()
  return {record, now + linger, borrowed}
end
redis.call('ZREM', live, sid)
redis.call('HDEL', leases, sid)
lease_removed(sid, decoded)
forget_holder(decoded, sid)
record_event(ARGV[4], sid, record)
return {record, now, borrowed}
