-- The default playbook end to end, against the fakes: incident.io (demo seed), Slack,
-- GitHub, Loki, a real Prometheus when the machine has one, and the OpenAI-compatible
-- fake. Posted once; timeline items with the write key and idempotency keys; the pin
-- fallback; a failing source reported; sources queried at once; the AI summary on,
-- off and failing.
local fakes = require("helpers.fakes")
local prom = require("helpers.prometheus")
local proc = require("helpers.proc")
local http = require("fox.http")
local incidentio = require("fox.incidentio")
local slack = require("fox.slack")
local task = require("fox.task")
local timerange = require("fox.timerange")
local playbook = require("playbooks.investigate")

local NOW = os.time()
local ISO = timerange.format_time(NOW)
local CONTEXT = "Our critical services are payments-api, checkout-service, and user-auth. "
  .. "High severity incidents automatically page the SRE on-call team."

local function state_dir()
  return proc.tmpdir("state")
end

describe("investigation playbook", function()
  local inc, sl, gh, loki, ai, prometheus

  local level

  setup(function()
    level = require("fox.log").level()
    require("fox.log").set_level("warn")
    inc = fakes.incidentio({ seed = "demo", args = { "--now", ISO } })
    sl = fakes.slack({ seed = "demo", args = { "--now", ISO, "--incidentio-url", inc.url } })
    gh = fakes.start("github", { args = { "--scenario", "demo", "--now", ISO } })
    loki = fakes.start("loki", { args = { "--scenario", "demo", "--now", ISO } })
    ai = fakes.start("openai", { args = { "--key", "sk-test-key" } })
    if prom.available() then prometheus = prom.start({ scenario = "demo", now = NOW, incident_at = NOW - 1200 }) end
  end)

  teardown(function()
    require("fox.log").set_level(level)
    for _, f in ipairs({ inc, sl, gh, loki, ai, prometheus }) do f:stop() end
    proc.cleanup()
  end)

  before_each(function()
    inc:reset()
    sl:reset()
    ai:reset()
    for _, f in ipairs({ inc, sl, gh, loki, ai }) do f:clear_faults() end
  end)

  -- The sources of the demo, each pointed at its fake.
  local function sources(extra)
    local s = {
      github = { api_url = gh.url, token = "ghp_fox_test_token", repos = { ["payments-api"] = "acme/payments-api" } },
      loki = { url = loki.url },
    }
    if prometheus then s.prometheus = { url = prometheus.url } end
    for k, v in pairs(extra or {}) do s[k] = v end
    return s
  end

  -- A run of the playbook; opts: write (use the write key), options (merged), dir,
  -- dry_run, slack_opts.
  local function run(ref, opts)
    opts = opts or {}
    local client = incidentio.new({ base_url = inc.url, api_key = fakes.KEYS.viewer,
                                    write_api_key = opts.write and fakes.KEYS.writer or nil })
    local options = { custom_context = CONTEXT, sources = sources(opts.sources), channel_retry_delay = 0.1 }
    for k, v in pairs(opts.options or {}) do options[k] = v end
    return playbook.run(ref or "INC-2", {
      client = client,
      config = { state_dir = opts.dir or state_dir() },
      options = options,
      slack = slack.new({ base_url = sl.url .. "/api", token = "xoxb-test-token" }),
      dry_run = opts.dry_run,
    })
  end

  local function channel_of(ref)
    local client = incidentio.new({ base_url = inc.url, api_key = fakes.KEYS.viewer })
    return assert(client:get_incident(ref)).slack_channel_id
  end

  local function messages(channel)
    return sl:control("GET", "/_fake/messages", nil, { channel = channel }).messages
  end

  local function timeline_titles(ref)
    local client = incidentio.new({ base_url = inc.url, api_key = fakes.KEYS.viewer })
    local raw = assert(client:get_incident(ref))
    local items = assert(client:timeline_items(raw.id))
    local titles = {}
    for _, it in ipairs(items) do titles[#titles + 1] = it.title end
    return titles, raw
  end

  local function count(list, value)
    local n = 0
    for _, v in ipairs(list) do if v == value then n = n + 1 end end
    return n
  end

  it("finds the deploy, the metric spike, the log signature and the similar incident", function()
    local f = assert(run("INC-2", { dry_run = true }))
    local top = f.suspects[1]
    assert.equals("deployment", top.kind)
    assert.truthy(top.title:find("v2.35.0", 1, true))
    assert.truthy(top.reason and top.reason ~= "")
    assert.is_true(top.confidence >= 0.7)
    assert.truthy(f.logs[1].signature:find("PaymentGatewayTimeout", 1, true))
    assert.equals("INC-1", f.similar[1].reference)
    assert.truthy(f.similar[1].resolution:find("Rolled back", 1, true))
    if prometheus then
      assert.equals("error_rate", f.metrics[1].name)
      assert.truthy(f.metrics[1].text:find("error rate rose", 1, true))
    end
    assert.same({}, f.failed_sources)
    assert.same({ "checkout-service", "payments-api" }, f.services)
    assert.same({ "checkout-service", "payments-api" }, f.critical_services)
    assert.is_true(f.root_cause.identified)
    assert.equals("P0", f.priority)
  end)

  it("posts the investigating message and the findings once, even when run again", function()
    local dir = state_dir()
    local channel = channel_of("INC-2")
    local f = assert(run("INC-2", { dir = dir }))
    assert.equals(channel, f.delivery.posted.findings.channel)
    local msgs = messages(channel)
    assert.equals(2, #msgs)
    assert.truthy(msgs[1].text:find("fox is investigating INC-2", 1, true))
    assert.truthy(msgs[2].text:find("fox findings for INC-2", 1, true))
    assert.truthy(#msgs[2].blocks > 3)
    -- again, as after a restart or a duplicate delivery: nothing new in the channel
    local f2 = assert(run("INC-2", { dir = dir }))
    assert.is_true(f2.delivery.already.findings)
    assert.is_true(f2.delivery.already.investigating)
    assert.equals(2, #messages(channel))
    assert.equals(f.delivery.posted.findings.ts, f2.delivery.posted.findings.ts)
  end)

  it("writes the timeline entries with the write key and idempotency keys, once", function()
    local dir = state_dir()
    local f = assert(run("INC-2", { dir = dir, write = true }))
    assert.is_true(f.delivery.timeline.started)
    assert.is_true(f.delivery.timeline.root_cause)
    assert.is_true(f.delivery.timeline.complete)
    local titles, raw = timeline_titles("INC-2")
    assert.equals(1, count(titles, "Investigation started"))
    assert.equals(1, count(titles, "Root cause identified"))
    assert.equals(1, count(titles, "Investigation complete"))
    local keys = inc:control("GET", "/_fake/idempotency").keys
    local want = { ["fox:" .. raw.id .. ":started"] = true, ["fox:" .. raw.id .. ":root_cause"] = true,
                   ["fox:" .. raw.id .. ":complete"] = true }
    local found = 0
    for _, k in ipairs(keys) do
      for w in pairs(want) do
        if k == w or k:sub(-#w - 1) == ":" .. w then found = found + 1 end
      end
    end
    assert.is_true(found >= 3, "idempotency keys: " .. table.concat(keys, ", "))
    -- with the write key nothing is pinned
    assert.equals(0, #sl:control("GET", "/_fake/pins").pins)
    -- a second run in a fresh state directory: the API's idempotency keys still keep one of each
    assert(run("INC-2", { dir = state_dir(), write = true }))
    titles = timeline_titles("INC-2")
    assert.equals(1, count(titles, "Investigation complete"))
    -- the timeline's description of "complete" is the summary
    local posts = inc:requests({ path = "/v2/incident_timeline_items", method = "POST" })
    local complete
    for _, r in ipairs(posts) do if r.body.title == "Investigation complete" then complete = r.body end end
    assert.equals(f.summary, complete.description)
  end)

  it("writes \"Investigation started\" alongside the sources, not before them", function()
    -- the first timeline item answers after 1.5 s: the sources must not wait for it
    inc:faults({ { path = "/v2/incident_timeline_items", method = "POST", delay_ms = 1500, times = 1 } })
    loki:clear_requests()
    local f = assert(run("INC-2", { write = true }))
    assert.is_true(f.delivery.timeline.started)
    assert.is_true(f.delivery.timeline.complete)
    local posts = inc:requests({ path = "/v2/incident_timeline_items", method = "POST" })
    local started
    for _, r in ipairs(posts) do if r.body.title == "Investigation started" then started = r end end
    local answered = timerange.parse_time(started.time) + started.duration_ms / 1000
    local asked = timerange.parse_time(loki:requests({ path = "/loki/api/v1/query_range" })[1].time)
    assert.is_true(asked < answered, "Loki asked " .. (asked - answered) .. " s after the timeline item")
    -- and "complete" still comes after "started"
    local titles = timeline_titles("INC-2")
    assert.equals(1, count(titles, "Investigation started"))
    assert.equals(1, count(titles, "Investigation complete"))
    local complete
    for _, r in ipairs(posts) do if r.body.title == "Investigation complete" then complete = r end end
    assert.is_true(timerange.parse_time(complete.time) >= answered)
  end)

  it("says a root cause is identified only above the threshold", function()
    local f = assert(run("INC-2", { write = true, options = { root_cause_threshold = 0.99 } }))
    assert.is_false(f.root_cause.identified)
    local titles = timeline_titles("INC-2")
    assert.equals(0, count(titles, "Root cause identified"))
    assert.equals(1, count(titles, "Investigation complete"))
  end)

  it("pins the findings message when there is no write key, and incident.io shows it", function()
    local f = assert(run("INC-2"))
    assert.is_true(f.delivery.timeline.pinned)
    local pins = sl:control("GET", "/_fake/pins").pins
    assert.equals(1, #pins)
    assert.equals(f.delivery.posted.findings.ts, pins[1].ts)
    assert.equals(0, #inc:requests({ path = "/v2/incident_timeline_items", method = "POST" }))
    local titles
    local deadline = task.now() + 3
    repeat
      titles = timeline_titles("INC-2")
      if count(titles, "Pinned message from incidentfox") == 1 then break end
      task.sleep(0.05)
    until task.now() > deadline
    assert.equals(1, count(titles, "Pinned message from incidentfox"))
  end)

  it("adds no timeline entries when they are turned off", function()
    local f = assert(run("INC-2", { write = true, options = { timeline = { mode = "off" } } }))
    assert.same({}, f.delivery.timeline)
    assert.equals(0, #inc:requests({ path = "/v2/incident_timeline_items", method = "POST" }))
    assert.equals(0, #sl:control("GET", "/_fake/pins").pins)
  end)

  it("reports a failing source in the findings and carries on", function()
    local f = assert(run("INC-2", { sources = {
      elasticsearch = { url = "http://127.0.0.1:" .. fakes.closed_port() },
    } }))
    assert.equals(1, #f.failed_sources)
    assert.equals("elasticsearch", f.failed_sources[1].source)
    assert.truthy(f.suspects[1].title:find("v2.35.0", 1, true))
    local msgs = messages(channel_of("INC-2"))
    local last = msgs[#msgs]
    local context = {}
    for _, b in ipairs(last.blocks) do
      if b.type == "context" then
        for _, e in ipairs(b.elements) do context[#context + 1] = e.text end
      end
    end
    assert.truthy(table.concat(context, " "):find(":x: elasticsearch", 1, true))
  end)

  it("asks the sources at once: the run takes about as long as the slowest", function()
    -- two slow servers, each answering after 0.8 s
    local function slow_server()
      return assert(http.listen({ host = "127.0.0.1", port = 0, handler = function()
        task.sleep(0.8)
        return { status = 503, body = "slow and broken" }
      end }))
    end
    local es, lk = slow_server(), slow_server()
    local t0 = task.now()
    local f = assert(run("INC-2", { dry_run = true, options = { source_timeout = 5 }, sources = {
      elasticsearch = { url = "http://127.0.0.1:" .. es.port },
      loki = { url = "http://127.0.0.1:" .. lk.port },
    } }))
    local took = task.now() - t0
    es:close()
    lk:close()
    local sum, max = 0, 0
    for _, s in ipairs(f.sources) do
      sum = sum + (s.elapsed or 0)
      max = math.max(max, s.elapsed or 0)
    end
    local desc = {}
    for _, s in ipairs(f.sources) do
      desc[#desc + 1] = s.source .. "=" .. string.format("%.2f", s.elapsed or -1)
        .. (s.error and (" " .. s.error) or "")
    end
    desc = table.concat(desc, "; ")
    assert.is_true(max >= 0.75, desc)
    assert.is_true(sum >= 1.5, desc)   -- run one after the other they would take this long
    assert.is_true(took < max + 0.6, string.format("took %.2f s, slowest source %.2f s", took, max))
  end)

  it("gives up on a source at its timeout", function()
    local hang = assert(http.listen({ host = "127.0.0.1", port = 0, handler = function()
      task.sleep(10)
      return { status = 200, body = "{}" }
    end }))
    local t0 = task.now()
    local f = assert(run("INC-2", { dry_run = true, options = { source_timeout = 0.5 }, sources = {
      elasticsearch = { url = "http://127.0.0.1:" .. hang.port },
    } }))
    hang:close()
    assert.is_true(task.now() - t0 < 3)
    assert.equals("elasticsearch", f.failed_sources[1].source)
  end)

  it("posts nothing and writes nothing in a dry run", function()
    local dir = state_dir()
    local f = assert(run("INC-2", { dry_run = true, write = true, dir = dir }))
    assert.is_true(f.delivery.dry_run)
    assert.same({}, f.delivery.posted)
    assert.equals(0, #sl:control("GET", "/_fake/messages").messages)
    assert.equals(0, #inc:requests({ path = "/v2/incident_timeline_items", method = "POST" }))
    assert.is_nil(io.open(dir .. "/fox.db", "rb"))
  end)

  it("waits for the incident's channel when incident.io has not made it yet", function()
    local created = inc:create_incident({ name = "payments-api errors after deploy", severity = "High",
      services = { "payments-api" }, slack_channel_id = "" })
    task.spawn(function()
      task.sleep(0.25)
      inc:update_incident(created.id, { slack_channel_id = "C0LATE0001" })
      sl:control("POST", "/_fake/channels", { id = "C0LATE0001", name = "inc-late" })
    end)
    local f = assert(run(created.reference, { options = { channel_retry_delay = 0.1, channel_retries = 6 } }))
    assert.equals("C0LATE0001", f.delivery.posted.findings.channel)
    assert.equals(2, #messages("C0LATE0001"))
    -- fetched once, then re-fetched until the channel was there
    local fetches = #inc:requests({ path = "/v2/incidents/" .. created.reference:match("%d+") })
      + #inc:requests({ path = "/v2/incidents/" .. created.id })
    assert.is_true(fetches >= 3, fetches .. " fetches")
  end)

  it("reports that it could not post when the channel never appears", function()
    local created = inc:create_incident({ name = "no channel", slack_channel_id = "" })
    local f = assert(run(created.reference, { options = { channel_retry_delay = 0.05, channel_retries = 2 } }))
    assert.is_nil(f.delivery.posted.findings)
    assert.truthy(table.concat(f.delivery.errors, " "):find("no Slack channel", 1, true))
  end)

  it("adds an AI summary marked as AI-written when it is on", function()
    local f = assert(run("INC-2", { options = { ai = { enabled = true, url = ai.url .. "/v1", model = "fox-test",
                                                         key = "sk-test-key" } } }))
    assert.truthy(f.ai_summary)
    assert.is_true(f.ai_summary.ai_written)
    assert.equals("fox-test", f.ai_summary.model)
    assert.truthy(f.ai_summary.text:find("v2.35.0", 1, true))
    -- the model got the custom context and the evidence
    local req = ai:requests({ path = "/v1/chat/completions" })[1]
    assert.equals("fox-test", req.body.model)
    assert.truthy(req.body.messages[2].content:find(CONTEXT, 1, true))
    assert.truthy(req.body.messages[2].content:find("v2.35.0", 1, true))
    local msgs = messages(channel_of("INC-2"))
    local all = {}
    for _, b in ipairs(msgs[#msgs].blocks) do if b.text then all[#all + 1] = b.text.text end end
    assert.truthy(table.concat(all, "\n"):find("*AI summary* _(AI-written, fox-test", 1, true))
  end)

  it("asks no model when the AI summary is off (the default)", function()
    local f = assert(run("INC-2", { dry_run = true }))
    assert.is_nil(f.ai_summary)
    assert.equals(0, #ai:requests({}))
  end)

  it("keeps the rest of the findings when the AI step fails", function()
    ai:faults({ { path = "/v1/chat/completions", status = 500 } })
    local f = assert(run("INC-2", { options = {
      ai = { enabled = true, url = ai.url .. "/v1", key = "sk-test-key" } } }))
    assert.is_nil(f.ai_summary)
    assert.truthy(f.ai_error:find("HTTP 500", 1, true))
    assert.truthy(f.suspects[1].title:find("v2.35.0", 1, true))
    assert.truthy(f.delivery.posted.findings)
    -- a wrong key and an unreachable endpoint too
    ai:clear_faults()
    local f2 = assert(run("INC-2", { dry_run = true, options = {
      ai = { enabled = true, url = ai.url, key = "sk-wrong" } } }))
    assert.truthy(f2.ai_error:find("rejected the key", 1, true))
    local f3 = assert(run("INC-2", { dry_run = true, options = { ai = { enabled = true,
      url = "http://127.0.0.1:" .. fakes.closed_port(), key = "k" } } }))
    assert.truthy(f3.ai_error:find("unreachable", 1, true))
    assert.equals(#f.suspects, #f3.suspects)
  end)

  it("uses the daemon's durable record when it has one", function()
    local recorded = {}
    local ctx = {
      client = incidentio.new({ base_url = inc.url, api_key = fakes.KEYS.viewer }),
      options = { custom_context = CONTEXT, sources = sources(), timeline = { mode = "off" } },
      slack = slack.new({ base_url = sl.url .. "/api", token = "xoxb-test-token" }),
      once = function(key, fn)
        if recorded[key] then return recorded[key], true end
        local res, err = fn()
        if res then recorded[key] = res end
        return res, err
      end,
    }
    assert(playbook.run("INC-2", ctx))
    assert(playbook.run("INC-2", ctx))
    assert.truthy(recorded.investigating)
    assert.truthy(recorded.findings)
    assert.equals(2, #messages(channel_of("INC-2")))
  end)

  it("applies the team's severity map, known services and custom context services", function()
    local severity = require("policies.severity")
    local saved = severity.priorities
    local f = assert(run("INC-2", { dry_run = true, options = {
      severity = { priorities = { critical = "P1" } },
      known_services = { ["card-gateway"] = { aliases = { "card gateway" } } },
      custom_context = CONTEXT .. " The ledger-db is critical too.",
    } }))
    severity.priorities = saved
    assert.equals("P1", f.priority)
    -- "card-gateway" is named in the summary's error line
    assert.same({ "card-gateway", "checkout-service", "payments-api" }, f.services)
    -- the example severity file loads as a setting too
    local example = dofile("examples/policies/severity.lua")
    severity.configure(example)
    assert.equals("P1", severity.to_priority({ name = "SEV 1" }))
    assert.equals("P4", severity.to_priority({ name = "Cosmetic" }))
    assert.equals("P0", severity.to_priority({ name = "Critical" }))
    severity.priorities = saved
    severity.ladder = { "P0", "P1", "P2", "P3" }
  end)

  it("reads services from Service: lines and the custom context", function()
    local info = playbook.extract_context({
      name = "Checkout is slow", created_at = "2025-01-01T00:00:00Z",
      summary = "Service: billing-worker\nSomething about the ledger-db and search-api.",
      custom_field_entries = {},
    }, playbook.options({ options = { custom_context = "Our critical services are ledger-db and billing-worker." } }))
    assert.same({ "billing-worker", "checkout-service", "ledger-db", "search" }, info.services)
    assert.same({ "ledger-db", "billing-worker" }, info.context.critical_services)
  end)

  it("runs the example custom playbook built from the default's steps", function()
    local custom = dofile("examples/playbooks/custom_investigate.lua")
    local status_page = assert(http.listen({ host = "127.0.0.1", port = 0, handler = function()
      return { status = 200, headers = { ["Content-Type"] = "application/json" },
               body = '{"status": {"indicator": "major", "description": "Partial System Outage"}}' }
    end }))
    sl:control("POST", "/_fake/channels", { id = "C0PAYTEAM", name = "payments-team" })
    local dir = state_dir()
    local ctx = {
      client = incidentio.new({ base_url = inc.url, api_key = fakes.KEYS.viewer }),
      config = { state_dir = dir },
      options = { custom_context = CONTEXT, sources = sources(), team_channel = "C0PAYTEAM",
                  gateway_status_url = "http://127.0.0.1:" .. status_page.port .. "/api/v2/status.json" },
      slack = slack.new({ base_url = sl.url .. "/api", token = "xoxb-test-token" }),
    }
    local f = assert(custom.run("INC-2", ctx))
    assert(custom.run("INC-2", ctx))
    status_page:close()
    assert.equals("The card gateway's status page says: Partial System Outage.", f.next_steps[1])
    assert.truthy(f.suspects[1].title:find("v2.35.0", 1, true))
    assert.equals(1, #messages("C0PAYTEAM"))
    assert.equals(2, #messages(channel_of("INC-2")))
  end)

  it("hands the sources that read it the incident as fetched, then keeps only a few of its fields", function()
    local client = incidentio.new({ base_url = inc.url, api_key = fakes.KEYS.viewer })
    local inv = assert(playbook.prepare("INC-2", { client = client, dry_run = true, options = { sources = {} } }))
    local full = inv.raw
    assert.is_table(full.incident_status)
    local seen = {}
    local function probe(name, reads)
      return { name = name, timeout = 2, module = { name = name, uses_raw_incident = reads, query = function(ctx)
        seen[name] = ctx.raw or false
        return { ok = true, items = {}, summary = name }
      end } }
    end
    inv.plan = { probe("reader", true), probe("other") }
    playbook.gather(inv)
    assert.equals(full, seen.reader)
    assert.is_false(seen.other)
    assert.is_nil(inv.base.raw)
    for k, v in pairs(inv.raw) do
      assert.truthy(table.concat(playbook.RAW_KEPT, " "):find(k, 1, true), k)
      assert.equals(full[k], v)
    end
    assert.equals(full.id, inv.raw.id)
    assert.equals(full.slack_channel_id, inv.raw.slack_channel_id)
    assert.is_nil(inv.raw.incident_status)
    assert.is_nil(inv.raw.custom_field_entries)
    assert.equals("INC-2", inv.raw.reference)
  end)

  it("fails with an actionable error for an incident that does not exist", function()
    local f, err = run("INC-999", { dry_run = true })
    assert.is_nil(f)
    assert.equals("not_found", err.kind)
    assert.truthy(tostring(err):find("INC-999", 1, true))
  end)
end)
