-- The change feed: POST /v1/changes (handle_push) into fox.shared, and the changes
-- source reading pushed changes and the CD fake (tests/fakes/cd/server.js).
local http = require("fox.http")
local json = require("fox.json")
local shared = require("fox.shared")
local task = require("fox.task")
local fakes = require("helpers.fakes")
local changes = require("sources.changes")

local TOKEN = "push-token-123"

local function push(body, opts)
  opts = opts or {}
  local headers = { ["authorization"] = opts.auth or ("Bearer " .. TOKEN),
                    ["content-type"] = opts.ctype or "application/json" }
  local resp = changes.handle_push({ method = opts.method or "POST", path = "/v1/changes", headers = headers,
    body = type(body) == "string" and body or json.encode(body) }, { token = opts.token or TOKEN, now = opts.now })
  return resp.status, json.decode(resp.body), resp.headers
end

describe("POST /v1/changes", function()
  before_each(function()
    shared.flush()
  end)

  it("accepts one change, keeps it 24 h and finds it with recent()", function()
    local now = os.time()
    local status, body = push({ service = "payments-api", kind = "deploy", version = "v2.35.0",
      description = "Deploy v2.35.0", at = os.date("!%Y-%m-%dT%H:%M:%SZ", now - 600), author = "ci",
      url = "https://ci.acme.test/1" })
    assert.equals(202, status)
    assert.equals(1, body.accepted)
    local id = body.ids[1]
    local key = "changes:payments-api:" .. id
    assert.is_string(shared.get(key))
    local ttl = shared.ttl(key)
    assert.is_true(ttl > 86400 - 5 and ttl <= 86400)
    local list = changes.recent("payments-api", now - 3600)
    assert.equals(1, #list)
    local c = list[1]
    assert.equals("deploy", c.kind)
    assert.equals("v2.35.0", c.version)
    assert.equals(now - 600, c.at)
    assert.equals("https://ci.acme.test/1", c.url)
    assert.equals(id, c.id)
    -- matching is case-insensitive on the service, and `since` filters
    assert.equals(1, #changes.recent("Payments-API", now - 3600))
    assert.equals(0, #changes.recent("payments-api", now - 60))
    assert.equals(0, #changes.recent("payments", now - 3600))
  end)

  it("accepts arrays and {changes: [...]}, defaults kind and time, and stores a repeat once", function()
    local now = os.time()
    local status, body = push({ changes = {
      { service = "a", description = "one", at = now - 100 },
      { service = "b", kind = "CONFIG", description = "two", at = (now - 50) * 1000 },
      { service = "a", id = "ext-1", description = "three" },
    } }, { now = now })
    assert.equals(202, status)
    assert.equals(3, body.accepted)
    assert.equals("ext-1", body.ids[3])
    local a = changes.recent("a")
    assert.equals(2, #a)
    assert.equals("ext-1", a[1].id)
    assert.equals(now, a[1].at)
    assert.equals("deploy", a[2].kind)
    assert.equals("config", changes.recent("b")[1].kind)
    assert.equals(now - 50, changes.recent("b")[1].at)
    -- the same delivery again (a CI retry): same ids, nothing added
    status = push({ { service = "a", description = "one", at = now - 100 } }, { now = now })
    assert.equals(202, status)
    assert.equals(2, #changes.recent("a"))
    assert.equals(3, #changes.recent(nil))
  end)

  it("refuses requests without the right token, and is off without one configured", function()
    local status, body, headers = push({ service = "a" }, { auth = "Bearer nope" })
    assert.equals(401, status)
    assert.equals("invalid token", body.error)
    assert.equals('Bearer realm="fox"', headers["WWW-Authenticate"])
    status, body = push({ service = "a" }, { auth = "" })
    assert.equals(401, status)
    assert.matches("missing bearer token", body.error)
    status, body = push({ service = "a" }, { token = "" })
    assert.equals(503, status)
    assert.matches("set FOX_CHANGES_TOKEN", body.error)
    assert.same({}, changes.recent(nil))
  end)

  it("answers 405, 415, 400 and 413 for the wrong method, type, body and size", function()
    assert.equals(405, (push({ service = "a" }, { method = "GET" })))
    local status, body = push({ service = "a" }, { ctype = "text/plain" })
    assert.equals(415, status)
    assert.matches("send JSON", body.error)
    status, body = push('{"service": "a"')
    assert.equals(400, status)
    assert.matches("^body is not JSON", body.error)
    status = push(string.rep(" ", changes.MAX_BODY + 1))
    assert.equals(413, status)
    local many = {}
    for i = 1, changes.MAX_PER_REQUEST + 1 do many[i] = { service = "a", description = tostring(i) } end
    status, body = push(many)
    assert.equals(413, status)
    assert.matches("at most 100 changes", body.error)
  end)

  it("validates every change and stores none when one is wrong", function()
    local now = os.time()
    local cases = {
      { { kind = "deploy" }, "service is required" },
      { { service = "a b" }, "service must be letters" },
      { { service = "a", at = "yesterday" }, "at must be an RFC 3339 time" },
      { { service = "a", at = now - 2 * 86400 }, "at is more than 24 h ago" },
      { { service = "a", at = now + 3600 }, "at is in the future" },
      { { service = "a", url = "javascript:alert(1)" }, "url must be an http%(s%) URL" },
      { { service = "a", kind = "two words" }, "kind must be a single word" },
      { { service = "a", description = string.rep("x", 2001) }, "description must be at most 2000 bytes" },
      { { service = "a", author = { name = "x" } }, "author must be a string" },
      { {}, "expected a change object" },
      { { changes = {} }, "no changes in the body" },
      { { changes = { service = "a" } }, "changes must be an array" },
    }
    for _, case in ipairs(cases) do
      local status, body = push(case[1], { now = now })
      assert.equals(422, status, case[2])
      assert.matches(case[2], body.error)
    end
    local status, body = push({ { service = "ok" }, { service = "ok2", at = "nope" } }, { now = now })
    assert.equals(422, status)
    assert.equals("changes[1].at must be an RFC 3339 time or epoch seconds (got nope)", body.error)
    assert.same({}, changes.recent(nil))
  end)

  it("works mounted on a fox HTTP server", function()
    local srv = assert(http.listen({ port = 0, handler = function(req)
      if req.path == "/v1/changes" then return changes.handle_push(req, { token = TOKEN }) end
      return { status = 404 }
    end }))
    local resp = assert(http.request({ method = "POST", url = "http://127.0.0.1:" .. srv.port .. "/v1/changes",
      headers = { Authorization = "Bearer " .. TOKEN, ["Content-Type"] = "application/json" },
      body = json.encode({ service = "payments-api", kind = "deploy", version = "v9" }) }))
    assert.equals(202, resp.status)
    assert.matches("^application/json", resp.headers["content-type"])
    assert.equals("v9", changes.recent("payments-api")[1].version)
    srv:close()
  end)
end)

describe("changes source", function()
  local cd, now, incident_at

  setup(function()
    now = os.time()
    incident_at = now - 20 * 60
    cd = fakes.start("cd", { args = { "--now", tostring(now), "--incident-at", tostring(incident_at) } })
  end)

  teardown(function()
    if cd then cd:stop() end
  end)

  before_each(function()
    shared.flush()
    cd:reset()
  end)

  local function query(config, extra)
    config = config or {}
    if config.url == nil then config.url = cd.url .. "/changes" end
    local ctx = { services = { "payments-api", "checkout-service" },
                  window = { incident_start = incident_at, to = now },
                  config = config, timeout = 5 }
    for k, v in pairs(extra or {}) do ctx[k] = v end
    return changes.query(ctx)
  end

  it("reads the CD feed for the services in the 4 h before the incident", function()
    local r, err = query()
    assert.is_nil(err)
    assert.equals("changes", r.source)
    assert.equals(2, #r.items) -- the deploy and the feature flag; the older deploy and user-auth are out
    local d = r.items[1]
    assert.equals("deploy", d.kind)
    assert.equals("feed", d.source)
    assert.equals("payments-api", d.service)
    assert.equals("v2.35.0", d.version)
    assert.equals(incident_at - 20 * 60, d.at)
    assert.equals(20 * 60, d.before_start)
    assert.same({ "config", "dependency" }, d.flags)
    local f = r.items[2]
    assert.equals("feature_flag", f.kind)
    assert.same({ "config" }, f.flags)
    local q = cd:requests({ path = "/changes" })[1].query
    assert.same({ "payments-api", "checkout-service" }, q.service)
    assert.equals(os.date("!%Y-%m-%dT%H:%M:%SZ", incident_at - 4 * 3600), q.since)
    assert.matches("^2 changes in the 4 h before the incident; latest: deploy Deploy payments%-api v2%.35%.0",
      r.summary)
  end)

  it("filters by itself when the feed ignores the parameters, and reads {changes: [...]}", function()
    cd:control("POST", "/_fake/config", { filter = false, shape = "wrapped" })
    local r = assert(query())
    assert.equals(2, #r.items)
  end)

  it("merges pushed changes and drops the feed's copy of the same deploy", function()
    push({ service = "payments-api", kind = "deploy", version = "v2.35.0", at = incident_at - 20 * 60 + 30 })
    push({ service = "payments-api", kind = "migration", description = "ALTER TABLE charges ADD COLUMN idem_key",
           at = incident_at - 600 })
    push({ service = "search", kind = "deploy", at = incident_at - 60 })
    local r = assert(query())
    assert.equals(3, #r.items)
    assert.equals("migration", r.items[1].kind)
    assert.equals("push", r.items[1].source)
    assert.same({ "migration" }, r.items[1].flags)
    assert.equals("push", r.items[2].source) -- pushed first, so the feed's copy is the duplicate
    assert.equals("deploy", r.items[2].kind)
  end)

  it("skips malformed feed entries with a warning", function()
    cd:control("PUT", "/_fake/changes", { { service = "payments-api", at = incident_at - 60, kind = "deploy" },
      { at = incident_at - 60 }, "junk", { service = "payments-api", at = "not a time" } })
    cd:control("POST", "/_fake/config", { filter = false })
    local r = assert(query())
    assert.equals(1, #r.items)
    assert.equals("changes: skipped 3 malformed entries of the change feed", r.warnings[1])
  end)

  it("works with pushed changes only (no feed configured)", function()
    push({ service = "checkout-service", kind = "config", description = "timeout 5s -> 2s", at = incident_at - 120 })
    local r = assert(query({ url = false }))
    assert.equals(1, #r.items)
    assert.equals(0, #cd:requests({ path = "/changes" }))
    r = assert(query({ url = false, pushed = false }))
    assert.same({}, r.items)
    assert.equals("no deploys or other changes recorded in the 4 h before the incident", r.summary)
  end)

  it("fails when the feed fails and nothing was pushed; warns when something was", function()
    cd:faults({ { path = "/changes", status = 500 } })
    local r, err = query()
    assert.is_nil(r)
    assert.matches("^changes: HTTP 500 from http://127%.0%.0%.1:%d+/changes", err)
    push({ service = "payments-api", kind = "deploy", at = incident_at - 60 })
    r = assert(query())
    assert.equals(1, #r.items)
    assert.matches("HTTP 500", r.warnings[1])

    cd:faults({ { path = "/changes", body = '{"nope": 1}', times = 1 } })
    shared.flush()
    r, err = query()
    assert.is_nil(r)
    assert.matches("answered neither an array nor", err)

    cd:faults({ { path = "/changes", malformed_json = true, times = 1 } })
    r, err = query()
    assert.is_nil(r)
    assert.matches("malformed JSON", err)

    cd:faults({ { path = "/changes", delay_ms = 1500, times = 1 } })
    local t0 = task.now()
    r, err = query(nil, { timeout = 0.3 })
    assert.is_nil(r)
    assert.matches("timed out", err)
    assert.is_true(task.now() - t0 < 1)
  end)
end)

describe("changes source with a feed token", function()
  local cd

  setup(function()
    cd = fakes.start("cd", { args = { "--token", "feed-secret" } })
  end)

  teardown(function()
    if cd then cd:stop() end
  end)

  it("sends the token, and names it when refused", function()
    local ctx = { services = { "payments-api" }, window = { incident_start = os.time() - 1200 }, timeout = 5 }
    ctx.config = { url = cd.url .. "/changes", token = "feed-secret", pushed = false }
    local r, err = changes.query(ctx)
    assert.is_nil(err)
    assert.equals(1, #r.items)
    ctx.config.token = "wrong"
    r, err = changes.query(ctx)
    assert.is_nil(r)
    assert.matches("^changes: HTTP 401 from the change feed http://127%.0%.0%.1:%d+/changes: check the feed token", err)
  end)
end)
