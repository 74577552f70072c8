-- Requests against a registry seeded by bench/seed_releases.py, on random models.
-- OPERATION=resolve: GET a manifest through @prod or a version (an init container's first request).
-- OPERATION=move: PUT the canary alias to a random version (one transaction with history and audit rows).
-- OPERATION=metadata: GET the metadata routes in turn: a model, its versions, its aliases, a manifest.
-- Environment: MODELREG_TOKEN, OPERATION, MODELS (default 1000), VERSIONS (default 10).
local token = os.getenv("MODELREG_TOKEN")
local operation = os.getenv("OPERATION") or "resolve"
local models = tonumber(os.getenv("MODELS") or "1000")
local versions = tonumber(os.getenv("VERSIONS") or "10")

function setup(thread)
    thread:set("seed", math.random(1, 1000000))
end

function init(args)
    math.randomseed(seed)
    wrk.headers["Authorization"] = "Bearer " .. token
    wrk.headers["Content-Type"] = "application/json"
end

function request()
    local model = string.format("m%04d", math.random(0, models - 1))
    if operation == "move" then
        local body = string.format('{"version":"%d"}', math.random(0, versions - 1))
        return wrk.format("PUT", "/v1/models/" .. model .. "/aliases/canary", nil, body)
    end
    if operation == "metadata" then
        local route = math.random(1, 4)
        if route == 1 then return wrk.format("GET", "/v1/models/" .. model) end
        if route == 2 then return wrk.format("GET", "/v1/models/" .. model .. "/versions") end
        if route == 3 then return wrk.format("GET", "/v1/models/" .. model .. "/aliases") end
    end
    local reference
    if math.random() < 0.5 then reference = "@prod" else reference = ":" .. math.random(0, versions - 1) end
    return wrk.format("GET", "/v1/models/" .. model .. "/manifests/" .. reference)
end

function response(status, headers, body)
    if status ~= 200 then error("status " .. status .. ": " .. body) end
end
