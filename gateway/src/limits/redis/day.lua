-- Takes ARGV[1] from every day counter of KEYS, or from none when one has no room.
-- ARGV[2]: the counters' time to live in seconds; ARGV[2 + i]: KEYS[i]'s limit.
-- Returns {-1, the counts after the take...} when taken, else {the refused counter's
-- index from 0, the counts read up to it...}.
local n = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local counts = {}
local seen = {}
for i, key in ipairs(KEYS) do
  local count = seen[key]
  if count == nil then
    count = tonumber(redis.call('GET', key)) or 0
  end
  if count + n > tonumber(ARGV[2 + i]) then
    counts[i] = count
    table.insert(counts, 1, i - 1)
    return counts
  end
  seen[key] = count + n
  counts[i] = count + n
end
for _, key in ipairs(KEYS) do
  redis.call('INCRBY', key, n)
  redis.call('EXPIRE', key, ttl)
end
for i, key in ipairs(KEYS) do
  counts[i] = seen[key]
end
table.insert(counts, 1, -1)
return counts
