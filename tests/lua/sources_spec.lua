-- sources (scripts/sources/init.lua): running sources under the contract, all at once,
-- and the demo story end to end over every fake and a real Prometheus.
local task = require("fox.task")
local json = require("fox.json")
local incidentio = require("fox.incidentio")
local shared = require("fox.shared")
local fakes = require("helpers.fakes")
local prom = require("helpers.prometheus")
local sources = require("sources")
local suspects = require("sources.suspects")

describe("sources.run", function()
  it("returns a source's result with its elapsed time", function()
    local res = sources.run({ name = "fine", query = function(ctx)
      return { ok = true, source = "fine", items = { ctx.services[1] }, summary = "ok" }
    end }, { services = { "a" }, timeout = 1 })
    assert.is_true(res.ok)
    assert.same({ "a" }, res.items)
    assert.is_number(res.elapsed)
  end)

  it("turns nil, err, a raised error and a bad return into ok = false", function()
    local res = sources.run({ name = "s", query = function() return nil, "s: down" end }, {})
    assert.same({ ok = false, source = "s", error = "s: down", items = {}, elapsed = res.elapsed }, res)
    res = sources.run({ name = "boom", query = function() error("kaboom") end }, {})
    assert.is_false(res.ok)
    assert.matches("^boom: failed: .*kaboom", res.error)
    res = sources.run({ name = "odd", query = function() return "text" end }, {})
    assert.equals("odd: returned nothing", res.error)
    res = sources.run("no_such_source", {})
    assert.matches("cannot load sources%.no_such_source", res.error)
  end)

  it("query_all runs one task per source, and ends them when its caller ends", function()
    local running = 0
    local mod = { name = "slow", query = function()
      running = running + 1
      task.sleep(5)
      running = running - 1
    end }
    local before = task.live()
    local caller = task.spawn({ timeout = 0.2 }, function()
      return sources.query_all({ { name = "a", module = mod }, { name = "b", module = mod } }, { timeout = 10 })
    end)
    task.sleep(0.1)
    assert.equals(2, running)
    assert.equals(before + 3, task.live()) -- the caller and one task per source
    local ok = task.wait(caller)
    assert.is_false(ok)
    assert.equals(before, task.live())
  end)

  it("cancels a source that overruns its timeout", function()
    local t0 = task.now()
    local res = sources.run({ name = "slow", query = function() task.sleep(5) end }, { timeout = 0.2 })
    assert.is_false(res.ok)
    assert.equals("slow: no answer within 0.2 s", res.error)
    assert.is_true(task.now() - t0 < 0.2 + sources.GRACE + 0.3)
  end)
end)

describe("sources.query_all", function()
  it("runs every source at once: the wall time is the slowest, not the sum", function()
    local function sleeper(name, s)
      return { name = name, module = { name = name, query = function()
        task.sleep(s)
        return { ok = true, source = name, items = {}, summary = name }
      end } }
    end
    local t0 = task.now()
    local results = sources.query_all({ sleeper("a", 0.3), sleeper("b", 0.3), sleeper("c", 0.3),
      { name = "bad", module = { name = "bad", query = function() return nil, "bad: nope" end } } }, { timeout = 2 })
    local took = task.now() - t0
    assert.is_true(took < 0.5, "took " .. took)
    local names = {}
    for i, r in ipairs(results) do names[i] = r.source end
    assert.same({ "a", "b", "c", "bad" }, names)
    assert.is_false(results[4].ok)
    assert.is_true(results[1].ok)
  end)
end)

describe("sources.query_all and the raw incident", function()
  it("hands ctx.raw only to the sources that read it (uses_raw_incident)", function()
    local seen = {}
    local function probe(name, reads)
      return { name = name, module = { name = name, uses_raw_incident = reads, query = function(ctx)
        seen[name] = { raw = ctx.raw or false, incident = ctx.incident }
        return { ok = true, items = {}, summary = name }
      end } }
    end
    local raw, incident = { id = "01RAW", custom_field_entries = {} }, { id = "01RAW" }
    local results = sources.query_all({ probe("reader", true), probe("other") },
      { incident = incident, raw = raw, timeout = 2 })
    assert.is_true(results[1].ok and results[2].ok)
    assert.equals(raw, seen.reader.raw)
    assert.is_false(seen.other.raw)
    assert.equals(incident, seen.other.incident)
    assert.equals(incident, seen.reader.incident)
  end)
end)

describe("sources.request_json", function()
  it("decodes a large answer whose decoding may wait a loop turn (defer_decode) like any other", function()
    local http = require("fox.http")
    local rows = {}
    for i = 1, 4000 do rows[i] = { id = i, line = "error line " .. i } end
    local big = json.encode({ hits = rows })
    assert.is_true(#big >= sources.DEFER_DECODE_BYTES)
    local srv = assert(http.listen({ host = "127.0.0.1", port = 0, handler = function(req)
      local body = req.path == "/broken" and big:sub(1, -2) or big
      return { status = 200, headers = { ["Content-Type"] = "application/json" }, body = body }
    end }))
    local base = "http://127.0.0.1:" .. srv.port
    local deadline = sources.deadline({ timeout = 5 })
    local plain = assert(sources.request_json("t", { url = base .. "/ok" }, deadline))
    local deferred = assert(sources.request_json("t", { url = base .. "/ok", defer_decode = true }, deadline))
    assert.same(plain, deferred)
    assert.equals(4000, #deferred.hits)
    local bad, err = sources.request_json("t", { url = base .. "/broken", defer_decode = true }, deadline)
    srv:close()
    assert.is_nil(bad)
    assert.matches("^t: malformed JSON from " .. base:gsub("%p", "%%%0") .. "/broken", err)
  end)
end)

describe("the demo story over every source", function()
  local fs = {}
  local now, incident_at, inc2

  setup(function()
    now = os.time()
    incident_at = now - 20 * 60
    local at = { "--now", tostring(now), "--incident-at", tostring(incident_at) }
    local _, errors = task.gather({
      function() fs.gh = fakes.start("github", { args = at }) return true end,
      function() fs.loki = fakes.start("loki", { args = at }) return true end,
      function() fs.es = fakes.start("elasticsearch", { args = at }) return true end,
      function() fs.cd = fakes.start("cd", { args = at }) return true end,
      function() fs.iio = fakes.start("incidentio", { args = { "--seed", "demo" } }) return true end,
      function() fs.prom = prom.start({ scenario = "demo", now = now, incident_at = incident_at }) return true end,
    })
    for _, e in pairs(errors) do error("could not start a fake: " .. tostring(e)) end
    shared.flush()
  end)

  teardown(function()
    for _, f in pairs(fs) do f:stop() end
  end)

  it("finds the deploy, the error spike, the top log signature and the similar incident at once", function()
    local client = incidentio.new({ base_url = fs.iio.url, api_key = "test-viewer-key" })
    inc2 = assert(client:get_incident("INC-2"))
    local ctx = {
      incident = { id = inc2.id, reference = inc2.reference, services = { "payments-api" } },
      services = { "payments-api" },
      window = { from = incident_at - 3600, to = now, incident_start = incident_at },
      timeout = 5,
    }
    local list = {
      { name = "prometheus", config = { url = fs.prom.url } },
      { name = "loki", config = { url = fs.loki.url } },
      { name = "elasticsearch", config = { url = fs.es.url } },
      { name = "github", config = { api_url = fs.gh.url, token = "ghp_fox_test_token",
                                    repos = { ["payments-api"] = "acme/payments-api" } } },
      { name = "changes", config = { url = fs.cd.url .. "/changes" } },
      { name = "similar", config = { client = client } },
    }
    local t0 = task.now()
    local results = sources.query_all(list, ctx)
    local wall = task.now() - t0
    local slowest, sum = 0, 0
    for i, r in ipairs(results) do
      assert.is_true(r.ok, list[i].name .. ": " .. tostring(r.error))
      slowest = math.max(slowest, r.elapsed)
      sum = sum + r.elapsed
      assert.is_string(json.encode(r)) -- plain data
    end
    assert.is_true(wall < slowest + 0.1, string.format("wall %.3f s, slowest %.3f s", wall, slowest))
    io.stderr:write(string.format("\n  demo: %d sources in %.3f s (slowest %.3f s, sum %.3f s)\n", #results, wall,
      slowest, sum))

    local by = {}
    for _, r in ipairs(results) do by[r.source] = r end
    assert.matches("^payments%-api error_rate rose %d+%.%dx", by.prometheus.summary)
    assert.equals("charge failed: PaymentGatewayTimeout: upstream 504 from <host> (POST /v<n>/authorisations, <n>ms)",
      by.loki.items[1].signature)
    assert.equals(by.loki.items[1].signature, by.elasticsearch.items[1].signature)
    assert.equals("INC-1", by.similar.items[1].reference)
    assert.matches("^Rolled back payments%-api", by.similar.items[1].resolution.text)

    local ranked = suspects.from_results(results, { services = { "payments-api" } })
    local top = ranked[1]
    assert.equals("deployment", top.kind)
    assert.equals("v2.35.0", top.version)
    assert.is_true(top.confidence >= 0.8)
    assert.matches("^deployed payments%-api v2%.35%.0 %d+ min before the incident; error rate rose 10x %d+ min after; "
      .. 'PR #412 "Bump payment gateway client to 3%.2; shorten upstream timeout"', top.reason)
    assert.same({ "github", "feed" }, top.sources)
    assert.is_true(ranked[2].confidence < top.confidence - 0.3)
  end)
end)
