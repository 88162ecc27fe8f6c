-- Forget expired leases the sweep has recorded. ARGV[3..] session ids; a
-- session that is not in `expired` (live, unknown) is left alone.
for i = 3, #ARGV do
  if redis.call('ZREM', expired, ARGV[i]) == 1 then
    redis.call('HDEL', leases, ARGV[i])
  end
end
return 0
