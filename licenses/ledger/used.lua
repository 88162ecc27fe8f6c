-- How many seats are in use: live leases, or (ARGV[3] '1', seat mode
-- per_user) users holding one.
if ARGV[3] == '1' then
  return users_holding()
end
return redis.call('ZCARD', live)
