-- Drop the queue tickets of one user (any machine), one machine (any user),
-- or one holder (both given): a holder blocked, or refused before the ledger
-- was asked, waits for nothing and must hold back no one.
-- ARGV[3] user id ('' for any; the empty user id of a ticket without one
-- is named '\0'), ARGV[4] fingerprint ('' for any). Returns how many went.
local user_id, fingerprint = ARGV[3], ARGV[4]
if user_id == '\0' then
  user_id = nil
end
local dropped = 0
local all = redis.call('HGETALL', tickets)
for i = 1, #all, 2 do
  local key = all[i]
  local cut = string.find(key, '\n', 1, true)
  if cut then
    local their_user, their_machine = string.sub(key, 1, cut - 1), string.sub(key, cut + 1)
    local user_matches = user_id == '' or their_user == (user_id or '')
    if user_matches and (fingerprint == '' or their_machine == fingerprint) then
      ticket_drop(key)
      dropped = dropped + 1
    end
  end
end
return dropped
