-- End a live lease; nil when it is not live (unknown, expired, released), so
-- a second release frees nothing. ARGV[3] session id.
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
return {record, now}
