-- A ride's new state for the hot path, on the ride's slot, idempotent and order-safe: the
-- facts are written only if not older than what is stored (`v`: the ride's updated_at in
-- microseconds), and a status event is emitted at most once per status (a repeated
-- publish, from the follow-up job, emits nothing twice). The driver's side is
-- `driver_ride`, run next on the driver's slot with what this returns.
-- KEYS: meta, published, ride events
-- ARGV: version, status, event JSON ('' if none), maxlen, facts TTL, then field/value
--       pairs of the facts
-- Returns {written (0/1), the status event's id ('' if not emitted now)}
local meta, published, events = KEYS[1], KEYS[2], KEYS[3]
local version, status, event = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local written = 0
local stored = tonumber(redis.call('HGET', meta, 'v') or '-1')
if version >= stored then
  local fields = {}
  for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', meta, 'v', ARGV[1], unpack(fields))
  redis.call('EXPIRE', meta, ARGV[5])
  written = 1
end
if event == '' or redis.call('HSETNX', published, status, '1') == 0 then return {written, ''} end
redis.call('EXPIRE', published, ARGV[5])
local id = append_event(events, ARGV[4], 'status', event)
return {written, id}
