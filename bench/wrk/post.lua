-- wrk script for bench/run: POSTs one JSON request per call, each with the next subject
-- ID from a file, and prints the result as one JSON line when done.
--
--   wrk ... -s bench/wrk/post.lua URL -- IDS_FILE BODY_TEMPLATE [TOKEN_FILE]
--
-- BODY_TEMPLATE holds @ID@ where the ID goes; with TOKEN_FILE the request carries
-- `Authorization: Bearer <token>`. Each thread starts at its own place in the ID list,
-- so threads do not ask for the same subjects at the same time.

local threads = {}
local next_thread = 0

function setup(thread)
  thread:set("thread_index", next_thread)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end

local ids = {}
local prefix, suffix
local headers = { ["Content-Type"] = "application/json" }
local position = 0

local function read_all(path)
  local file = assert(io.open(path, "r"))
  local text = file:read("*a")
  file:close()
  return text
end

function init(args)
  for line in io.lines(args[1]) do
    if line ~= "" then
      ids[#ids + 1] = line
    end
  end
  assert(#ids > 0, "no IDs in " .. args[1])
  local template = args[2]
  local at = assert(string.find(template, "@ID@", 1, true), "BODY_TEMPLATE has no @ID@")
  prefix = string.sub(template, 1, at - 1)
  suffix = string.sub(template, at + 4)
  if args[3] and args[3] ~= "" then
    local token = string.gsub(read_all(args[3]), "%s+", "")
    headers["Authorization"] = "Bearer " .. token
  end
  -- thread_index is set by setup(); spread the threads over the list.
  position = ((thread_index or 0) * 7919) % #ids
end

function request()
  position = position % #ids + 1
  return wrk.format("POST", nil, headers, prefix .. ids[position] .. suffix)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"errors":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p99_us":%d,' ..
    '"p999_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
