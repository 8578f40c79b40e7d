-- The pieces of `fox serve` in-process: the durable queue, the poller's cursor logic
-- (with a stub client), metrics rendering, the skip policy, the playbook ctx.
local json = require("fox.json")
local metrics = require("fox.metrics")
local poller = require("fox.poller")
local queue = require("fox.queue")
local shared = require("fox.shared")
local skip = require("policies.skip")
local state = require("fox.state")
local sys = require("fox.sys")
local task = require("fox.task")
local timerange = require("fox.timerange")
local proc = require("helpers.proc")

local wait_for = proc.wait_for

local function fresh_state()
  local path = proc.tmpdir("state")
  return assert(state.open(path)), path
end

describe("fox.queue", function()
  local st
  before_each(function()
    st = fresh_state()
    shared.delete("queue:running")
    shared.delete("serve:draining")
  end)
  after_each(function()
    st:close()
    proc.cleanup()
  end)

  it("queues an incident durably once, and never again once it has a record", function()
    local q = queue.new({ st = st, owner = "me", job = function() return { status = "done" } end })
    assert.is_true(q:enqueue("INC1", { source = "webhook" }))
    assert.same({ false, "queued" }, { q:enqueue("INC1", { source = "poller" }) })
    assert.equals(1, q:depth())
    local entry = json.decode(st:get("queue", "INC1"))
    assert.equals("webhook", entry.source)
    assert.equals(0, entry.attempts)
    assert.equals(1, q:pump())
    assert.truthy(wait_for(function() return q:depth() == 0 end))
    assert.equals("done", json.decode(st:get("incidents", "INC1")).status)
    assert.same({ false, "known" }, { q:enqueue("INC1", { source = "webhook" }) })
    assert.equals(0, q:pump())
  end)

  it("runs at most `concurrency` at once, oldest first", function()
    local running, peak, order = 0, 0, {}
    local q = queue.new({ st = st, owner = "me", concurrency = 2, job = function(e)
      order[#order + 1] = e.id
      running = running + 1
      peak = math.max(peak, running)
      task.sleep(0.05)
      running = running - 1
      return { status = "done" }
    end })
    for i = 1, 6 do assert.is_true(q:enqueue("id" .. (7 - i), { created_at_ts = i })) end
    local loop = task.spawn(function()
      local deadline = task.now() + 3
      while q:depth() > 0 and task.now() < deadline do
        q:pump()
        task.sleep(0.01)
      end
    end)
    task.wait(loop)
    assert.equals(0, q:depth())
    assert.equals(2, peak)
    assert.same({ "id6", "id5", "id4", "id3", "id2", "id1" }, order)
  end)

  it("ends a run at its deadline and records the failure", function()
    local q = queue.new({ st = st, owner = "me", deadline = 0.05, job = function()
      task.sleep(10)
      return { status = "done" }
    end })
    q:enqueue("slow", {})
    q:pump()
    assert.truthy(wait_for(function() return st:get("incidents", "slow") end))
    local rec = json.decode(st:get("incidents", "slow"))
    assert.equals("failed", rec.status)
    assert.equals("deadline", rec.outcome)
    assert.equals(0, queue.running())
  end)

  it("retries a run that asks for it, then gives up after max_attempts", function()
    local runs = 0
    local q = queue.new({ st = st, owner = "me", max_attempts = 2, job = function()
      runs = runs + 1
      return { status = "retry", retry_in = 0, error = "network down" }
    end })
    q:enqueue("flaky", {})
    for _ = 1, 3 do
      q:pump()
      assert.truthy(wait_for(function() return queue.running() == 0 end))
    end
    assert.equals(2, runs)
    local rec = json.decode(st:get("incidents", "flaky"))
    assert.equals("failed", rec.status)
    assert.equals("gave_up", rec.outcome)
    assert.matches("network down", rec.error)
  end)

  it("does not count a free retry (a revoked key) against the attempts, and waits retry_in", function()
    local q = queue.new({ st = st, owner = "me", max_attempts = 1, job = function()
      return { status = "retry", free_retry = true, retry_in = 60, error = "401" }
    end })
    q:enqueue("auth", {})
    q:pump()
    assert.truthy(wait_for(function() return queue.running() == 0 end))
    local e = json.decode(st:get("queue", "auth"))
    assert.equals(0, e.attempts)
    assert.is_true(e.not_before > sys.wall_time() + 50)
    assert.equals(0, q:pump()) -- not before its time
    q:retry_now()
    assert.is_nil(json.decode(st:get("queue", "auth")).not_before)
  end)

  it("frees claims left by a crashed process so their work runs again", function()
    assert.is_true(st:claim("claims", "orphan", "dead-process", 3600))
    st:set("queue", "orphan", json.encode({ id = "orphan", attempts = 1, enqueued_at = 1 }))
    local ran
    local q = queue.new({ st = st, owner = "me", job = function(e)
      ran = e.attempts
      return { status = "done" }
    end })
    assert.equals(0, q:pump()) -- still claimed by the dead process
    assert.equals(1, q:recover())
    assert.equals(1, q:pump())
    assert.truthy(wait_for(function() return ran end))
    assert.equals(2, ran)
  end)

  it("removes an entry whose result was recorded before a crash, without running it", function()
    st:set("incidents", "finished", json.encode({ status = "done" }))
    st:set("queue", "finished", json.encode({ id = "finished", attempts = 1 }))
    local q = queue.new({ st = st, owner = "me", job = function() error("must not run") end })
    assert.equals(0, q:pump())
    assert.is_nil(st:get("queue", "finished"))
  end)

  it("starts nothing while draining", function()
    local q = queue.new({ st = st, owner = "me", job = function() return { status = "done" } end })
    q:enqueue("x", {})
    shared.set("serve:draining", true)
    assert.equals(0, q:pump())
    shared.delete("serve:draining")
    assert.equals(1, q:pump())
    assert.truthy(wait_for(function() return queue.running() == 0 end))
  end)
end)

describe("fox.poller", function()
  local st
  local cfg = { poll_overlap = 120, max_catch_up = 86400 }

  local function stub(incidents)
    local c = { calls = {} }
    function c.list_incidents(_, filters)
      c.calls[#c.calls + 1] = filters
      return incidents, nil, { truncated = false }
    end
    return c
  end

  before_each(function() st = fresh_state() end)
  after_each(function()
    st:close()
    proc.cleanup()
  end)

  it("starts from now on its very first run", function()
    local q = queue.new({ st = st, owner = "me", job = function() end })
    local client = stub({ { id = "old", created_at = timerange.format_time(sys.wall_time() - 60) } })
    local res = assert(poller.poll_once({ st = st, client = client, queue = q, cfg = cfg }))
    assert.is_true(res.first)
    assert.equals(0, #client.calls)
    assert.truthy(st:get("cursor", "poll"))
    -- The overlap never reaches before the first run.
    res = assert(poller.poll_once({ st = st, client = client, queue = q, cfg = cfg }))
    assert.equals(0, res.queued)
    assert.equals(0, q:depth())
  end)

  it("queues what was created since the cursor, oldest first, de-duplicated by id", function()
    local now = sys.wall_time()
    st:set("cursor", "poll_start", tostring(now - 7200))
    st:set("cursor", "poll", tostring(now - 3600))
    local q = queue.new({ st = st, owner = "me", job = function() end })
    local list = {
      { id = "b", reference = "INC-2", created_at = timerange.format_time(now - 100) },
      { id = "a", reference = "INC-1", created_at = timerange.format_time(now - 1000) },
      { id = "too_old", reference = "INC-0", created_at = timerange.format_time(now - 5000) },
    }
    local client = stub(list)
    local res = assert(poller.poll_once({ st = st, client = client, queue = q, cfg = cfg }))
    assert.equals(2, res.queued)
    assert.equals("created_at_oldest_first", client.calls[1].sort_by)
    assert.equals(timerange.format_date(now - 3600 - 120), client.calls[1]["created_at[gte]"])
    local entries = q:entries()
    assert.equals("a", entries[1].id)
    assert.equals("b", entries[2].id)
    assert.equals("poller", entries[1].source)
    -- The next poll sees them again (overlap) and queues nothing.
    res = assert(poller.poll_once({ st = st, client = client, queue = q, cfg = cfg }))
    assert.equals(0, res.queued)
    assert.is_true(tonumber(st:get("cursor", "poll")) >= now)
  end)

  it("bounds the catch-up after a long downtime by max_catch_up", function()
    local now = sys.wall_time()
    st:set("cursor", "poll_start", tostring(now - 10 * 86400))
    st:set("cursor", "poll", tostring(now - 5 * 86400))
    local q = queue.new({ st = st, owner = "me", job = function() end })
    local client = stub({
      { id = "ancient", created_at = timerange.format_time(now - 3 * 86400) },
      { id = "recent", created_at = timerange.format_time(now - 3600) },
    })
    local res = assert(poller.poll_once({ st = st, client = client, queue = q,
      cfg = { poll_overlap = 120, max_catch_up = 86400 } }))
    assert.equals(1, res.queued)
    assert.equals("recent", q:entries()[1].id)
  end)

  it("keeps the cursor when the API fails", function()
    st:set("cursor", "poll", "1000")
    local q = queue.new({ st = st, owner = "me", job = function() end })
    local client = { list_incidents = function() return nil, { kind = "auth", message = "401" } end }
    local res, err = poller.poll_once({ st = st, client = client, queue = q, cfg = cfg })
    assert.is_nil(res)
    assert.equals("auth", err.kind)
    assert.equals("1000", st:get("cursor", "poll"))
  end)
end)

describe("fox.metrics", function()
  before_each(function() metrics.reset() end)

  it("renders counters with HELP, TYPE and escaped labels", function()
    metrics.inc("fox_webhooks_total", { outcome = "accepted" })
    metrics.inc("fox_webhooks_total", { outcome = "accepted" }, 2)
    metrics.inc("fox_incidentio_requests_total", { endpoint = 'GET /x"y\\z', status = "200" })
    local text = metrics.render()
    assert.matches("# HELP fox_webhooks_total Webhook deliveries by outcome.\n# TYPE fox_webhooks_total counter\n"
      .. 'fox_webhooks_total{outcome="accepted"} 3\n', text, 1, true)
    assert.matches('fox_incidentio_requests_total{endpoint="GET /x\\"y\\\\z",status="200"} 1', text, 1, true)
    assert.equals(3, metrics.get("fox_webhooks_total", { outcome = "accepted" }))
  end)

  it("counts one series per label set whatever order the labels were built in", function()
    local a = { path = "/metrics" }
    a.status = "200"
    local b = { status = "200" }
    b.path = "/metrics"
    for _ = 1, 3 do
      metrics.inc("fox_http_requests_total", a)
      metrics.inc("fox_http_requests_total", b)
    end
    metrics.inc("fox_http_requests_total", { path = "/metrics", status = 200 })    -- a number
    metrics.inc("fox_http_requests_total", { path = "/metrics", status = "200", extra = "x" })
    metrics.inc("fox_http_requests_total", { path = "/metrics", status = "404" })
    assert.equals(7, metrics.get("fox_http_requests_total", { status = "200", path = "/metrics" }))
    assert.equals(1, metrics.get("fox_http_requests_total", { path = "/metrics", status = "404" }))
    local text = metrics.render()
    assert.matches('fox_http_requests_total{path="/metrics",status="200"} 7\n', text, 1, true)
    assert.matches('fox_http_requests_total{extra="x",path="/metrics",status="200"} 1\n', text, 1, true)
  end)

  it("renders histograms with cumulative buckets, sum and count", function()
    metrics.observe("fox_investigation_duration_seconds", { outcome = "ok" }, 0.2)
    metrics.observe("fox_investigation_duration_seconds", { outcome = "ok" }, 7)
    local text = metrics.render()
    assert.matches("# TYPE fox_investigation_duration_seconds histogram", text, 1, true)
    assert.matches('fox_investigation_duration_seconds_bucket{outcome="ok",le="0.1"} 0\n', text, 1, true)
    assert.matches('fox_investigation_duration_seconds_bucket{outcome="ok",le="0.25"} 1\n', text, 1, true)
    assert.matches('fox_investigation_duration_seconds_bucket{outcome="ok",le="10"} 2\n', text, 1, true)
    assert.matches('fox_investigation_duration_seconds_bucket{outcome="ok",le="+Inf"} 2\n', text, 1, true)
    assert.matches('fox_investigation_duration_seconds_sum{outcome="ok"} 7.2', text, 1, true)
    assert.matches('fox_investigation_duration_seconds_count{outcome="ok"} 2\n', text, 1, true)
    -- Buckets in increasing order, then sum, then count.
    local p1 = text:find('le="0.05"', 1, true)
    local p2 = text:find('le="+Inf"', 1, true)
    local p3 = text:find("_sum", 1, true)
    local p4 = text:find("_count", 1, true)
    assert.is_true(p1 < p2 and p2 < p3 and p3 < p4)
  end)

  it("adds the HTTP listener's counters, a 413 series even when zero", function()
    local http = require("fox.http")
    local server = assert(http.listen({ port = 0, max_body = 1000,
      handler = function() return { status = 200, body = "ok" } end }))
    local url = ("http://127.0.0.1:%d/"):format(server.port)
    local function sample(text, series)
      return tonumber(text:match("\n" .. series:gsub("%p", "%%%0") .. " (%d+)\n"))
    end
    local text = metrics.render()
    assert.matches("# TYPE fox_http_connections_open gauge\n", text, 1, true)
    assert.matches("# TYPE fox_http_requests_timed_out_total counter\n", text, 1, true)
    assert.matches('fox_http_connections_rejected_total{reason="max_connections"} ', text, 1, true)
    local before = sample(text, 'fox_http_listener_replies_total{status="413"}')
    assert.is_number(before)
    local res = http.request({ method = "POST", url = url, body = ("x"):rep(4000), timeout = 10 })
    assert.equals(413, res and res.status)
    text = metrics.render()
    assert.equals(before + 1, sample(text, 'fox_http_listener_replies_total{status="413"}'))
    server:close()
  end)

  it("adds the gauges given at scrape time", function()
    local text = metrics.render({ { name = "fox_queue_depth", help = "Depth.", samples = { { value = 4 } } } })
    assert.matches("# TYPE fox_queue_depth gauge\nfox_queue_depth 4\n", text, 1, true)
  end)
end)

describe("policies.skip", function()
  local opts = { modes = { "test", "tutorial" }, status_categories = { "declined", "merged", "canceled" },
    name_patterns = { "^%[drill%]" } }

  it("skips test and tutorial incidents, declined/merged/canceled ones and matching names", function()
    assert.same({ true, "test incident" }, { skip({ mode = "test" }, opts) })
    assert.same({ true, "tutorial incident" }, { skip({ mode = "tutorial" }, opts) })
    assert.same({ true, "status is declined" },
      { skip({ mode = "standard", incident_status = { category = "declined" } }, opts) })
    assert.is_true((skip({ incident_status = { category = "merged" } }, opts)))
    assert.is_true((skip({ name = "[DRILL] failover" }, opts)))
  end)

  it("investigates everything else, and tolerates missing or odd fields", function()
    assert.is_false(skip({ mode = "standard", name = "Payments down", incident_status = { category = "live" } }, opts))
    assert.is_false(skip({}, opts))
    assert.is_false(skip({ mode = 42, incident_status = "x", name = {} }, {}))
    assert.is_false(skip({ name = "x" }, { name_patterns = { "[" } })) -- a bad pattern never matches
  end)
end)

describe("fox.daemon", function()
  local daemon = require("fox.daemon")

  it("labels API endpoints without ids", function()
    assert.equals("GET /v2/incidents/{id}", daemon.endpoint_of("GET", "/v2/incidents/01FDAG4SAP5TYPT98WGR2N7W91"))
    assert.equals("GET /v2/incidents/{id}", daemon.endpoint_of("GET", "/v2/incidents/123"))
    assert.equals("GET /v2/incidents", daemon.endpoint_of("GET", "/v2/incidents"))
    assert.equals("GET /v1/identity", daemon.endpoint_of("GET", "/v1/identity"))
  end)

  it("exports the durable state's group commits on /metrics", function()
    local st = fresh_state()
    local writers = {}
    for i = 1, 3 do writers[i] = task.spawn(function() return st:write({ { "queue", "g" .. i, "v" } }) end) end
    for i = 1, 3 do assert.is_true(select(2, task.wait(writers[i]))) end
    local text = metrics.render(daemon.gauges({ st = st }))
    assert.matches("# TYPE fox_state_group_commits_total counter\nfox_state_group_commits_total 1\n", text, 1, true)
    assert.matches("fox_state_group_writes_total 3\n", text, 1, true)
    assert.matches("fox_state_group_commit_failures_total 0\n", text, 1, true)
    st:close()
  end)

  it("counts incident.io rate-limit waits", function()
    local client = daemon._instrumented_client({ incidentio = { api_key = "spec-key-for-rate-limit",
      base_url = "http://127.0.0.1:9", rate_capacity = 1, rate_refill = 200 } })
    local before = metrics.get("fox_incidentio_rate_limit_waits_total")
    client:acquire_token(client.bucket_id)
    client:acquire_token(client.bucket_id)
    assert.is_true(metrics.get("fox_incidentio_rate_limit_waits_total") >= before + 1)
    assert.is_true(metrics.get("fox_incidentio_rate_limit_wait_seconds_total") > 0)
  end)

  it("gives playbooks a ctx whose once() never runs the same key twice, across restarts", function()
    local st, dir = fresh_state()
    local e = { st = st, cfg = { investigation_timeout = 10, record_ttl = 60, playbook_options = { a = 1 } } }
    local ctx = daemon._make_ctx(e, { id = "I1", attempts = 1, source = "webhook" }, { id = "I1", reference = "INC-1" })
    assert.equals("INC-1", ctx.reference)
    assert.equals(1, ctx.options.a)
    local calls = 0
    local v, again = ctx.once("slack:findings", function()
      calls = calls + 1
      return "1700000000.000100"
    end)
    assert.equals("1700000000.000100", v)
    assert.is_false(again)
    v, again = ctx.once("slack:findings", function() calls = calls + 1 end)
    assert.equals("1700000000.000100", v)
    assert.is_true(again)
    assert.equals(1, calls)
    -- A failing fn records nothing: it runs again next time.
    assert.is_nil((ctx.once("other", function() return nil, "slack down" end)))
    assert.is_nil(ctx.posted("other"))
    st:close()
    st = assert(state.open(dir))
    e.st = st
    ctx = daemon._make_ctx(e, { id = "I1", attempts = 2 }, { id = "I1", reference = "INC-1" })
    assert.equals("1700000000.000100", ctx.posted("slack:findings"))
    ctx.state.set("k", "v")
    assert.equals("v", ctx.state.get("k"))
    st:close()
    proc.cleanup()
  end)
end)
