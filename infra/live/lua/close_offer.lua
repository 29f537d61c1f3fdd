-- The driver's open offer is deleted only if it is still the offer of this ride (a newer
-- offer made meanwhile stays).
-- KEYS: the driver's offer. ARGV: the ride's id.
local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v)['ride_id'] == ARGV[1] then redis.call('DEL', KEYS[1]) end
