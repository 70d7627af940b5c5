-- wrk script for the soak (bench/soak.py): a mixed load on the JSON API, chosen per request:
-- the first page of an event's attendees, the first page of the events, one attendee, a new
-- attendee (about 15 %, with a name and email unique to the run, thread and request), and a
-- well-formed unknown token. Then the shared harness's report script (status tally,
-- BENCH_JSON line), whose setup and init this one extends.
dofile(os.getenv("BENCH_REPORT_LUA"))

local run_tag = os.getenv("BENCH_SOAK_TAG")
local event_path = os.getenv("BENCH_SOAK_EVENT")  -- /admin/events/<id>
local attendee_path = os.getenv("BENCH_SOAK_ATTENDEE")  -- /admin/events/<id>/attendees/<id>
local token = "Bearer " .. os.getenv("BENCH_SOAK_TOKEN")
local unknown = "Bearer " .. os.getenv("BENCH_SOAK_UNKNOWN")

local report_setup, report_init = setup, init
local thread_count = 0

function setup(thread)
  report_setup(thread)
  thread_count = thread_count + 1
  thread:set("number", thread_count)
end

function init(args)
  report_init(args)
  sent = 0
  math.randomseed(number * 7919)
end

local function headers(authorization)
  return {["Authorization"] = authorization, ["Accept"] = "application/json"}
end

function request()
  sent = sent + 1
  local pick = math.random(100)
  if pick <= 15 then
    local unique = string.format("soak-%s-%d-%d", run_tag, number, sent)
    local h = headers(token)
    h["Content-Type"] = "application/json"
    local body = string.format('{"name":"%s","email":"%s@soak.example","ticket_type":"General"}', unique, unique)
    return wrk.format("POST", event_path .. "/attendees", h, body)
  elseif pick <= 45 then
    return wrk.format("GET", event_path .. "/attendees", headers(token))
  elseif pick <= 65 then
    return wrk.format("GET", "/admin/events", headers(token))
  elseif pick <= 90 then
    return wrk.format("GET", attendee_path, headers(token))
  else
    return wrk.format("GET", "/admin/events", headers(unknown))
  end
end
