-- wrk script: replay pre-signed requests from a file, one per line: path<TAB>timestamp<TAB>sign<TAB>body
-- Each thread takes every Nth line so no request is sent twice (every callback is a new event).
local lines = {}
local idx, step = 0, 1
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

function init(args)
  for line in io.lines(args[1]) do lines[#lines + 1] = line end
  step = tonumber(args[2])
  idx = tid
end

function request()
  local line = lines[idx]
  idx = idx + step
  if idx > #lines then idx = tid end
  local path, ts, sign, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
  local headers = {}
  if ts ~= "" then headers["timestamp"] = ts; headers["sign"] = sign; headers["Content-Type"] = "application/json" end
  return wrk.format("POST", path, headers, body)
end
