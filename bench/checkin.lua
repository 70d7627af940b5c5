-- wrk script for the write path: check-in (POST) and undo (DELETE) over a pool of attendees,
-- then the shared harness's own report script (status tally + BENCH_JSON line).
-- Each thread walks its own slice of the pool; each attendee is checked in, and on its next
-- visit checked out, so a 409 only comes from two requests in flight for one attendee.
-- BENCH_CHECKIN_BASE is "/admin/events/<id>/attendees/"; the pool is the ids
-- BENCH_CHECKIN_FIRST .. BENCH_CHECKIN_FIRST + BENCH_CHECKIN_COUNT - 1.
dofile(os.getenv("BENCH_REPORT_LUA"))

local report_setup, report_init = setup, init
local started = 0

function setup(thread)
  report_setup(thread)
  thread:set("thread_index", started)
  started = started + 1
  thread:set("thread_count", started)
end

local base = os.getenv("BENCH_CHECKIN_BASE")
local first = tonumber(os.getenv("BENCH_CHECKIN_FIRST"))
local count = tonumber(os.getenv("BENCH_CHECKIN_COUNT"))
local threads_total = tonumber(os.getenv("BENCH_WRK_THREADS"))
local lo, size, next_slot, checked

function init(args)
  report_init(args)
  size = math.floor(count / threads_total)
  lo = first + thread_index * size
  next_slot = 0
  checked = {}
end

function request()
  local id = lo + next_slot
  next_slot = (next_slot + 1) % size
  local method = checked[id] and "DELETE" or "POST"
  checked[id] = not checked[id]
  return wrk.format(method, base .. id .. "/check_in")
end
