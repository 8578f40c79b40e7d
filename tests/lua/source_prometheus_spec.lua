-- The prometheus source against a REAL Prometheus (Debian's `prometheus` package), loaded
-- with `promtool tsdb create-blocks-from openmetrics` and started by the spec
-- (tests/lua/helpers/prometheus.lua), plus the change detection on its own.
local http = require("fox.http")
local task = require("fox.task")
local prom = require("helpers.prometheus")
local src = require("sources.prometheus")
local sources = require("sources")

-- A fox HTTP server answering every request with fn(req).
local function serve(fn)
  local srv = assert(http.listen({ port = 0, handler = fn }))
  return srv, "http://127.0.0.1:" .. srv.port
end

describe("prometheus source (real Prometheus)", function()
  local server, now, change_at

  setup(function()
    local ok, why = prom.available()
    assert(ok, why)
    now = os.time()
    change_at = now - 17 * 60
    server = prom.start({ scenario = "spike", now = now, change_at = change_at })
  end)

  teardown(function()
    if server then server:stop() end
  end)

  local function query(extra)
    local ctx = {
      services = { "payments-api", "checkout-service", "idle-service" },
      window = { incident_start = change_at + 180, to = now },
      config = { url = server.url },
      timeout = 5,
    }
    for k, v in pairs(extra or {}) do ctx[k] = v end
    return src.query(ctx)
  end

  local function find(items, service, name)
    for _, it in ipairs(items) do
      if it.service == service and it.name == name then return it end
    end
    return nil
  end

  it("flags the error rate that jumped 10x, with when, before, after and the ratio", function()
    local t0 = task.now()
    local r, err = query()
    assert.is_nil(err)
    assert.is_true(task.now() - t0 < 2)
    assert.is_true(r.ok)
    assert.equals("prometheus", r.source)
    local er = find(r.items, "payments-api", "error_rate")
    assert.equals("changed", er.status)
    assert.equals("step", er.change.type)
    assert.equals("up", er.change.direction)
    assert.is_true(er.change.ratio > 9 and er.change.ratio < 11, "ratio " .. tostring(er.change.ratio))
    assert.is_true(math.abs(er.change.before - 0.005) < 0.0005)
    assert.is_true(math.abs(er.change.after - 0.05) < 0.005)
    -- rate()[5m] ramps: the onset is found within a minute and a half of the real jump
    assert.is_true(er.change.at >= change_at - 30 and er.change.at <= change_at + 90,
      "changed at " .. er.change.at .. ", expected about " .. change_at)
    assert.is_true(er.change.from_start < 0, "the change came before the incident start")
    assert.equals(sources.iso(er.change.at), er.change.at_iso)
    -- latency moved with it; changed series come first, the biggest change first
    local lat = find(r.items, "payments-api", "latency_p99")
    assert.equals("changed", lat.status)
    assert.equals(2, r.changed)
    assert.equals("changed", r.items[1].status)
    assert.equals("changed", r.items[2].status)
    assert.matches("^payments%-api error_rate rose 10%.0x %(step%)", r.summary)
    assert.matches("before the incident", r.summary)
  end)

  it("leaves flat series steady and reports NaN-only series as no data", function()
    local r = assert(query())
    for _, name in ipairs({ "error_rate", "latency_p99", "saturation" }) do
      assert.equals("steady", find(r.items, "checkout-service", name).status, name)
    end
    assert.equals("steady", find(r.items, "payments-api", "saturation").status)
    -- idle-service has no traffic: 0/0 and histogram_quantile over zero rates are NaN
    local idle = find(r.items, "idle-service", "error_rate")
    assert.equals("no_data", idle.status)
    assert.equals(0, idle.points)
    assert.equals("no_data", find(r.items, "idle-service", "latency_p99").status)
    assert.equals(9, #r.items)
  end)

  it("uses the team's templates, per-service variables and extra queries", function()
    local r = assert(query({
      services = { "payments-api" },
      config = {
        url = server.url,
        queries = { timeouts = 'sum(rate(http_requests_total{service="{{service}}",code="{{code}}"}[5m]))' },
        services = { ["payments-api"] = { vars = { code = "504" },
          extra_queries = { { name = "ok",
            query = 'sum(rate(http_requests_total{service="{{service}}",code="200"}[5m]))' } } } },
      },
    }))
    local t = find(r.items, "payments-api", "timeouts")
    assert.equals('sum(rate(http_requests_total{service="payments-api",code="504"}[5m]))', t.query)
    assert.equals("changed", t.status)
    assert.is_true(math.abs(t.change.after - 5) < 0.5)
    assert.equals("steady", find(r.items, "payments-api", "ok").status) -- 99.5 -> 95 req/s
  end)

  it("reports an empty result as no data, not as an error", function()
    local r = assert(query({ services = { "payments-api" },
      config = { url = server.url, queries = { missing = 'rate(no_such_metric{service="{{service}}"}[5m])' } } }))
    assert.equals(1, #r.items)
    assert.equals("no_data", r.items[1].status)
    assert.matches("no metric changed", r.summary)
  end)

  it("keeps the good queries and reports Prometheus' error for a bad one", function()
    local r, err = query({ services = { "payments-api" }, config = { url = server.url, queries = {
      { name = "good", query = 'sum(rate(http_requests_total{service="{{service}}"}[5m]))' },
      { name = "broken", query = 'sum(rate(http_requests_total{service="{{service}}"}[5m]' },
    } } })
    assert.is_nil(err)
    assert.equals(1, #r.items)
    assert.equals("good", r.items[1].name)
    assert.equals(1, #r.warnings)
    assert.matches("payments%-api broken: bad_data: .*parse error", r.warnings[1])
  end)

  it("fails with Prometheus' message when every query fails", function()
    local r, err = query({ services = { "payments-api" },
      config = { url = server.url, queries = { broken = "sum(" } } })
    assert.is_nil(r)
    assert.matches("^prometheus: payments%-api broken: bad_data:", err)
  end)

  it("refuses a template whose placeholder has no value", function()
    local r, err = query({ services = { "payments-api" },
      config = { url = server.url, queries = { q = 'up{job="{{job}}"}' } } })
    assert.is_nil(r)
    assert.matches("template uses {{job}} which has no value", err, 1, true)
  end)
end)

describe("prometheus source failures", function()
  local ctx = function(url, timeout)
    return { services = { "payments-api" }, window = { incident_start = os.time() - 600 },
             config = { url = url }, timeout = timeout or 2 }
  end

  it("says when Prometheus cannot be reached", function()
    local srv = assert(http.listen({ port = 0, handler = function() return { status = 200 } end }))
    local port = srv.port
    srv:close()
    task.sleep(0.02)
    local r, err = src.query(ctx("http://127.0.0.1:" .. port))
    assert.is_nil(r)
    assert.matches("^prometheus: POST http://127%.0%.0%.1:%d+/api/v1/query_range: connection refused", err)
    assert.matches("and 2 more queries failed", err)
  end)

  it("gives up on a Prometheus that does not answer within the timeout", function()
    local srv, base = serve(function()
      task.sleep(0.8)
      return { status = 200, body = "{}" }
    end)
    local t0 = task.now()
    local r, err = src.query(ctx(base, 0.3))
    assert.is_nil(r)
    assert.matches("timed out", err)
    assert.is_true(task.now() - t0 < 1.5)
    srv:close()
  end)

  it("reports a 502 page from a proxy and a truncated body as failures", function()
    local srv, base = serve(function(req)
      if req.body:find("first", 1, true) then
        return { status = 502, headers = { ["Content-Type"] = "text/html" }, body = "<html>Bad Gateway</html>" }
      end
      return { status = 200, headers = { ["Content-Type"] = "application/json" },
               body = '{"status":"success","data":{"res' }
    end)
    local c = ctx(base)
    c.config.queries = { first = "first", second = "second" }
    local r, err = src.query(c)
    assert.is_nil(r)
    assert.matches("HTTP 502 from http://127%.0%.0%.1:%d+/api/v1/query_range: <html>Bad Gateway</html>", err)
    c.config.queries = { second = "second" }
    r, err = src.query(c)
    assert.is_nil(r)
    assert.matches("^prometheus: malformed JSON from http://127%.0%.0%.1:%d+/api/v1/query_range", err)
    srv:close()
  end)

  it("tolerates NaN, +Inf and missing values in a matrix", function()
    local srv, base = serve(function()
      local values = {}
      for i = 1, 40 do
        local v = i <= 20 and "1" or "10"
        if i == 5 then v = "NaN" elseif i == 25 then v = "+Inf" elseif i == 30 then v = "-Inf" end
        values[#values + 1] = string.format('[%d,"%s"]', 1000 + i * 15, v)
      end
      values[#values + 1] = "[2000]"
      return { status = 200, body = '{"status":"success","data":{"resultType":"matrix",'
        .. '"result":[{"metric":{"pod":"a"},"values":['
        .. table.concat(values, ",") .. ']}]},"warnings":["rate over a short range"]}' }
    end)
    local c = ctx(base)
    c.config.queries = { q = "q" }
    c.window = { incident_start = 1000 + 20 * 15, to = 1600, from = 1000 }
    local r = assert(src.query(c))
    assert.equals(37, r.items[1].points)
    assert.equals("changed", r.items[1].status)
    assert.equals(10, r.items[1].change.ratio)
    assert.equals("pod=a", r.items[1].series)
    assert.same({ "payments-api q: rate over a short range" }, r.warnings)
    srv:close()
  end)

  it("is reported, not raised, by sources.run", function()
    local res = sources.run("prometheus", { services = {}, timeout = 1 })
    assert.is_false(res.ok)
    assert.equals("prometheus", res.source)
    assert.matches("no services to query", res.error)
  end)
end)

describe("prometheus.detect", function()
  local function series(values, step)
    local pts = {}
    for i, v in ipairs(values) do pts[i] = { 1000 + (i - 1) * (step or 60), v } end
    return pts
  end
  local function rep(v, n, noise)
    local out = {}
    for i = 1, n do out[i] = v + (noise and ((i % 3) - 1) * noise or 0) end
    return out
  end
  local function concat(a, b, c)
    local out = {}
    for _, t in ipairs({ a, b, c or {} }) do
      for _, v in ipairs(t) do out[#out + 1] = v end
    end
    return out
  end

  it("finds a step up, its onset and its ratio", function()
    local c = src.detect(series(concat(rep(1, 30, 0.05), rep(12, 20, 0.3))))
    assert.equals("step", c.type)
    assert.equals("up", c.direction)
    assert.equals(1000 + 30 * 60, c.at)
    assert.is_true(c.ratio > 11 and c.ratio < 13)
  end)

  it("finds a drop (traffic falling to a third)", function()
    local c = src.detect(series(concat(rep(300, 25, 5), rep(100, 25, 5))))
    assert.equals("down", c.direction)
    assert.is_true(c.ratio > 2.9 and c.ratio < 3.1)
  end)

  it("finds a spike that came and went", function()
    local c = src.detect(series(concat(rep(2, 30, 0.1), rep(20, 3), rep(2, 30, 0.1))))
    assert.equals("spike", c.type)
    assert.equals(1000 + 30 * 60, c.at)
    assert.equals(20, c.after)
  end)

  it("reports a rise from zero without a ratio", function()
    local c = src.detect(series(concat(rep(0, 20), rep(5, 20))))
    assert.equals("up", c.direction)
    assert.is_nil(c.ratio)
    assert.equals(0, c.before)
    assert.equals(5, c.after)
  end)

  it("leaves noise, small changes and short series alone", function()
    assert.is_nil(src.detect(series(rep(5, 60, 0.5))))
    assert.is_nil(src.detect(series(concat(rep(5, 30, 0.2), rep(7, 30, 0.2)))))       -- 1.4x
    assert.is_nil(src.detect(series(concat(rep(5, 3), rep(50, 2)))))                  -- too short
    assert.is_nil(src.detect(series(concat(rep(0.001, 30), rep(0.003, 30))), { min_delta = 0.01 }))
    assert.is_nil(src.detect({}))
  end)
end)
