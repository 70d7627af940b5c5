-- wrk script for the door's offline batch: each request sends 100 scans (fresh nonces) of
-- the thread's slice of the pool, each scan an earlier moment than the thread's last batch,
-- so every scan is admitted (the first batch checks its tickets in, each later one takes the
-- check-in over: the earliest scan is the check-in); then the shared harness's report script.
-- BENCH_DOOR_BASE is "/admin/events/<id>"; BENCH_DOOR_POOL a file of "<attendee id> <code>"
-- lines; BENCH_DOOR_RUN makes this run's nonces its own.
dofile(os.getenv("BENCH_REPORT_LUA"))

local report_setup, report_init = setup, init
local started = 0

function setup(thread)
  report_setup(thread)
  thread:set("thread_index", started)
  started = started + 1
end

local SCANS = 100
local base = os.getenv("BENCH_DOOR_BASE")
local run = os.getenv("BENCH_DOOR_RUN")
local threads_total = tonumber(os.getenv("BENCH_WRK_THREADS"))
local codes, lo, size, sent, first_moment

function init(args)
  report_init(args)
  codes = {}
  for line in io.lines(os.getenv("BENCH_DOOR_POOL")) do
    codes[#codes + 1] = line:match("^%d+ (%w+)$")
  end
  size = math.floor(#codes / threads_total)
  lo = thread_index * size
  sent = 0
  first_moment = os.time() - 3600
end

-- wrk's own headers (the token, Accept) and the body's type: wrk.format sends only those it is given.
function json_headers()
  local headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  headers["Content-Type"] = "application/json"
  return headers
end

function request()
  sent = sent + 1
  local moment = os.date("!%Y-%m-%dT%H:%M:%SZ", first_moment - sent)
  local scans = {}
  for i = 0, SCANS - 1 do
    local code = codes[lo + ((sent * SCANS + i) % size) + 1]
    scans[#scans + 1] = '{"nonce": "' .. run .. "-" .. thread_index .. "-" .. sent .. "-" .. i
                        .. '", "code": "' .. code .. '", "scanned_at": "' .. moment .. '"}'
  end
  return wrk.format("POST", base .. "/check_ins/batch", json_headers(),
                    '{"scans": [' .. table.concat(scans, ", ") .. "]}")
end
