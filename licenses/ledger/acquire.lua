-- Take a seat for one user on one machine, or hand back the live lease that
-- user holds there, extended; another user's lease on the machine is never
-- handed over (invariant 10).
-- ARGV[3] fingerprint, ARGV[4] ttl ms, ARGV[5] max seats,
-- ARGV[6] a fresh session id, ARGV[7] the new lease's record (JSON, no times;
-- its `uid` is the user), ARGV[8] overdraft seats beyond max seats, ARGV[9]
-- '1' to count seats per user (seat mode per_user: a user's machines share
-- one seat), ARGV[10] the most machines one user may hold leases on then
-- ('' for no limit), ARGV[11] the holder's group ('' for none), ARGV[12] the
-- license's group rules (JSON list of {n: name, r: reserve, m: max or absent,
-- p: priority}; '' for none), ARGV[13] the queue ticket's ttl ms ('' when the
-- caller does not queue), ARGV[14] the most tickets waiting at once, ARGV[15]
-- the ticket polled with ('' for none), ARGV[16] a fresh ticket id.
-- Returns {1, sid, record, expiry, used, ticket id, waited ms} for a new
-- lease ('' for the last two when it did not wait), {0, ...} for the existing
-- one, {2, ...} for a new lease on the seat of the holder's lingering one,
-- {3, ticket id, position, waiting, created ms, deadline ms, 1 if new} for a
-- holder queued, {-1, used[, why]} when no seat is free for the holder (why:
-- 'reserved' when the free ones are other groups' reservations, 'queue' when
-- they are held for tickets ahead), {-4, held} when the
-- user holds leases on `held` machines, their limit, {-5} for a ticket not
-- waiting, {-6, waiting} when the queue is full, {-7, held, max} when the
-- holder's group holds its max, {-2} if the fresh session id is already known
-- (the caller retries with another), {-3} when this Redis has lost the
-- license's state (the caller restores, then retries).
if not state_known() then
  return {-3}
end
local fingerprint, ttl, max_seats = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local sid, record = ARGV[6], ARGV[7]
local overdraft = tonumber(ARGV[8]) or 0
local per_user, machines_per_user = ARGV[9] == '1', tonumber(ARGV[10])
local group = ARGV[11] ~= '' and ARGV[11] or nil
local rules = ARGV[12] ~= '' and cjson.decode(ARGV[12]) or {}
local queue_ttl, max_tickets = tonumber(ARGV[13]), tonumber(ARGV[14]) or 0
local polled_with = ARGV[15] ~= '' and ARGV[15] or nil
local lease = cjson.decode(record)
lease.g = group
local key = holder(lease.uid, fingerprint)
-- Before anything changes: a retry with another id must find all as it was.
if redis.call('HEXISTS', leases, sid) == 1 then
  return {-2}
end

-- The holder's ticket, if one waits (tickets past their deadline are gone).
-- A poll with a ticket that no longer waits changes nothing at all: it is
-- answered before anything is written.
tickets_prune()
local ticket = redis.call('HGET', tickets, key)
ticket = ticket and cjson.decode(ticket)
local stale = polled_with and (not ticket or ticket.id ~= polled_with)

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
  if raw and lingering(raw) and stale then
    return {-5}
  end
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
    ticket_drop(key)
    keep()
    return {0, held, raw, expiry, per_user and users_holding() or redis.call('ZCARD', live), '', ''}
  end
end

if stale then
  return {-5}
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
    -- The user's seat is counted under the group its first lease was
    -- granted in; this machine's lease shares it and counts in no group.
    lease.g = nil
  end
else
  used = redis.call('ZCARD', live)
end

-- The group rules: a group's unused reservation is free only to its members,
-- and a group at its max takes no more.
local rule_of, unused = {}, 0
for _, rule in ipairs(rules) do
  rule.used = group_used(rule.n, per_user)
  rule.unused = math.max(0, (tonumber(rule.r) or 0) - rule.used)
  unused = unused + rule.unused
  rule_of[rule.n] = rule
end
local function full(g)
  local rule = g and rule_of[g]
  return rule ~= nil and type(rule.m) == 'number' and rule.used >= rule.m
end
-- (A group's own reservation is its members' whatever the others reserve:
-- reservations past the seats, after max_seats was lowered, lock no one out
-- of their own.)
local function free_for(g)
  local rule = g and rule_of[g]
  local own, free = rule and rule.unused or 0, max_seats + overdraft - used
  return math.max(free - (unused - own), math.min(own, free))
end

local grant, refusal = reclaimed or shares_a_seat, {-1, used}
if not grant then
  local free = free_for(group)
  if full(group) then
    refusal, free = {-7, rule_of[group].used, rule_of[group].m}, 0
  end
  -- FIFO: the tickets ahead of the holder's (all of them, for a holder
  -- without one) that could take a seat now come first.
  local ahead = 0
  if free > 0 then
    local before = ticket and redis.call('ZRANK', queue, key) or redis.call('ZCARD', queue)
    if #rules == 0 then
      ahead = before -- with no group rules, every ticket could take a free seat
    elseif before > 0 then
      for _, other in ipairs(redis.call('ZRANGE', queue, 0, before - 1)) do
        local theirs = cjson.decode(redis.call('HGET', tickets, other))
        if not full(theirs.g) and free_for(theirs.g) > 0 then
          ahead = ahead + 1
          if ahead >= free then
            break
          end
        end
      end
    end
  end
  grant = free > ahead
  -- Why a seat in hand was refused: the only free ones are other groups'
  -- reservations, or held for the tickets ahead.
  if not grant and refusal[1] == -1 and max_seats + overdraft - used > 0 then
    refusal = {-1, used, free <= 0 and 'reserved' or 'queue'}
  end
end

if not grant then
  if not queue_ttl then
    return refusal
  end
  local created = 0
  if not ticket then
    local waiting = redis.call('ZCARD', queue)
    if waiting >= max_tickets then
      return {-6, waiting}
    end
    local priority = 0
    if group and rule_of[group] then
      priority = tonumber(rule_of[group].p) or 0
    end
    local seq = redis.call('HINCRBY', tickets, '!seq', 1)
    ticket = {id = ARGV[16], c = now, g = group, p = priority}
    redis.call('HSET', tickets, key, cjson.encode(ticket))
    redis.call('ZADD', queue, string.format('%.0f', seq - priority * 1e12), key)
    created = 1
  end
  redis.call('ZADD', deadlines, now + queue_ttl, key)
  keep()
  return {3, ticket.id, redis.call('ZRANK', queue, key) + 1, redis.call('ZCARD', queue), ticket.c,
    now + queue_ttl, created}
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
local waited_for, waited = '', ''
if ticket then
  ticket_drop(key)
  waited_for, waited = ticket.id, now - ticket.c
end
keep()
if not shares_a_seat then
  used = used + 1
end
return {reclaimed and 2 or 1, sid, record, now + ttl, used, waited_for, waited}
