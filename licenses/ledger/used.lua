-- How many live leases.
return redis.call('ZCARD', live)
