-- Hand the drainer up to `limit` audit events, oldest first. ARGV[3] limit.
-- Returns {stream id, {field, value, ...}, ...} as XRANGE does.
return redis.call('XRANGE', events, '-', '+', 'COUNT', tonumber(ARGV[3]))
