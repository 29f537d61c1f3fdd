-- A ride's new state on its driver's slot, after `ride_changed` on the ride's: the
-- driver's active ride follows the ride's facts when those were written (not older than
-- what was stored), the trip's path is kept a day once the ride has ended, and the
-- status goes on the driver app's stream once (its own gate, so a publish repeated after
-- a crash between the two scripts still tells the driver).
-- KEYS: driver state, driver events, told, the trip's path
-- ARGV: ride_id, status, active (0/1), terminal (0/1), facts written (0/1),
--       event JSON ('' if none), maxlen, facts TTL
-- Returns 1 if the status event was put on the driver's stream now
local state, events, told, path = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ride_id, status, event = ARGV[1], ARGV[2], ARGV[6]
if ARGV[5] == '1' then
  if ARGV[3] == '1' then
    redis.call('HSET', state, 'ride_id', ride_id, 'ride_status', status)
  elseif redis.call('HGET', state, 'ride_id') == ride_id then
    redis.call('HDEL', state, 'ride_id', 'ride_status')
  end
  if ARGV[4] == '1' then redis.call('EXPIRE', path, 86400) end
end
if event == '' or redis.call('HSETNX', told, ride_id .. ':' .. status, '1') == 0 then
  return 0
end
redis.call('EXPIRE', told, ARGV[8])
append_event(events, ARGV[7], 'ride_status', event)
return 1
