-- End every live lease of the license (suspension, revocation).
-- Returns {sid, record, sid, record, ..., now}.
local sids = redis.call('ZRANGE', live, 0, -1)
local ended = {}
for _, sid in ipairs(sids) do
  ended[#ended + 1] = sid
  ended[#ended + 1] = redis.call('HGET', leases, sid)
  redis.call('HDEL', leases, sid)
end
-- After the prune every holder points at a live lease, all of them ended here.
redis.call('DEL', live, holders)
ended[#ended + 1] = now
return ended
