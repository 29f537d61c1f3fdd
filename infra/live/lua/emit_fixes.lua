-- A driver's fixes onto a ride's stream (XADD + SPUBLISH, as `emit.lua`), each once: a fix
-- sent again (its first answer lost, the process killed before its second step) comes
-- with the same token and is published only if it never was.
-- KEYS: the stream, the set of the tokens it carries (the ride's slot)
-- ARGV: maxlen, the set's lifetime (s), then token and data (JSON) of each fix, in order
-- Returns each fix's entry id ('' for one already on the stream).
local ids = {}
for i = 3, #ARGV, 2 do
  local id = ''
  if redis.call('SADD', KEYS[2], ARGV[i]) == 1 then
    id = append_event(KEYS[1], ARGV[1], 'location', ARGV[i + 1])
  end
  ids[#ids + 1] = id
end
redis.call('EXPIRE', KEYS[2], ARGV[2])
return ids
