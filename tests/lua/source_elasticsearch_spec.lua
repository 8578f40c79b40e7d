-- The elasticsearch source against the fake Elasticsearch/OpenSearch
-- (tests/fakes/elasticsearch/server.js).
local json = require("fox.json")
local task = require("fox.task")
local fakes = require("helpers.fakes")
local src = require("sources.elasticsearch")

describe("elasticsearch source", function()
  local es, now, incident_at

  setup(function()
    now = os.time()
    incident_at = now - 20 * 60
    es = fakes.start("elasticsearch", { args = { "--now", tostring(now), "--incident-at", tostring(incident_at) } })
  end)

  teardown(function()
    if es then es:stop() end
  end)

  before_each(function()
    es:reset()
  end)

  local function query(config, extra)
    config = config or {}
    config.url = config.url or es.url
    local ctx = { services = { "payments-api" }, window = { incident_start = incident_at, to = now },
                  config = config, timeout = 5 }
    for k, v in pairs(extra or {}) do ctx[k] = v end
    return src.query(ctx)
  end

  it("groups the demo's error documents into signatures", function()
    local r, err = query()
    assert.is_nil(err)
    assert.equals("elasticsearch", r.source)
    local top = r.items[1]
    assert.equals("charge failed: PaymentGatewayTimeout: upstream 504 from <host> (POST /v<n>/authorisations, <n>ms)",
      top.signature)
    assert.is_true(math.abs(top.first_seen - (incident_at - 17 * 60)) < 2)
    assert.equals(r.total, r.total_matching)
    assert.equals(2, r.distinct)
    assert.is_false(r.truncated)
    -- info lines of the same service are not errors
    for _, it in ipairs(r.items) do assert.not_matches("200 in", it.signature) end
  end)

  it("sends a bool query on service, level and time range, oldest first", function()
    assert(query({ index = "logs-*" }))
    local req = es:requests({ method = "POST" })[1]
    assert.matches("^/logs%-%*/_search$", req.path)
    local body = req.body
    assert.equals(2000, body.size)
    assert.is_true(body.track_total_hits)
    assert.same({ { ["@timestamp"] = { order = "asc" } } }, body.sort)
    local filter = body.query.bool.filter
    assert.same({ term = { ["service.name"] = "payments-api" } }, filter[1])
    assert.same({ "error", "ERROR", "Error", "fatal", "FATAL", "critical", "CRITICAL" }, filter[2].terms["log.level"])
    local range = filter[3].range["@timestamp"]
    assert.equals(os.date("!%Y-%m-%dT%H:%M:%SZ", incident_at - 3600), range.gte)
    assert.equals(os.date("!%Y-%m-%dT%H:%M:%SZ", now), range.lte)
    assert.equals("application/json", req.headers["content-type"])
  end)

  it("uses configured field names, service values and extra filters", function()
    es:control("POST", "/_fake/docs", { index = "app-logs", docs = {
      { ts = (now - 300) * 1000, svc = "pay", sev = "ERR", msg = "Timeout talking to ledger after 5000ms" },
      { ts = (now - 200) * 1000, svc = "pay", sev = "ERR", msg = "Timeout talking to ledger after 7000ms" },
      { ts = (now - 100) * 1000, svc = "pay", sev = "ERR", msg = "ignored", env = "staging" },
      { ts = (now - 100) * 1000, svc = "pay", sev = "INFO", msg = "fine" },
    } })
    local r = assert(query({ index = "app-logs", time_field = "ts", service_field = "svc", level_field = "sev",
      levels = { "ERR" }, message_field = "msg", services = { ["payments-api"] = { value = "pay" } },
      filter = { { bool = { must_not = { { term = { env = "staging" } } } } } } }))
    assert.equals(1, #r.items)
    assert.equals("Timeout talking to ledger after <n>ms", r.items[1].signature)
    assert.equals(2, r.items[1].count)
    assert.equals(now - 300, math.floor(r.items[1].first_seen + 0.5))
  end)

  it("marks the result truncated when there are more hits than it reads", function()
    local r = assert(query({ max_hits = 100 }))
    assert.equals(100, r.total)
    assert.is_true(r.total_matching > 1000)
    assert.is_true(r.truncated)
    assert.matches("^100%+ error lines", r.summary)
  end)

  it("reports an empty result for a service without errors", function()
    local r = assert(query(nil, { services = { "user-auth" } }))
    assert.same({}, r.items)
    assert.equals("no error lines for user-auth in the window", r.summary)
  end)

  it("names a missing index and passes Elasticsearch's reason on", function()
    local r, err = query({ index = "nope" })
    assert.is_nil(r)
    assert.matches("^elasticsearch: HTTP 404 from http://127%.0%.0%.1:%d+/nope/_search "
      .. "%(is the index pattern nope right%?%): "
      .. "index_not_found_exception: no such index %[nope%]", err)
  end)

  it("passes query parsing errors on", function()
    local r, err = query({ filter = { { frobnicate = {} } } })
    assert.is_nil(r)
    assert.matches("HTTP 400 .*parsing_exception: unknown query %[frobnicate%]", err)
  end)

  it("fails on 500s, malformed JSON and timeouts", function()
    es:faults({ { path_prefix = "/logs", status = 503, times = 1 } })
    local r, err = query()
    assert.is_nil(r)
    assert.matches("HTTP 503 .*cluster_block_exception", err)

    es:faults({ { path_prefix = "/logs", malformed_json = true, times = 1 } })
    r, err = query()
    assert.is_nil(r)
    assert.matches("^elasticsearch: malformed JSON from http://127%.0%.0%.1:%d+/logs%-%*/_search", err)

    es:faults({ { path_prefix = "/logs", delay_ms = 1500, times = 1 } })
    local t0 = task.now()
    r, err = src.query({ services = { "payments-api" }, window = { incident_start = incident_at, to = now },
                         config = { url = es.url }, timeout = 0.3 })
    assert.is_nil(r)
    assert.matches("timed out", err)
    assert.is_true(task.now() - t0 < 1)
  end)
end)

describe("elasticsearch source with authentication", function()
  local es

  setup(function()
    es = fakes.start("elasticsearch", { args = { "--api-key", "a2V5OnNlY3JldA==", "--flavor", "opensearch" } })
  end)

  teardown(function()
    if es then es:stop() end
  end)

  local function query(config)
    config.url = es.url
    return src.query({ services = { "payments-api" }, window = { incident_start = os.time() - 1200 },
                       config = config, timeout = 5 })
  end

  it("sends the API key", function()
    local r, err = query({ api_key = "a2V5OnNlY3JldA==" })
    assert.is_nil(err)
    assert.is_true(#r.items > 0)
  end)

  it("says which credentials to check when refused", function()
    local r, err = query({ api_key = "wrong" })
    assert.is_nil(r)
    assert.matches("^elasticsearch: HTTP 401 .*%(check ELASTICSEARCH_API_KEY, ELASTICSEARCH_TOKEN or "
      .. "ELASTICSEARCH_USERNAME/PASSWORD%): security_exception: missing authentication credentials", err)
    local req = es:requests({ status = 401 })[1]
    assert.equals("ApiKey wrong", req.headers.authorization)
  end)

  it("reports a partial answer (failed shards) as a warning", function()
    es:faults({ { path_prefix = "/logs", times = 1, body = {
      took = 3, timed_out = false,
      _shards = { total = 5, successful = 3, skipped = 0, failed = 2,
                  failures = { { shard = 1, index = "logs-x",
                                 reason = { type = "node_disconnected_exception", reason = "node left" } } } },
      hits = { total = { value = 1, relation = "eq" }, hits = { { _index = "logs-x", _id = "1",
        _source = { ["@timestamp"] = "2026-01-01T00:00:00Z", message = "boom happened" } } } } } } })
    local r = assert(query({ api_key = "a2V5OnNlY3JldA==" }))
    assert.equals(1, #r.items)
    assert.matches("2 of 5 shards failed: node_disconnected_exception: node left", r.warnings[1])
    assert.is_string(json.encode(r))
  end)
end)
