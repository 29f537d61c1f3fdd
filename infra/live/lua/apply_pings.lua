-- Apply a time-sorted batch of one driver's pings atomically, in one round trip, on the
-- driver's slot only: rate limit, dedupe by uuid and timestamp, reject impossible jumps
-- against the last fix, keep the newest position (with its cell), and append to the
-- trip path. What lives on other slots is the caller's next step, from what this
-- returns: the search index of the cell, the ride's stream (every accepted fix of an
-- active ride, in time order; `live`: the fix became the driver's position, a late fix
-- from a backlog the driver has moved past is `live: false`, for the trail only) and the
-- admin stream (the newest fix only).
-- A fix the ride's stream may not have had: the stream is the second step, and a process
-- killed (or a shard failing over) between the steps leaves the fix here, its uuid
-- recorded, and its resend a duplicate. So a duplicate of the trip's accepted fixes goes
-- to the ride's stream again, under the same token (its uuid, or `t:<ts>` without one),
-- and the stream's side (`emit_fixes.lua`) publishes each token once.
-- KEYS: position, driver state, uuids, rate window (one driver's: one hash tag)
-- ARGV: driver, max speed (m/s), jump slack (m), rate limit, rate window (s),
--       path max, uuids kept, validity mask, then 8 fields a fix
--       (lat, lng, ts, heading, speed, accuracy, uuid, RFC 3339 time)
-- Returns {'rate_limited', ttl} or {'ok', status, ride id, ride status, old cell,
--   new cell, lat, lng, ts ('' each if no fix became the position), that fix's JSON,
--   the fixes for the ride's stream ("token\31JSON" joined by \30, '' if none), the
--   place among them of the fix that became the position (from 0; -1 if none), codes...}
local pos_key, state_key, uuid_key, rl_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local driver = ARGV[1]
local max_speed = tonumber(ARGV[2])
local slack = tonumber(ARGV[3])
local rl_limit = tonumber(ARGV[4])
local rl_window = tonumber(ARGV[5])
local path_max = tonumber(ARGV[6])
local uuid_keep = tonumber(ARGV[7])
-- '' when every fix is valid, else one '1'/'0' per fix: OsmAnd's `valid`
local valid_mask = ARGV[8]
local FIELDS = 8
local first = 9
local n = (#ARGV - first + 1) / FIELDS

local hits = redis.call('INCR', rl_key)
if hits == 1 then redis.call('EXPIRE', rl_key, rl_window) end
if hits > rl_limit then
  return {'rate_limited', redis.call('TTL', rl_key)}
end

local st = redis.call('HMGET', state_key, 'status', 'ride_id', 'ride_status')
local status, ride_id, ride_status = st[1] or 'offline', st[2], st[3]
local last = redis.call('HMGET', pos_key, 'lat', 'lng', 'ts', 'cell')
local llat, llng, lts = tonumber(last[1]), tonumber(last[2]), tonumber(last[3])
local old_cell = last[4] or ''
-- the trip's path is kept from the acceptance on, each fix with the time it arrived:
-- the ride's later steps may reach Redis late (their publish waits for the outbox when
-- Redis was restarting or the API died after the commit), and a fix of the trip must not
-- be lost meanwhile; RedisTripPaths keeps those that arrived after the start
local on_ride = ride_id and DRIVER_ACTIVE[ride_status]
local path_key = on_ride and trip_path_key(driver, ride_id)

local function dist(lat1, lng1, lat2, lng2)
  local r = math.pi / 180
  local p1, p2 = lat1 * r, lat2 * r
  local dp, dl = (lat2 - lat1) * r, (lng2 - lng1) * r
  local h = math.sin(dp / 2) ^ 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ^ 2
  if h > 1 then h = 1 end
  return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))
end

local codes = {}
local newest = nil
local published = {}  -- {argv index, live} of each accepted fix, in time order
local clock = redis.call('TIME')  -- when the fixes arrived, by the server's clock
local received = clock[1] .. '.' .. string.format('%06d', clock[2])
for i = 0, n - 1 do
  local b = first + i * FIELDS
  local lat, lng, ts = tonumber(ARGV[b]), tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local uuid = ARGV[b + 6]
  local code = 'accepted'
  if math.abs(lat) > MAX_GEO_LAT then
    code = 'lat_out_of_range'  -- Redis GEO cannot index it: refused before any write
  elseif uuid ~= '' and redis.call('ZSCORE', uuid_key, uuid) then
    code = 'duplicate'
    -- an accepted fix (an invalid one is noted as 'x:' .. uuid): its stream entry again
    if on_ride then published[#published + 1] = {b, lts ~= nil and ts >= lts} end
  elseif uuid ~= '' and redis.call('ZSCORE', uuid_key, 'x:' .. uuid) then
    code = 'duplicate'
  elseif uuid == '' and lts and ts <= lts then
    code = 'duplicate'  -- no uuid: dedupe by timestamp, never move backwards
    -- the position's own fix sent again: its stream entry again
    if on_ride and ts == lts then published[#published + 1] = {b, true} end
  elseif valid_mask ~= '' and string.sub(valid_mask, i + 1, i + 1) == '0' then
    code = 'invalid_fix'  -- the device says so: noted (dedupe), never the live position
  elseif llat and dist(llat, llng, lat, lng)
      > max_speed * math.abs(ts - lts) + slack + math.min(tonumber(ARGV[b + 5]) or 0, 1000) then
    code = 'impossible_jump'
  end
  if code == 'invalid_fix' and uuid ~= '' then redis.call('ZADD', uuid_key, ts, 'x:' .. uuid) end
  if code == 'accepted' then
    if uuid ~= '' then redis.call('ZADD', uuid_key, ts, uuid) end
    if on_ride then
      redis.call('RPUSH', path_key,
        ts .. ',' .. lat .. ',' .. lng .. ',' .. ARGV[b + 5] .. ',' .. received)
    end
    local live = not lts or ts > lts
    if live then
      llat, llng, lts = lat, lng, ts
      newest = b
    end
    published[#published + 1] = {b, live}
  end
  codes[#codes + 1] = code
end

local function num(v) if v == '' then return cjson.null end return tonumber(v) end
local function fix_json(b, live)
  local token = ARGV[b + 6]
  if token == '' then token = 't:' .. ARGV[b + 2] end
  return token .. '\31' .. cjson.encode({driver_id = driver, lat = tonumber(ARGV[b]),
    lng = tonumber(ARGV[b + 1]), heading = num(ARGV[b + 3]), speed = num(ARGV[b + 4]),
    accuracy = num(ARGV[b + 5]), recorded_at = ARGV[b + 7], live = live})
end

local for_ride, live_at = '', -1
if on_ride and #published > 0 then
  local fixes = {}
  for k, fix in ipairs(published) do
    fixes[#fixes + 1] = fix_json(fix[1], fix[2])
    if fix[1] == newest then live_at = k - 1 end
  end
  for_ride = table.concat(fixes, '\30')
end
local new_cell, newest_json, nlat, nlng, nts = '', '', '', '', ''
if newest then
  local b = newest
  new_cell = cell_of(tonumber(ARGV[b]), tonumber(ARGV[b + 1]))
  redis.call('HSET', pos_key, 'lat', ARGV[b], 'lng', ARGV[b + 1], 'ts', ARGV[b + 2],
    'heading', ARGV[b + 3], 'speed', ARGV[b + 4], 'accuracy', ARGV[b + 5], 'at', ARGV[b + 7],
    'cell', new_cell)
  newest_json = string.match(fix_json(b, true), '\31(.*)$')
  nlat, nlng, nts = ARGV[b], ARGV[b + 1], ARGV[b + 2]
end
if on_ride then
  if redis.call('LLEN', path_key) > path_max then redis.call('LTRIM', path_key, -path_max, -1) end
end
if redis.call('ZCARD', uuid_key) > uuid_keep then
  redis.call('ZREMRANGEBYRANK', uuid_key, 0, -uuid_keep - 1)
end
redis.call('EXPIRE', uuid_key, 86400)
return {'ok', status, ride_id or '', ride_status or '', old_cell, new_cell, nlat, nlng, nts,
  newest_json, for_ride, live_at, unpack(codes)}
