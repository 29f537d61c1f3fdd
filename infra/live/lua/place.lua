-- A driver's place in its cell's search index: the position and the time it was heard
-- from, both on the cell's slot (one call instead of two on the ping's hot path).
-- KEYS: the cell's GEO set, its seen set. ARGV: lng, lat, driver, ts
redis.call('GEOADD', KEYS[1], ARGV[1], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
