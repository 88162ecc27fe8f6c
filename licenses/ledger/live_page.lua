-- One page of live leases, oldest first, read from the paging indexes:
-- O(log n + limit), whatever the number of leases.
-- ARGV[3] the position after which the page starts ('' for the first page),
-- ARGV[4] limit, ARGV[5] a user id ('' for every user's leases).
-- Returns {more, position, sid, record, expiry, sid, ...}: more is 1 when a
-- lease follows the page, position is the last one's (the next cursor).
local after, limit, uid = ARGV[3], tonumber(ARGV[4]), ARGV[5]

-- Every script that adds to or removes from `live` keeps the indexes with
-- it, so their sizes differ only for leases written before the indexes
-- existed (or by a script that forgot them): rebuild them then, once, O(n).
if redis.call('ZCARD', by_created) ~= redis.call('ZCARD', live) then
  redis.call('DEL', by_created, by_user)
  for _, sid in ipairs(redis.call('ZRANGE', live, 0, -1)) do
    local raw = redis.call('HGET', leases, sid)
    if raw then
      index_add(sid, cjson.decode(raw))
    end
  end
  keep()
end

local key, low, high, skip = by_created, '-', '+', 0
if uid ~= '' then
  local prefix = uid .. '\0'
  key, low, high, skip = by_user, '[' .. prefix, '[' .. prefix .. '\255', #prefix
end
if after ~= '' then
  low = '(' .. string.sub(low, 2, skip + 1) .. after
end

local members = redis.call('ZRANGEBYLEX', key, low, high, 'LIMIT', 0, limit + 1)
local shown = math.min(#members, limit)
local found = {#members > limit and 1 or 0, ''}
for i = 1, shown do
  local at = string.sub(members[i], skip + 1)
  local sid = string.sub(at, 17) -- after the 15 digits and the colon
  local expiry = redis.call('ZSCORE', live, sid)
  if expiry then
    found[#found + 1] = sid
    found[#found + 1] = redis.call('HGET', leases, sid)
    found[#found + 1] = tonumber(expiry)
  end
  found[2] = at
end
return found
