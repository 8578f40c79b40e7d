-- Findings: one structured result built from what the sources returned.
local findings = require("fox.findings")
local parse = require("policies.parse")
local cc = require("fox.custom_context")
local timerange = require("fox.timerange")

local CREATED = timerange.parse_time("2025-06-02T10:20:00Z")

local function incident()
  return {
    id = "01JV571CDA0CBY35XV118DP6GY", reference = "INC-2", name = "Elevated 5xx on payments-api checkout",
    created_at = "2025-06-02T10:20:00Z", permalink = "https://app.incident.io/acme/incidents/2",
    severity = { name = "High", rank = 3 }, status = { name = "Investigating", category = "live" },
    priority = "P1", services = { "payments-api" }, slack_channel_id = "C0INC2",
  }
end

local function results()
  return {
    { ok = true, source = "prometheus", elapsed = 0.4, summary = "1 of 3 series changed", items = {
      { service = "payments-api", name = "error_rate", kind = "errors", unit = "ratio", status = "changed",
        change = { type = "step", direction = "up", at = CREATED - 180, before = 0.005, after = 0.072, ratio = 14.4 } },
      { service = "payments-api", name = "latency_p99", kind = "latency", unit = "s", status = "changed",
        change = { type = "step", direction = "up", at = CREATED - 170, before = 0.25, after = 2.4, ratio = 9.6 } },
      { service = "payments-api", name = "saturation", status = "steady" },
    } },
    { ok = true, source = "loki", elapsed = 0.2, items = {
      { service = "payments-api", signature = "PaymentGatewayTimeout: upstream <n> from card-gateway", count = 412,
        first_seen = CREATED - 175, example = "PaymentGatewayTimeout: upstream 504 from card-gateway (5000ms)" },
      { service = "payments-api", signature = "retrying request <id>", count = 1500, first_seen = CREATED - 86400 },
    } },
    { ok = false, source = "elasticsearch", error = "elasticsearch: HTTP 401 from http://es:9200/_search\nstack..." },
    { ok = true, source = "similar", items = {
      { incident = { reference = "INC-1", name = "payments-api 504s after deploy", status = "Closed",
                     permalink = "https://app.incident.io/acme/incidents/1", created_at = "2025-05-01T09:00:00Z" },
        score = 0.82, resolution = { summary = "Rolled back payments-api to v2.28.4", lead = { name = "Marcus Chen" },
                                     postmortem_url = "https://notion.so/pm-1" } },
      { incident = { reference = "INC-9", name = "gateway timeouts" }, score = 0.55 },
    } },
  }
end

local function suspects()
  return {
    { title = "Deploy payments-api v2.35.0", kind = "deploy", service = "payments-api", at = CREATED - 360,
      url = "https://github.com/acme/payments-api/deployments/1", author = "marcus", confidence = 0.78,
      reason = "deployed 6 min before the incident to the affected service; errors rose 3 min later" },
    { title = "PR #4512 bump gateway client", kind = "pull_request", service = "payments-api", at = CREATED - 7200,
      confidence = 0.35, reason = "merged 2 h before the incident" },
  }
end

local function build(overrides)
  local input = {
    incident = incident(), services = { "payments-api" }, results = results(), suspects = suspects(),
    parsed = parse.description("Service: payments-api\nError: PaymentGatewayTimeout: upstream 504\n"
      .. "Runbook: https://runbooks.acme.example/payments/rollback\nDashboard: https://grafana.acme.example/d/pay"),
    context = cc.parse("Our critical services are payments-api and user-auth. "
      .. "High severity incidents automatically page the SRE on-call team."),
    now = CREATED + 60, elapsed = 1.5,
  }
  for k, v in pairs(overrides or {}) do input[k] = v end
  return findings.build(input)
end

describe("findings", function()
  it("gathers incident, suspects, metrics, logs, similar incidents and failed sources", function()
    local f = build()
    assert.equals(1, f.version)
    assert.equals("INC-2", f.incident.reference)
    assert.equals("P1", f.priority)
    assert.same({ "payments-api" }, f.services)
    assert.same({ "payments-api" }, f.critical_services)
    -- suspects keep the suspects policy's order, with rank and confidence
    assert.equals(2, #f.suspects)
    assert.equals(1, f.suspects[1].rank)
    assert.equals("Deploy payments-api v2.35.0", f.suspects[1].title)
    assert.equals(0.78, f.suspects[1].confidence)
    assert.truthy(f.suspects[1].reason:find("6 min before", 1, true))
    -- changed series only, biggest change first, in words
    assert.equals(2, #f.metrics)
    assert.equals("error_rate", f.metrics[1].name)
    assert.equals("payments-api error rate rose from 0.5% to 7.2% (14x) at 10:17 UTC (3 min before the incident)",
      f.metrics[1].text)
    -- a signature new around the incident first, then the most frequent
    assert.equals(2, #f.logs)
    assert.equals("PaymentGatewayTimeout: upstream <n> from card-gateway", f.logs[1].signature)
    assert.is_true(f.logs[1].new)
    assert.equals("retrying request <id>", f.logs[2].signature)
    assert.equals(1500, f.logs[2].count)
    -- similar incidents, best first, with how they were resolved
    assert.equals("INC-1", f.similar[1].reference)
    assert.equals("Rolled back payments-api to v2.28.4", f.similar[1].resolution)
    assert.equals("Marcus Chen", f.similar[1].lead)
    assert.equals("https://notion.so/pm-1", f.similar[1].postmortem_url)
    -- the failed source, its error cut to one line
    assert.same({ { source = "elasticsearch", error = "elasticsearch: HTTP 401 from http://es:9200/_search" } },
      f.failed_sources)
    assert.equals(4, #f.sources)
    assert.is_false(f.sources[3].ok)
    -- the description's errors and links
    assert.same({ "PaymentGatewayTimeout: upstream 504" }, f.errors)
    assert.equals("runbook", f.links[1].kind)
    assert.equals("dashboard", f.links[2].kind)
  end)

  it("raises the confidence when metrics, logs and history agree with the top suspect", function()
    local f = build()
    -- 0.78 + 0.1 (metric shift after the deploy) + 0.05 (new signature) + 0.05 (similar)
    -- - 0.05 (one source failed)
    assert.equals(0.93, f.confidence)
    assert.equals("high", f.confidence_label)
    assert.is_true(f.root_cause.identified)
    assert.equals("Deploy payments-api v2.35.0", f.root_cause.suspect.title)
  end)

  it("identifies a root cause only above the configured threshold", function()
    local f = build({ options = { root_cause_threshold = 0.95 } })
    assert.is_false(f.root_cause.identified)
    assert.is_nil(f.root_cause.suspect)
    assert.equals(0.95, f.root_cause.threshold)
  end)

  it("has low confidence and says so when nothing points anywhere", function()
    local f = build({ results = {}, suspects = {} })
    assert.equals(0.1, f.confidence)
    assert.equals("low", f.confidence_label)
    assert.is_false(f.root_cause.identified)
    assert.truthy(f.summary:find("No suspect change found", 1, true))
    local found = false
    for _, s in ipairs(f.next_steps) do
      found = found or s:find("no change, metric shift or new error", 1, true) ~= nil
    end
    assert.is_true(found)
  end)

  it("writes a summary and next steps a responder can act on", function()
    local f = build()
    assert.truthy(f.summary:find("^INC%-2 %(payments%-api%): Elevated 5xx on payments%-api checkout"))
    assert.truthy(f.summary:find("Most likely cause: Deploy payments-api v2.35.0, 6 min before the incident "
      .. "(confidence 78%).", 1, true))
    assert.truthy(f.summary:find("Similar: INC-1", 1, true))
    assert.truthy(f.summary:find("Could not query: elasticsearch.", 1, true))
    assert.truthy(f.next_steps[1]:find("^Consider rolling back Deploy payments%-api v2%.35%.0"))
    assert.equals("Last time (INC-1): Rolled back payments-api to v2.28.4.", f.next_steps[2])
    assert.equals("Follow the runbook: https://runbooks.acme.example/payments/rollback", f.next_steps[3])
    local rule, check = false, false
    for _, s in ipairs(f.next_steps) do
      rule = rule or s == "Team rule: High severity incidents automatically page the SRE on-call team."
      check = check or s == "Check elasticsearch by hand: fox could not query it."
    end
    assert.is_true(rule)
    assert.is_true(check)
  end)

  it("caps every list and tolerates odd source items", function()
    local many = {}
    for i = 1, 40 do many[i] = { title = "change " .. i, confidence = 1 - i / 100 } end
    local items = { "junk", 42, {}, { signature = "x" } }
    for i = 1, 30 do items[#items + 1] = { signature = "sig " .. i, count = i } end
    local f = build({ suspects = many, results = {
      { ok = true, source = "loki", items = items },
      { ok = true, source = "prometheus", items = { "junk", { status = "changed" }, { change = { at = "bad" } } } },
      { ok = true, source = "similar", items = { { nothing = true }, { reference = "INC-5", score = "0.7" } } },
      "not a result",
    } })
    assert.equals(findings.defaults.max_suspects, #f.suspects)
    assert.equals(findings.defaults.max_logs, #f.logs)
    assert.equals("sig 30", f.logs[1].signature)
    assert.equals(1, #f.metrics)
    assert.equals("INC-5", f.similar[1].reference)
    assert.equals(0.7, f.similar[1].score)
  end)

  it("adds an AI summary apart from fox's own, marked as AI-written", function()
    local f = build()
    local own = f.summary
    findings.add_ai_summary(f, "The deploy broke connection reuse.", "gpt-test")
    assert.same({ text = "The deploy broke connection reuse.", model = "gpt-test", ai_written = true }, f.ai_summary)
    assert.equals(own, f.summary)
    findings.add_ai_summary(f, "", "x")
    assert.equals("The deploy broke connection reuse.", f.ai_summary.text)
  end)

  it("formats times and durations", function()
    assert.equals("10:20 UTC", findings.clock(CREATED))
    assert.equals("6 min before the incident", findings.relative(CREATED - 360, CREATED))
    assert.equals("2 h 5 min after the incident started", findings.relative(CREATED + 7500, "2025-06-02T10:20:00Z"))
    assert.equals("at the incident start", findings.relative(CREATED + 10, CREATED))
    assert.equals("3 days", findings.duration(3 * 86400))
    assert.equals("7.2%", findings.format_value(0.072, "ratio"))
    assert.equals("2.4s", findings.format_value(2.4, "s"))
  end)
end)
