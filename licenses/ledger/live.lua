-- Every live lease: {sid, record, expiry, sid, record, expiry, ...}.
local members = redis.call('ZRANGE', live, 0, -1, 'WITHSCORES')
local found = {}
for i = 1, #members, 2 do
  found[#found + 1] = members[i]
  found[#found + 1] = redis.call('HGET', leases, members[i])
  found[#found + 1] = tonumber(members[i + 1])
end
return found
