-- wrk script for the door's redeem path: redeem a ticket's code (POST …/check_ins, 201), and
-- on the ticket's next visit undo its check-in (DELETE …/attendees/<id>/check_in, 204), like
-- the write path's check-in and undo; then the shared harness's report script.
-- BENCH_DOOR_BASE is "/admin/events/<id>"; BENCH_DOOR_POOL a file of "<attendee id> <code>"
-- lines, the attendees of that event; each thread walks its own slice of it.
dofile(os.getenv("BENCH_REPORT_LUA"))

local report_setup, report_init = setup, init
local started = 0

function setup(thread)
  report_setup(thread)
  thread:set("thread_index", started)
  started = started + 1
end

local base = os.getenv("BENCH_DOOR_BASE")
local threads_total = tonumber(os.getenv("BENCH_WRK_THREADS"))
local tickets, lo, size, next_slot, admitted

function init(args)
  report_init(args)
  tickets = {}
  for line in io.lines(os.getenv("BENCH_DOOR_POOL")) do
    local id, code = line:match("^(%d+) (%w+)$")
    tickets[#tickets + 1] = {id = id, code = code}
  end
  size = math.floor(#tickets / threads_total)
  lo = thread_index * size
  next_slot = 0
  admitted = {}
end

-- wrk's own headers (the token, Accept) and the body's type: wrk.format sends only those it is given.
function json_headers()
  local headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  headers["Content-Type"] = "application/json"
  return headers
end

function request()
  local ticket = tickets[lo + next_slot + 1]
  next_slot = (next_slot + 1) % size
  local undo = admitted[ticket.id]
  admitted[ticket.id] = not undo
  if undo then
    return wrk.format("DELETE", base .. "/attendees/" .. ticket.id .. "/check_in")
  end
  return wrk.format("POST", base .. "/check_ins", json_headers(),
                    '{"code": "' .. ticket.code .. '"}')
end
