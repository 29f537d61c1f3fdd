-- A ride's new state for the hot path, idempotent and order-safe: the facts are written
-- only if not older than what is stored (`v`: the ride's updated_at in microseconds), the
-- driver's active ride follows them, and a status event is emitted at most once per
-- status (a repeated publish, from the follow-up job, emits nothing twice).
-- KEYS: meta, published, ride events, admin events, driver state ('' if none),
--       driver events ('' if none), path
-- ARGV: version, ride_id, status, active (0/1), terminal (0/1), event JSON ('' if none),
--       maxlen, admin maxlen, facts TTL, then field/value pairs of the facts
local meta, published, events, admin, state, drv_events, path =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local version, ride_id, status = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local active, terminal, event = ARGV[4] == '1', ARGV[5] == '1', ARGV[6]
local stored = tonumber(redis.call('HGET', meta, 'v') or '-1')
if version >= stored then
  local fields = {}
  for i = 10, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', meta, 'v', ARGV[1], unpack(fields))
  redis.call('EXPIRE', meta, ARGV[9])
  if state ~= '' then
    if active then
      redis.call('HSET', state, 'ride_id', ride_id, 'ride_status', status)
    elseif redis.call('HGET', state, 'ride_id') == ride_id then
      redis.call('HDEL', state, 'ride_id', 'ride_status')
    end
  end
  if terminal then redis.call('EXPIRE', path, 86400) end
end
if event == '' or redis.call('HSETNX', published, status, '1') == 0 then return 0 end
redis.call('EXPIRE', published, ARGV[9])
local function emit(stream, maxlen)
  local id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'e', 'status', 'd', event)
  redis.call('PUBLISH', CHANNEL_PREFIX .. stream, id .. '\31' .. 'status' .. '\31' .. event)
end
emit(events, ARGV[7])
emit(admin, ARGV[8])
if drv_events ~= '' then
  local id = redis.call('XADD', drv_events, 'MAXLEN', '~', ARGV[7], '*', 'e', 'ride_status',
    'd', event)
  redis.call('PUBLISH', CHANNEL_PREFIX .. drv_events,
    id .. '\31' .. 'ride_status' .. '\31' .. event)
end
return 1
