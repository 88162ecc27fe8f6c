-- How many queue tickets wait (those past their deadline are gone first).
tickets_prune()
return redis.call('ZCARD', queue)
