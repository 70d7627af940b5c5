-- wrk script for the "read token's POST" path: wrk's static request as a POST (no body),
-- then the shared harness's own report script (status tally + BENCH_JSON line).
wrk.method = "POST"
dofile(os.getenv("BENCH_REPORT_LUA"))
