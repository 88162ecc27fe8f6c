-- The head of every seat-ledger script; redis.py prepends it to each one.
--
-- KEYS are one license's thirteen keys, all under its {license_id} hash tag, so a
-- script runs in one cluster slot:
--   KEYS[1] live     ZSET  session id -> expiry, ms on the Redis clock
--   KEYS[2] leases   HASH  session id -> lease record (JSON), live or expired
--   KEYS[3] holders  HASH  user id, newline, fingerprint -> session id of
--                          that user's live lease on that machine
--   KEYS[4] expired  ZSET  session id -> when the sweep may take it, ms
--   KEYS[5] by_created ZSET, all scores 0: '<created ms, 15 digits>:<session
--           id>' of each live lease, so that ZRANGEBYLEX pages them oldest
--           first in an order no heartbeat moves (live_page.lua)
--   KEYS[6] by_user  ZSET, all scores 0: '<user id>\0' then the same, one
--           user's live leases in the same order
--   KEYS[7] events   STREAM audit events of changes, for the drainer to record
--   KEYS[8] borrows  ZSET  session id -> the end of its borrow, ms: the live
--                          leases out on borrow, counted by borrow.lua against
--                          the license's borrow limits
--   KEYS[9] users    HASH  user id ('' for none) -> how many live leases the
--                          user holds, and '!built': the seats of a license
--                          counted per user (seat mode per_user), HLEN - 1
--   KEYS[10] queue   ZSET  holder (see holder()) -> place: the waiting tickets,
--                          by their group's priority, then arrival
--   KEYS[11] tickets HASH  holder -> ticket record (JSON: id, created ms,
--                          group, priority), and '!seq', the arrival counter
--   KEYS[12] deadlines ZSET holder -> when the ticket leaves unless polled, ms
--   KEYS[13] groups  HASH  per group rule: <group> -> its live leases,
--                          <group>\t -> the users holding them, <group>\n<user
--                          id> -> that user's live leases there; '!built'
-- ARGV[1] retention, ms: how long the keys outlive their last live lease
-- ARGV[2] the most expired records kept for the sweep
-- A script's own arguments start at ARGV[3].
--
-- Seats are counted as members of `live`, never by a counter: a member whose
-- score is past is pruned by whichever script runs next, so expiry frees a
-- seat with no call, and a double release cannot free two.
local live, leases, holders, expired = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local by_created, by_user = KEYS[5], KEYS[6]
local events = KEYS[7]
local borrows = KEYS[8]
local users = KEYS[9]
local queue, tickets, deadlines, groups = KEYS[10], KEYS[11], KEYS[12], KEYS[13]
local retention = tonumber(ARGV[1])
local expired_cap = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

-- Who holds a lease: one user on one machine (invariant 10), so two users of
-- one fingerprint hold two leases. A lease without a user has the empty user
-- id (its record says null, which cjson reads as a non-string). Neither a
-- user id (a UUID) nor a fingerprint (the API's pattern) holds a newline, so
-- no pair reads as another pair, nor as a bare fingerprint: the key holders
-- had before it named the user, which acquire.lua still looks up.
local function holder(user_id, fingerprint)
  if type(user_id) ~= 'string' then
    user_id = ''
  end
  return user_id .. '\n' .. fingerprint
end

-- Whether a lease record lingers: released by its holder, its seat held for
-- them until its expiry (release.lua's `lg`, the same moment). A find,
-- not a decode, on the hot paths: cjson writes the field as '"lg":', and no
-- other field's text can hold that (client_info is a JSON string within the
-- record, its quotes escaped; fingerprints and ids hold no quote).
local function lingering(raw)
  return string.find(raw, '"lg":', 1, true) ~= nil
end

-- A lease that ends stops being its holder's, under either key.
local function forget_holder(record, sid)
  for _, key in ipairs({holder(record.uid, record.fp), record.fp}) do
    if redis.call('HGET', holders, key) == sid then
      redis.call('HDEL', holders, key)
    end
  end
end

-- A live lease's place in the paging indexes (by_created, by_user).
local function position(sid, record)
  return string.format('%015d', record.c) .. ':' .. sid
end

local function index_add(sid, record)
  local at = position(sid, record)
  redis.call('ZADD', by_created, 0, at)
  if type(record.uid) == 'string' then
    redis.call('ZADD', by_user, 0, record.uid .. '\0' .. at)
  end
end

local function index_remove(sid, record)
  local at = position(sid, record)
  redis.call('ZREM', by_created, at)
  if type(record.uid) == 'string' then
    redis.call('ZREM', by_user, record.uid .. '\0' .. at)
  end
end

-- The per-user count (`users`): kept by every script that adds a lease to
-- `live` or takes one out, once built; built from `live` the first time a
-- script needs it (a license whose leases predate it, or whose hash was
-- lost), so it is never a second truth that can drift from `live`.
local function user_field(record)
  return type(record.uid) == 'string' and record.uid or ''
end

local function users_ready()
  if redis.call('HEXISTS', users, '!built') == 1 then
    return
  end
  redis.call('DEL', users)
  for _, sid in ipairs(redis.call('ZRANGE', live, 0, -1)) do
    local raw = redis.call('HGET', leases, sid)
    if raw then
      redis.call('HINCRBY', users, user_field(cjson.decode(raw)), 1)
    end
  end
  redis.call('HSET', users, '!built', 1)
end

-- How many users hold a live lease (a seat each, in seat mode per_user).
local function users_holding()
  users_ready()
  return redis.call('HLEN', users) - 1
end

-- The per-group counts (`groups`), kept the same way: a lease granted under a
-- group rule records the group (`g`) and counts against it until it ends. A
-- group's name is the tenant admin's (letters, digits, ' ', '.', '_', '-'),
-- so '\t' and '\n' after it make fields of their own, and '!built' is none.
local function hincr_or_drop(key, field, delta)
  local n = redis.call('HINCRBY', key, field, delta)
  if n <= 0 then
    redis.call('HDEL', key, field)
  end
  return n
end

local function group_count(record, delta)
  local g = record.g
  if type(g) ~= 'string' then
    return
  end
  hincr_or_drop(groups, g, delta)
  local n = hincr_or_drop(groups, g .. '\n' .. user_field(record), delta)
  if (delta > 0 and n == 1) or (delta < 0 and n <= 0) then
    hincr_or_drop(groups, g .. '\t', delta)
  end
end

local function groups_ready()
  if redis.call('HEXISTS', groups, '!built') == 1 then
    return
  end
  redis.call('DEL', groups)
  for _, sid in ipairs(redis.call('ZRANGE', live, 0, -1)) do
    local raw = redis.call('HGET', leases, sid)
    if raw then
      group_count(cjson.decode(raw), 1)
    end
  end
  redis.call('HSET', groups, '!built', 1)
end

-- The seats a group holds: its leases, or (per user) the users holding them.
local function group_used(g, per_user)
  groups_ready()
  return tonumber(redis.call('HGET', groups, per_user and (g .. '\t') or g)) or 0
end

-- A lease enters `live` or leaves it: its paging indexes, its user's count
-- and its group's.
local function lease_added(sid, record)
  index_add(sid, record)
  if redis.call('HEXISTS', users, '!built') == 1 then
    redis.call('HINCRBY', users, user_field(record), 1)
  end
  if record.g and redis.call('HEXISTS', groups, '!built') == 1 then
    group_count(record, 1)
  end
end

local function lease_removed(sid, record)
  index_remove(sid, record)
  if redis.call('HEXISTS', users, '!built') == 1 then
    hincr_or_drop(users, user_field(record), -1)
  end
  if record.g and redis.call('HEXISTS', groups, '!built') == 1 then
    group_count(record, -1)
  end
end

-- Queue tickets leave by themselves: one not polled by its deadline is gone
-- the next time a script looks at the queue.
local function tickets_prune()
  local gone = redis.call('ZRANGEBYSCORE', deadlines, '-inf', now)
  if #gone == 0 then
    return
  end
  for _, key in ipairs(gone) do
    redis.call('ZREM', queue, key)
    redis.call('HDEL', tickets, key)
  end
  redis.call('ZREMRANGEBYSCORE', deadlines, '-inf', now)
end

local function ticket_drop(key)
  redis.call('ZREM', queue, key)
  redis.call('ZREM', deadlines, key)
  redis.call('HDEL', tickets, key)
end

-- Expired leases leave `live` but keep their record, marked with when they
-- expired, and wait in `expired` for the sweep to audit them (invariant 8).
local function prune()
  local gone = redis.call('ZRANGEBYSCORE', live, '-inf', now, 'WITHSCORES')
  if #gone == 0 then
    return
  end
  for i = 1, #gone, 2 do
    local sid, expiry = gone[i], tonumber(gone[i + 1])
    local raw = redis.call('HGET', leases, sid)
    if raw then
      local record = cjson.decode(raw)
      lease_removed(sid, record)
      if record.b then
        redis.call('ZREM', borrows, sid)
      end
      record.x = expiry
      redis.call('HSET', leases, sid, cjson.encode(record))
      redis.call('ZADD', expired, expiry, sid)
      forget_holder(record, sid)
    end
  end
  redis.call('ZREMRANGEBYSCORE', live, '-inf', now)
  -- What just expired waits `retention` for the sweep, even if `expired` was
  -- only now created (after the last keep()).
  for _, key in ipairs({leases, expired}) do
    if redis.call('PTTL', key) < retention then
      redis.call('PEXPIRE', key, retention)
    end
  end
  local overflow = redis.call('ZCARD', expired) - expired_cap
  if overflow > 0 then
    for _, sid in ipairs(redis.call('ZRANGE', expired, 0, overflow - 1)) do
      redis.call('HDEL', leases, sid)
      redis.call('ZREM', expired, sid)
    end
  end
end

-- Keys live until the latest expiry plus the retention, so an abandoned
-- license's keys go away by themselves, but only after the sweep has had
-- `retention` to drain what expired.
local function keep()
  local last = redis.call('ZRANGE', live, -1, -1, 'WITHSCORES')
  local horizon = now
  if last[2] and tonumber(last[2]) > horizon then
    horizon = tonumber(last[2])
  end
  horizon = horizon + retention
  for _, key in ipairs(KEYS) do
    redis.call('PEXPIREAT', key, horizon)
  end
end

prune()

-- The generation marker: a field of `leases` (no session id starts with '!')
-- that every Redis which holds this license's state has, and that a Redis
-- restarted empty, failed over to a stale replica or evicting lacks. Without
-- it acquire grants nothing until restore.lua has put back the borrowed
-- leases kept in PostgreSQL (DESIGN.md invariant 9). Kept in `leases`, so the
-- lease records and the marker that vouches for them go together.
local generation = '!generation'
local function state_known()
  return redis.call('HEXISTS', leases, generation) == 1
end

-- A change's audit event goes into `events` in the script that makes the
-- change, so it exists exactly when the change does (invariant 8); the
-- drainer records it in the audit log and only then deletes it. `event` is
-- the caller's JSON (id, action, extra details, request id, client address),
-- '' for none; `record` is the lease's record as the change left it ('' for
-- an event of no lease: a refused heartbeat).
local function record_event(event, sid, record)
  if event == nil or event == '' then
    return
  end
  redis.call('XADD', events, '*', 'e', event, 'sid', sid, 'r', record, 't', now)
  if redis.call('PTTL', events) < retention then
    redis.call('PEXPIRE', events, retention)
  end
end
