-- XADD + PUBLISH in one step, so the SSE id is the stream id and nothing is published
-- that a resuming client could not read back.
-- KEYS: the stream. ARGV: event, data (JSON), maxlen. Returns the entry's id.
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[1], 'd', ARGV[2])
redis.call('PUBLISH', CHANNEL_PREFIX .. KEYS[1], id .. '\31' .. ARGV[1] .. '\31' .. ARGV[2])
return id
