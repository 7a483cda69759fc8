-- Gives back takes: each bucket of KEYS gets back ARGV[i] nanoseconds (t times the
-- requests taken), never beyond full (now). A bucket back to full is deleted.
if redis.replicate_commands then
  redis.replicate_commands()
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key))
  if tat then
    local back = math.max(tat - tonumber(ARGV[i]) / 1000, now)
    if back <= now then
      redis.call('DEL', key)
    else
      redis.call('SET', key, string.format('%.17g', back), 'PX', math.max(1, math.ceil((back - now) / 1000)))
    end
  end
end
return 0
