-- Take a seat for one user on one machine, or hand back the live lease that
-- user holds there, extended; another user's lease on the machine is never
-- handed over (invariant 10).
-- ARGV[3] fingerprint, ARGV[4] ttl ms, ARGV[5] max seats,
-- ARGV[6] a fresh session id, ARGV[7] the new lease's record (JSON, no times;
-- its `uid` is the user), ARGV[8] overdraft seats beyond max seats, ARGV[9]
-- '1' to count seats per user (seat mode per_user: a user's machines share
-- one seat), ARGV[10] the most machines one user may hold leases on then
-- ('' for no limit).
-- Returns {1, sid, record, expiry, used} for a new lease, {0, ...} for the
-- existing one, {2, ...} for a new lease on the seat of the holder's
-- lingering one, {-1, used} when every seat is taken, {-4, held} when the
-- user holds leases on `held` machines, their limit, {-2} if the fresh
-- session id is already known (the caller retries with another), {-3} when
-- this Redis has lost the license's state (the caller restores, then retries).
if not state_known() then
  return {-3}
end
local fingerprint, ttl, max_seats = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local sid, record = ARGV[6], ARGV[7]
local overdraft = tonumber(ARGV[8]) or 0
local per_user, machines_per_user = ARGV[9] == '1', tonumber(ARGV[10])
local lease = cjson.decode(record)
local key = holder(lease.uid, fingerprint)
-- Before anything changes: a retry with another id must find all as it was.
if redis.call('HEXISTS', leases, sid) == 1 then
  return {-2}
end

local held = redis.call('HGET', holders, key)
if not held then
  -- A lease taken before holders named the user is filed under the bare
  -- fingerprint: it comes back to its own user, filed afresh, and stays
  -- another user's otherwise, so the change of key neither grants a second
  -- lease to a machine's user nor hands one user's lease to another.
  local legacy = redis.call('HGET', holders, fingerprint)
  local raw = legacy and redis.call('HGET', leases, legacy)
  if raw and holder(cjson.decode(raw).uid, fingerprint) == key then
    held = legacy
    redis.call('HSET', holders, key, held)
    redis.call('HDEL', holders, fingerprint)
  end
end
local reclaimed = false
if held then
  local expiry = redis.call('ZSCORE', live, held)
  local raw = expiry and redis.call('HGET', leases, held)
  if raw and lingering(raw) then
    -- Released by this holder within the linger: its seat goes to the
    -- holder's new lease below, whatever the count (it is one seat already
    -- held), and the lingering lease is gone without a record (the new
    -- lease's audit row says it was reclaimed).
    redis.call('ZREM', live, held)
    redis.call('HDEL', leases, held)
    lease_removed(held, cjson.decode(raw))
    redis.call('HDEL', holders, key)
    reclaimed, expiry = true, nil
  end
  if expiry then
    expiry = math.max(tonumber(expiry), now + ttl)
    redis.call('ZADD', live, expiry, held)
    keep()
    return {0, held, raw, expiry, per_user and users_holding() or redis.call('ZCARD', live)}
  end
end

-- The seats in use: leases, or (per user) users holding one; a user who
-- holds one already takes no other on another machine.
local used, shares_a_seat = 0, false
if per_user then
  used = users_holding()
  local theirs = tonumber(redis.call('HGET', users, user_field(lease))) or 0
  if theirs > 0 then
    if machines_per_user and theirs >= machines_per_user and not reclaimed then
      return {-4, theirs}
    end
    shares_a_seat = true
  end
else
  used = redis.call('ZCARD', live)
end
if used >= max_seats + overdraft and not reclaimed and not shares_a_seat then
  return {-1, used}
end
lease.c = now
if used >= max_seats and not shares_a_seat then
  lease.o = 1 -- one of the overdraft seats, for good
end
record = cjson.encode(lease)
redis.call('ZADD', live, now + ttl, sid)
redis.call('HSET', leases, sid, record)
lease_added(sid, lease)
redis.call('HSET', holders, key, sid)
keep()
if not shares_a_seat then
  used = used + 1
end
return {reclaimed and 2 or 1, sid, record, now + ttl, used}
