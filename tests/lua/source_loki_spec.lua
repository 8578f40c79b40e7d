-- The loki source against the fake Loki (tests/fakes/loki/server.js).
local http = require("fox.http")
local task = require("fox.task")
local fakes = require("helpers.fakes")
local src = require("sources.loki")

describe("loki source", function()
  local loki, now, incident_at

  setup(function()
    now = os.time()
    incident_at = now - 20 * 60
    loki = fakes.start("loki", { args = { "--now", tostring(now), "--incident-at", tostring(incident_at) } })
  end)

  teardown(function()
    if loki then loki:stop() end
  end)

  before_each(function()
    loki:reset()
  end)

  local function query(config, extra)
    config = config or {}
    config.url = config.url or loki.url
    local ctx = { services = { "payments-api" }, window = { incident_start = incident_at, to = now },
                  config = config, timeout = 5 }
    for k, v in pairs(extra or {}) do ctx[k] = v end
    return src.query(ctx)
  end

  it("groups the demo's error lines into signatures with counts and first-seen times", function()
    local r, err = query()
    assert.is_nil(err)
    assert.equals("loki", r.source)
    local top = r.items[1]
    assert.equals("charge failed: PaymentGatewayTimeout: upstream 504 from <host> (POST /v<n>/authorisations, <n>ms)",
      top.signature)
    -- a line every 2 s from 3 min after the deploy (incident - 20 min) until now
    local expected = (now - (incident_at - 17 * 60)) // 2
    assert.is_true(math.abs(top.count - expected) <= 2, top.count .. " vs " .. expected)
    assert.is_true(math.abs(top.first_seen - (incident_at - 17 * 60)) < 2)
    assert.is_true(math.abs(top.from_start + 17 * 60) < 2)
    assert.is_true(top.last_seen > now - 5)
    assert.matches("^charge failed: PaymentGatewayTimeout: upstream 504 from gateway%.internal", top.example)
    assert.same({ "payments-api" }, top.services)
    -- the unrelated Redis timeouts are their own, much smaller signature
    assert.equals(2, #r.items)
    assert.matches("^session cache read failed: RedisTimeout: read tcp <host>%-><host>: i/o timeout$",
      r.items[2].signature)
    assert.is_false(r.truncated)
    assert.matches("error lines from payments%-api in 2 signatures; top: charge failed", r.summary)
    assert.matches("first seen 17 min before the incident start", r.summary)
  end)

  it("sends the LogQL template and the window, and pages forward through the results", function()
    local r = assert(query({ limit = 400 }))
    assert.equals(r.total, r.items[1].count + r.items[2].count)
    local reqs = loki:requests({ path = "/loki/api/v1/query_range" })
    assert.is_true(#reqs >= 3, "paged " .. #reqs .. " times")
    local q = reqs[1].query
    assert.equals('{service="payments-api"} |~ "(?i)(error|exception|fatal|panic)"', q.query)
    assert.equals("forward", q.direction)
    assert.equals("400", q.limit)
    assert.equals(tostring((incident_at - 3600) * 1000000000), q.start)
    -- each page starts just after the last line of the one before
    assert.is_true(tonumber(reqs[2].query.start) > tonumber(q.start))
  end)

  it("stops at max_lines and says the result is truncated", function()
    local r = assert(query({ limit = 100, max_lines = 250 }))
    assert.equals(250, r.total)
    assert.is_true(r.truncated)
    assert.matches("^250%+ error lines", r.summary)
  end)

  it("queries several services at once with per-service templates", function()
    local per = { ["checkout-service"] = { query = '{service="{{service}}", level="error"}' } }
    local r = assert(query({ services = per },
      { services = { "payments-api", "checkout-service" } }))
    local by = {}
    for _, it in ipairs(r.items) do by[it.signature] = it end
    local co = by["HTTP 502 from payments-api on POST /v<n>/payments/authorise (order <id>)"]
    assert.is_table(co)
    assert.same({ "checkout-service" }, co.services)
    local reqs = loki:requests({ path = "/loki/api/v1/query_range" })
    local seen = {}
    for _, rq in ipairs(reqs) do seen[rq.query.query] = true end
    assert.is_true(seen['{service="checkout-service", level="error"}'])
  end)

  it("reports no error lines as an empty result, not a failure", function()
    loki:control("DELETE", "/_fake/streams")
    local r = assert(query())
    assert.same({}, r.items)
    assert.equals(0, r.total)
    assert.equals("no error lines for payments-api in the window", r.summary)
  end)

  it("passes Loki's parse error on", function()
    local r, err = query({ query = '{service="{{service}}" |= "x"' })
    assert.is_nil(r)
    assert.matches('^loki: HTTP 400 from http://127%.0%.0%.1:%d+/loki/api/v1/query_range: '
      .. 'parse error at line 1, col %d+', err)
  end)

  it("refuses a metric query", function()
    local r, err = query({ query = 'sum(count_over_time({service="{{service}}"}[5m]))' })
    assert.is_nil(r)
    assert.matches("returns matrix, not log lines", err)
  end)

  it("fails on 500s, malformed JSON and timeouts with a message naming the endpoint", function()
    loki:faults({ { path = "/loki/api/v1/query_range", status = 500, times = 1 } })
    local r, err = query()
    assert.is_nil(r)
    assert.matches("^loki: HTTP 500 from http://127%.0%.0%.1:%d+/loki/api/v1/query_range: rpc error", err)

    loki:faults({ { path = "/loki/api/v1/query_range", malformed_json = true, times = 1 } })
    r, err = query()
    assert.is_nil(r)
    assert.matches("^loki: malformed JSON from http://127%.0%.0%.1:%d+/loki/api/v1/query_range", err)

    loki:faults({ { path = "/loki/api/v1/query_range", delay_ms = 1500, times = 1 } })
    local t0 = task.now()
    r, err = src.query({ services = { "payments-api" }, window = { incident_start = incident_at, to = now },
                         config = { url = loki.url }, timeout = 0.3 })
    assert.is_nil(r)
    assert.matches("timed out", err)
    assert.is_true(task.now() - t0 < 1)
  end)

  it("groups lines read page by page (grouped while the next page is read) as one page would", function()
    local both = { services = { "payments-api", "checkout-service" } }
    local one = assert(query({ limit = 5000 }, both))
    local paged = assert(query({ limit = 60 }, both))
    assert.is_true(#loki:requests({ path = "/loki/api/v1/query_range" }) > 4)
    assert.is_true(one.total > 120)
    assert.equals(one.total, paged.total)
    assert.same(one.items, paged.items)
    assert.equals(one.summary, paged.summary)
  end)

  it("leaves out every line of a service whose later page failed", function()
    local both = { services = { "payments-api", "checkout-service" } }
    -- the third request is a second page (both services have more than 60 lines)
    loki:faults({ { path = "/loki/api/v1/query_range", skip = 2, times = 1, status = 500 } })
    local r = assert(query({ limit = 60 }, both))
    assert.equals(1, #r.warnings)
    local failed = r.warnings[1]:match("^loki: HTTP 500") and loki:requests({ status = 500 })[1].query.query
    assert.is_string(failed)
    local kept = failed:find("payments-api", 1, true) and "checkout-service" or "payments-api"
    loki:clear_faults()
    local alone = assert(query({ limit = 60 }, { services = { kept } }))
    assert.equals(alone.total, r.total)
    assert.same(alone.items, r.items)
  end)

  it("reports one failing service as a warning when another answered", function()
    loki:faults({ { path = "/loki/api/v1/query_range", status = 429, times = 1 } })
    local r = assert(query({ max_lines = 50, limit = 50 }, { services = { "payments-api", "checkout-service" } }))
    assert.equals(1, #r.warnings)
    assert.matches("rate limited", r.warnings[1])
    assert.is_true(#r.items > 0)
  end)
end)

describe("loki source with authentication", function()
  local loki

  setup(function()
    loki = fakes.start("loki", { args = { "--token", "s3cret", "--tenant", "acme" } })
  end)

  teardown(function()
    if loki then loki:stop() end
  end)

  local function query(config)
    config.url = loki.url
    return src.query({ services = { "payments-api" }, window = { incident_start = os.time() - 1200 },
                       config = config, timeout = 5 })
  end

  it("sends the bearer token and the tenant", function()
    local r, err = query({ token = "s3cret", tenant = "acme" })
    assert.is_nil(err)
    assert.is_true(#r.items > 0)
    local req = loki:requests({ path = "/loki/api/v1/query_range" })[1]
    assert.equals("acme", req.headers["x-scope-orgid"])
  end)

  it("says what to check when credentials are refused", function()
    local r, err = query({ token = "wrong", tenant = "acme" })
    assert.is_nil(r)
    assert.matches("^loki: HTTP 401 from .*%(check LOKI_TOKEN / LOKI_USERNAME and the tenant%): "
      .. "authentication required", err)
    r, err = query({ token = "s3cret" })
    assert.is_nil(r)
    assert.matches("no org id", err)
  end)

  it("is not fooled by a server that is not Loki", function()
    local srv = assert(http.listen({ port = 0, handler = function()
      return { status = 200, headers = { ["Content-Type"] = "application/json" }, body = '{"hello":"world"}' }
    end }))
    local r, err = src.query({ services = { "payments-api" }, window = { incident_start = os.time() - 60 },
                               config = { url = "http://127.0.0.1:" .. srv.port }, timeout = 2 })
    assert.is_nil(r)
    assert.matches("unexpected answer", err)
    srv:close()
  end)
end)
