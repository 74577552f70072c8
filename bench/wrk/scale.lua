-- bench/wrk/releases.lua's requests (OPERATION=metadata for bench/scale.sh), and at the end the latency
-- histogram written to the file HISTOGRAM names, so that the runs of several wrk processes at once (one a
-- replica) can be merged into exact percentiles. Run from the repository's top directory.
-- The file: "duration MICROSECONDS", "requests N", "errors N" (connect, read, write, status, timeout), then
-- one "MICROSECONDS COUNT" line for each latency seen.
dofile("bench/wrk/releases.lua")

function done(summary, latency, requests)
    local path = os.getenv("HISTOGRAM")
    if not path then return end
    local file = assert(io.open(path, "w"))
    local errors = summary.errors
    file:write(string.format("duration %d\nrequests %d\nerrors %d\n", summary.duration, summary.requests,
        errors.connect + errors.read + errors.write + errors.status + errors.timeout))
    -- latency(i) is the i-th distinct value and its count; past the last, 0 and a stale count.
    local index = 1
    while true do
        local value, count = latency(index)
        if value == 0 or count == 0 then break end
        file:write(string.format("%d %d\n", value, count))
        index = index + 1
    end
    file:close()
end
