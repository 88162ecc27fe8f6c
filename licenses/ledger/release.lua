-- End a live lease; nil when it is not live (unknown, expired, released), so
-- a second release frees nothing. ARGV[3] session id, ARGV[4] the audit
-- event of the release ('' or absent for none; see record_event).
-- Returns {record, now}: the lease ended now.
local sid = ARGV[3]
if redis.call('ZREM', live, sid) == 0 then
  return nil
end
local record = redis.call('HGET', leases, sid)
redis.call('HDEL', leases, sid)
local decoded = cjson.decode(record)
index_remove(sid, decoded)
forget_holder(decoded, sid)
record_event(ARGV[4], sid, record)
return {record, now}
