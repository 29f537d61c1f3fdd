-- XADD + SPUBLISH in one step, so the SSE id is the stream id and nothing is published
-- that a resuming client could not read back; several events of one kind in order.
-- KEYS: the stream. ARGV: event, maxlen, then the data (JSON) of each event.
-- Returns the entries' ids.
local ids = {}
for i = 3, #ARGV do
  local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[1], 'd', ARGV[i])
  redis.call('SPUBLISH', CHANNEL_PREFIX .. KEYS[1], id .. '\31' .. ARGV[1] .. '\31' .. ARGV[i])
  ids[#ids + 1] = id
end
return ids
