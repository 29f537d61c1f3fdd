-- XADD + SPUBLISH in one step, so the SSE id is the stream id and nothing is published
-- that a resuming client could not read back; several events of one kind in order.
-- KEYS: the stream. ARGV: event, maxlen, then the data (JSON) of each event.
-- Returns the entries' ids.
local ids = {}
for i = 3, #ARGV do
  ids[#ids + 1] = append_event(KEYS[1], ARGV[2], ARGV[1], ARGV[i])
end
return ids
