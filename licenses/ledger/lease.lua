-- One live lease: {record, expiry}, or nil. ARGV[3] session id.
local sid = ARGV[3]
local expiry = redis.call('ZSCORE', live, sid)
if not expiry then
  return nil
end
return {redis.call('HGET', leases, sid), tonumber(expiry)}
