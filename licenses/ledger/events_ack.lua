-- Forget audit events the drainer has recorded (committed). ARGV[3..] stream
-- ids. An emptied stream is deleted, as Redis keeps an empty stream otherwise.
if #ARGV >= 3 then
  redis.call('XDEL', events, unpack(ARGV, 3))
end
if redis.call('XLEN', events) == 0 then
  redis.call('DEL', events)
end
return 0
