-- The incident.io client against the fake: auth, filters, pagination, references,
-- read-only, caching, the rate limiter, retries and every actionable error.
local fakes = require("helpers.fakes")
local incidentio = require("fox.incidentio")
local task = require("fox.task")
local log = require("fox.log")

local VIEWER = fakes.KEYS.viewer

local fake

local function client(overrides)
  local cfg = { base_url = fake.url, api_key = VIEWER, backoff_base = 0.01, backoff_max = 0.05 }
  for k, v in pairs(overrides or {}) do cfg[k] = v end
  local c = incidentio.new(cfg)
  c:reset_rate_limit()
  return c
end

local function assert_no_key(msg)
  assert.is_nil(msg:find(VIEWER, 1, true), "the key leaked into: " .. msg)
  assert.is_nil(msg:find("test-writer-key", 1, true), "the write key leaked into: " .. msg)
end

describe("incident.io client", function()
  lazy_setup(function()
    fake = fakes.incidentio({ seed = "default", args = { "--api-key", "no-view-key:incident_creator" } })
  end)
  lazy_teardown(function()
    if fake then fake:stop() end
  end)
  before_each(function()
    fake:reset()
    fake:clear_requests()
  end)

  describe("configuration", function()
    it("takes overrides, strips a trailing slash and defaults to api.incident.io", function()
      local c = incidentio.new({ base_url = fake.url .. "/", api_key = "k" })
      assert.equals(fake.url, c.base_url)
      assert.equals("config", c:key_source())
      assert.equals("https://api.incident.io", incidentio.DEFAULT_BASE_URL)
    end)

    it("registers both keys for log redaction", function()
      local seen = {}
      local orig = log.redact
      log.redact = function(s) seen[#seen + 1] = s; return orig(s) end
      local ok, err = pcall(incidentio.new, { base_url = fake.url, api_key = "secret-one",
                                               write_api_key = "secret-two" })
      log.redact = orig
      assert.is_true(ok, err)
      assert.same({ "secret-one", "secret-two" }, seen)
    end)

    it("reports a missing key before making any request", function()
      local c = incidentio.new({ base_url = fake.url, api_key = false })
      c.cfg.api_key = nil
      local body, err = c:get("/v1/identity")
      assert.is_nil(body)
      assert.equals("config", err.kind)
      assert.matches("INCIDENT_IO_API_KEY", err.message, 1, true)
      assert.equals(0, #fake:api_requests())
    end)
  end)

  describe("requests", function()
    it("authenticates with a bearer key only", function()
      local id = assert(client():identity())
      assert.equals("test-viewer", id.name)
      assert.same({ "viewer" }, id.roles)
      local r = fake:api_requests({ path = "/v1/identity" })[1]
      assert.equals("test-viewer", r.key)
      assert.matches("^Bearer ", r.headers.authorization)
      assert.is_nil(r.headers["x-api-key"])
      assert.equals("", r.raw_query)
    end)

    it("accepts INC-123, 123, #123 and full IDs as references", function()
      local c = client()
      local a = assert(c:get_incident("INC-2"))
      local b = assert(c:get_incident("2"))
      local d = assert(c:get_incident("inc-0002"))
      local e = assert(c:get_incident(a.id))
      assert.equals("INC-2", a.reference)
      assert.equals(a.id, b.id)
      assert.equals(a.id, d.id)
      assert.equals(a.id, e.id)
      local paths = {}
      for _, r in ipairs(fake:api_requests()) do paths[#paths + 1] = r.path end
      assert.same({ "/v2/incidents/2", "/v2/incidents/2", "/v2/incidents/2", "/v2/incidents/" .. a.id }, paths)
    end)

    it("rejects a malformed reference without calling the API", function()
      local inc, err = client():get_incident("INC 2; DROP")
      assert.is_nil(inc)
      assert.equals("invalid_input", err.kind)
      assert.matches("INC-123", err.message, 1, true)
      assert.equals(0, #fake:api_requests())
    end)

    it("sends filters in the bracketed syntax, one key per value", function()
      local c = client()
      local crit = assert(c:resolve_severity("critical"))
      local list = assert(c:list_incidents({
        ["status_category[one_of]"] = { "triage", "live", "paused" },
        ["severity[one_of]"] = crit.id,
        ["created_at[gte]"] = "2020-01-01",
      }, { limit = 10 }))
      assert.is_true(#list >= 1)
      for _, inc in ipairs(list) do assert.equals("Critical", inc.severity.name) end
      local r = fake:api_requests({ path = "/v2/incidents" })[1]
      assert.equals(200, r.status)
      assert.same({ "triage", "live", "paused" }, fakes.query_values(r, "status_category[one_of]"))
      assert.same({ crit.id }, fakes.query_values(r, "severity[one_of]"))
      assert.same({ "2020-01-01" }, fakes.query_values(r, "created_at[gte]"))
      assert.matches("status_category%%5Bone_of%%5D=triage&status_category%%5Bone_of%%5D=live", r.raw_query)
      assert.is_nil(r.query.status)
      assert.is_nil(r.query.severity_id)
    end)

    it("pages with `after` until the server stops giving a cursor", function()
      local c = client()
      local all, err, meta = c:list_incidents({}, { page_size = 10 })
      assert.is_nil(err)
      assert.equals(meta.total, #all)
      assert.is_true(#all > 40)
      assert.is_false(meta.truncated)
      local reqs = fake:api_requests({ path = "/v2/incidents" })
      assert.equals(math.ceil(#all / 10), #reqs)
      assert.is_nil(reqs[1].query.after)
      for i = 2, #reqs do
        assert.equals(all[(i - 1) * 10].id, reqs[i].query.after)
        assert.equals("10", reqs[i].query.page_size)
      end
      local seen = {}
      for _, inc in ipairs(all) do
        assert.is_nil(seen[inc.id])
        seen[inc.id] = true
      end
    end)

    it("stops at the limit and says so", function()
      local list, _, meta = client():list_incidents({}, { limit = 12, page_size = 5 })
      assert.equals(12, #list)
      assert.is_true(meta.truncated)
      assert.equals(3, #fake:api_requests({ path = "/v2/incidents" }))
    end)

    it("reads every page of incident updates", function()
      local c = client()
      local inc = assert(c:get_incident("INC-2"))
      local updates = assert(c:incident_updates(inc.id))
      assert.equals(3, #updates)
      local r = fake:api_requests({ path = "/v2/incident_updates" })[1]
      assert.equals(inc.id, r.query.incident_id)
      assert.equals("250", r.query.page_size)
    end)

    it("falls back when the server has no timeline items", function()
      fake:config({ timeline_items = false })
      local c = client()
      local inc = assert(c:get_incident("INC-2"))
      local items, err, meta = c:timeline_items(inc.id)
      assert.is_nil(err)
      assert.same({}, items)
      assert.is_false(meta.supported)
    end)

    it("resolves severity and status names through cached settings", function()
      local c = client()
      c:clear_cache()
      assert.equals("High", c:resolve_severity("HIGH").name)
      assert.equals("Critical", c:resolve_severity("P0").name)
      assert.equals("Fixing", c:resolve_status("fixing").name)
      local _, err = c:resolve_severity("Sev9")
      assert.equals("invalid_input", err.kind)
      assert.matches("Critical, High, Medium, Low", err.message, 1, true)
      -- a new client (as after a hot reload) still uses the shared cache
      local again = incidentio.new({ base_url = fake.url, api_key = VIEWER })
      assert.equals("Low", again:resolve_severity("low").name)
      assert.equals(1, #fake:api_requests({ path = "/v1/severities" }))
      assert.equals(1, #fake:api_requests({ path = "/v1/incident_statuses" }))
    end)
  end)

  describe("read-only", function()
    it("refuses every method but GET without calling the API", function()
      local c = client({ write_api_key = fakes.KEYS.writer })
      for _, m in ipairs({ "POST", "PUT", "PATCH", "DELETE" }) do
        local body, err = c:request(m, "/v2/incidents/2", { body = {} })
        assert.is_nil(body)
        assert.equals("read_only", err.kind)
      end
      assert.equals(0, #fake:api_requests())
    end)

    it("refuses timeline items without a separate write key", function()
      local _, err = client():create_timeline_item({ incident_id = "x", title = "t" })
      assert.equals("read_only", err.kind)
      assert.matches("INCIDENT_IO_WRITE_API_KEY", err.message, 1, true)
      assert.equals(0, #fake:api_requests())
    end)

    it("creates timeline items with the write key only", function()
      local c = client({ write_api_key = fakes.KEYS.writer })
      local inc = assert(c:get_incident("INC-2"))
      local item = assert(c:create_timeline_item({ incident_id = inc.id, title = "fox: findings",
        description = "three similar incidents", idempotency_key = "fox-test-1" }))
      assert.equals("fox: findings", item.title)
      local again = assert(c:create_timeline_item({ incident_id = inc.id, title = "fox: findings",
        idempotency_key = "fox-test-1" }))
      assert.equals(item.id, again.id)
      local posts = fake:api_requests({ method = "POST" })
      assert.equals(2, #posts)
      assert.equals("test-writer", posts[1].key)
      assert.equals("/v2/incident_timeline_items", posts[1].path)
      assert.equals("fox-test-1", posts[1].body.idempotency_key)
      assert.equals("test-viewer", fake:api_requests({ method = "GET" })[1].key)
    end)
  end)

  describe("actionable errors", function()
    it("401: the key is invalid or expired", function()
      local _, err = client({ api_key = "wrong-key" }):get_incident("INC-2")
      assert.equals("auth", err.kind)
      assert.equals(401, err.status)
      assert.matches("invalid or expired", err.message, 1, true)
      assert.matches("Settings > API keys", err.message, 1, true)
      assert.is_nil(err.message:find("wrong-key", 1, true))
      assert.equals(1, #fake:api_requests()) -- not retried
    end)

    it("403: the key lacks the permission, named", function()
      local _, err = client({ api_key = "no-view-key" }):list_incidents({}, { limit = 1 })
      assert.equals("forbidden", err.kind)
      assert.matches('"View data" permission (viewer)', err.message, 1, true)
      assert.matches("GET /v2/incidents", err.message, 1, true)
      assert.is_nil(err.message:find("no-view-key", 1, true))
      local _, werr = client({ write_api_key = VIEWER }):create_timeline_item({
        incident_id = "01JV571CDA0CBY35XV118DP6GY", title = "x" })
      assert.equals("forbidden", werr.kind)
      assert.matches("permission to create timeline items", werr.message, 1, true)
      assert_no_key(werr.message)
    end)

    it("404: incident not found, check the ID and time range", function()
      local _, err = client():get_incident("INC-9999")
      assert.equals("not_found", err.kind)
      assert.matches("incident INC-9999 not found", err.message, 1, true)
      assert.matches("check the incident ID and the time range", err.message, 1, true)
      assert.equals(1, #fake:api_requests())
    end)

    it("422: says the request was wrong, with the server's reason", function()
      local _, err = client():list_incidents({ ["status[one_of]"] = "not-a-status" }, { limit = 1 })
      assert.equals("invalid_request", err.kind)
      assert.equals(422, err.status)
      assert.matches("no incident status with id", err.message, 1, true)
    end)

    it("429 storm (Retry-After in seconds): waits as told, then rate limit exceeded", function()
      fake:faults({ { path_prefix = "/v2/incidents", status = 429, retry_after = 1 } })
      local t0 = task.now()
      local _, err = client({ max_429 = 3 }):list_incidents({}, { limit = 5 })
      local took = task.now() - t0
      assert.equals("rate_limited", err.kind)
      assert.matches("rate limit exceeded", err.message, 1, true)
      assert.matches("narrow the filters", err.message, 1, true)
      assert.equals(3, #fake:api_requests())
      assert.is_true(took >= 1.9, "waited " .. took)
      assert_no_key(err.message)
    end)

    it("429 storm (Retry-After as an HTTP date): waits until then", function()
      fake:config({ retry_after_format = "http-date" })
      fake:faults({ { path_prefix = "/v1/identity", status = 429, retry_after = 2 } })
      local raw = assert(require("fox.http").request({ url = fake.url .. "/v1/identity",
        headers = { Authorization = "Bearer " .. VIEWER } }))
      assert.matches("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$", raw.headers["retry-after"])
      fake:clear_requests()
      local t0 = task.now()
      local _, err = client({ max_429 = 2 }):identity()
      local took = task.now() - t0
      assert.equals("rate_limited", err.kind)
      assert.equals(2, #fake:api_requests())
      assert.is_true(took >= 0.9, "waited " .. took)
    end)

    it("recovers after a 429 once the Retry-After has passed", function()
      fake:faults({ { path_prefix = "/v1/identity", status = 429, retry_after = 1, times = 1 } })
      local t0 = task.now()
      assert(client():identity())
      assert.is_true(task.now() - t0 >= 0.95)
      local reqs = fake:api_requests()
      assert.equals(2, #reqs)
      assert.equals(429, reqs[1].status)
      assert.equals(200, reqs[2].status)
    end)

    it("parses both Retry-After forms and the body's retry_after", function()
      local now = 1744888638 -- Thu, 17 Apr 2025 11:17:18 GMT
      assert.equals(7, incidentio.retry_after_seconds({ ["retry-after"] = "7" }, nil, now))
      assert.equals(3, incidentio.retry_after_seconds({ ["retry-after"] = "Thu, 17 Apr 2025 11:17:21 GMT" }, nil, now))
      assert.equals(0, incidentio.retry_after_seconds({ ["retry-after"] = "Thu, 17 Apr 2025 11:17:00 GMT" }, nil, now))
      local function body(ra) return { rate_limit = { retry_after = ra } } end
      assert.equals(5, incidentio.retry_after_seconds({}, body("2025-04-17T11:17:23Z"), now))
      assert.equals(2, incidentio.retry_after_seconds({}, body("Thu, 17 Apr 2025 11:17:20 GMT"), now))
      assert.is_nil(incidentio.retry_after_seconds({}, {}, now))
    end)

    it("5xx then success: retries with backoff", function()
      fake:faults({ { path_prefix = "/v2/incidents", status = 503, times = 2 } })
      local inc = assert(client():get_incident("INC-2"))
      assert.equals("INC-2", inc.reference)
      local reqs = fake:api_requests()
      assert.equals(3, #reqs)
      assert.equals(503, reqs[1].status)
      assert.equals(503, reqs[2].status)
      assert.equals(200, reqs[3].status)
    end)

    it("5xx that persists: bounded attempts, then a message saying to try later", function()
      fake:faults({ { path_prefix = "/v2/incidents", status = 500 } })
      local _, err = client({ max_attempts = 3 }):get_incident("INC-2")
      assert.equals("server", err.kind)
      assert.matches("after 3 attempts", err.message, 1, true)
      assert.matches("Try again later", err.message, 1, true)
      assert.equals(3, #fake:api_requests())
    end)

    it("bounds the total time spent retrying", function()
      fake:faults({ { path_prefix = "/v2/incidents", status = 502 } })
      local t0 = task.now()
      local _, err = client({ max_attempts = 50, backoff_base = 0.2, backoff_max = 0.4, max_retry_time = 1 })
        :get_incident("INC-2")
      assert.equals("server", err.kind)
      assert.is_true(task.now() - t0 < 1.5)
      assert.is_true(#fake:api_requests() < 10)
    end)

    it("connection reset, then success", function()
      fake:faults({ { path_prefix = "/v2/incidents", reset = true, times = 1 } })
      assert(client():get_incident("INC-2"))
      assert.equals(2, #fake:api_requests())
    end)

    it("a timeout is retried", function()
      fake:faults({ { path_prefix = "/v2/incidents", delay_ms = 1500, times = 1 } })
      assert(client({ timeout = 0.3 }):get_incident("INC-2"))
      assert.equals(2, #fake:api_requests())
    end)

    it("resets that persist: unable to connect, outbound HTTPS must be allowed", function()
      fake:faults({ { path_prefix = "/v2/incidents", reset = true } })
      local _, err = client({ max_attempts = 3 }):get_incident("INC-2")
      assert.equals("network", err.kind)
      assert.matches("unable to connect to the incident.io API at " .. fake.url, err.message, 1, true)
      assert.matches("outbound HTTPS to 127.0.0.1 must be allowed", err.message, 1, true)
      -- 3 attempts (libcurl may itself re-send once on a reused connection that died)
      local n = #fake:api_requests()
      assert.is_true(n >= 3 and n <= 6, n .. " requests")
    end)

    it("unreachable host: unable to connect, with the reason", function()
      local port = fakes.closed_port()
      local t0 = task.now()
      local _, err = incidentio.new({ base_url = "http://127.0.0.1:" .. port, api_key = VIEWER,
                                      backoff_base = 0.01 }):identity()
      assert.equals("network", err.kind)
      assert.matches("unable to connect to the incident.io API", err.message, 1, true)
      assert.matches("connection refused", err.message, 1, true)
      assert.matches("outbound HTTPS", err.message, 1, true)
      assert.is_true(task.now() - t0 < 2)
      assert_no_key(err.message)
    end)

    it("malformed JSON, then a good answer", function()
      fake:faults({ { path_prefix = "/v2/incidents", malformed_json = true, times = 1 } })
      assert(client():get_incident("INC-2"))
      assert.equals(2, #fake:api_requests())
    end)

    it("malformed JSON that persists: says the body is not valid JSON", function()
      fake:faults({ { path_prefix = "/v2/incidents", malformed_json = true } })
      local _, err = client({ max_attempts = 2 }):get_incident("INC-2")
      assert.equals("bad_response", err.kind)
      assert.matches("not valid JSON", err.message, 1, true)
    end)

    it("a truncated answer is retried", function()
      fake:faults({ { path_prefix = "/v2/incidents", truncate = true, times = 1 } })
      assert(client():get_incident("INC-2"))
      assert.equals(2, #fake:api_requests())
    end)
  end)

  describe("rate limiter", function()
    it("never causes a 429 by itself: requests wait for tokens", function()
      -- The fake's bucket runs on arrival times, fox's on send times: a burst stays legal
      -- while the delay from send to arrival varies by less than (margin + refill * T) /
      -- (0.9 * refill) for any span T. A 10% margin of 50 tokens at 10/s tolerates half a
      -- second of jitter (a loaded machine, ASan); a bucket of 5 tolerated 55 ms.
      fake:config({ rate_limit = { capacity = 50, refill_per_sec = 10 } })
      local c = client({ rate_capacity = 50, rate_refill = 10 })
      local fns = {}
      for i = 1, 70 do
        fns[i] = function() return assert(c:identity()).name end
      end
      local t0 = task.now()
      local values, errors = task.gather(fns)
      local took = task.now() - t0
      for i = 1, 70 do
        assert.is_nil(errors[i])
        assert.equals("test-viewer", values[i])
      end
      assert.equals(0, fake:stats().rate_limited)
      -- 45 at once, then the other 25 at 9/s (10/s less the safety margin)
      assert.is_true(took >= 2.5, "took " .. took)
    end)

    it("is one bucket per key for the whole process, outside any client", function()
      local a = client({ rate_capacity = 3, rate_refill = 5 })
      for _ = 1, 3 do assert(a:identity()) end
      -- a new client for the same key (another task, or after a hot reload) shares it
      local b = incidentio.new({ base_url = fake.url, api_key = VIEWER, rate_capacity = 3, rate_refill = 5 })
      local t0 = task.now()
      assert(b:identity())
      assert.is_true(task.now() - t0 >= 0.1)
      -- another key has its own bucket
      local w = incidentio.new({ base_url = fake.url, api_key = fakes.KEYS.admin, rate_capacity = 3, rate_refill = 5 })
      w:reset_rate_limit()
      t0 = task.now()
      assert(w:identity())
      assert.is_true(task.now() - t0 < 0.1)
    end)

    it("after a 429, other requests on the same key wait too", function()
      fake:faults({ { path = "/v1/identity", status = 429, retry_after = 1, times = 1 } })
      local c = client()
      local t0 = task.now()
      local first = task.spawn(function() return c:identity() end)
      task.sleep(0.2)
      assert(c:get_incident("INC-2"))
      assert.is_true(task.now() - t0 >= 0.9)
      assert(task.wait(first))
    end)
  end)
end)
