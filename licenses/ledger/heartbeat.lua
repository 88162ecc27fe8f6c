-- Extend a live lease to at least now + ttl; nil when it is not live or
-- lingers (released by its holder).
-- ARGV[3] session id, ARGV[4] ttl ms, ARGV[5] the audit event of a refusal
-- ('' or absent for none; see record_event). Returns {record, expiry}.
local sid, ttl = ARGV[3], tonumber(ARGV[4])
local expiry = redis.call('ZSCORE', live, sid)
local record = expiry and redis.call('HGET', leases, sid)
if not record or lingering(record) then
  -- Not live, or released by its holder and only lingering.
  record_event(ARGV[5], sid, '')
  return nil
end
expiry = math.max(tonumber(expiry), now + ttl)
redis.call('ZADD', live, expiry, sid)
keep()
return {record, expiry}
