-- Takes every bucket of KEYS or none: the GCRA of `limits::state::Gcra`, on Redis's
-- own clock, in microseconds (a double holds them exactly until the year 2255).
-- ARGV, four per key: t, tau and the additional time of the take (nanoseconds), and
-- `1` when the take is beyond the burst (it never fits).
-- Returns {-1, 0} when every take was taken, else {the refused key's index from 0,
-- microseconds until it would fit, or -1 for the whole window}.
-- A bucket's key holds its theoretical arrival time and expires then (when the bucket
-- is full again, the same as no key).
if redis.replicate_commands then
  redis.replicate_commands()
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local next = {}
for i, key in ipairs(KEYS) do
  local at = (i - 1) * 4
  if ARGV[at + 4] == '1' then
    return {i - 1, -1}
  end
  local t = tonumber(ARGV[at + 1]) / 1000
  local tau = tonumber(ARGV[at + 2]) / 1000
  local additional = tonumber(ARGV[at + 3]) / 1000
  local tat = next[key]
  if tat == nil then
    tat = tonumber(redis.call('GET', key)) or now
  end
  local earliest = tat + additional - tau
  if now < earliest then
    return {i - 1, math.ceil(earliest - now)}
  end
  next[key] = math.max(tat, now) + t + additional
end
for key, tat in pairs(next) do
  redis.call('SET', key, string.format('%.17g', tat), 'PX', math.max(1, math.ceil((tat - now) / 1000)))
end
return {-1, 0}
