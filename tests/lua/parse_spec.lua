-- The parse policy over descriptions as responders really write them: templates, Windows
-- line endings, nested bullets, unicode, HTML pasted from a form, huge text, no
-- structure at all, and a team's own rules.
local parse = require("policies.parse")
local json = require("fox.json")
local task = require("fox.task")

local TEMPLATE = table.concat({
  "Customers are seeing card payments fail at checkout since 23:53 UTC.",
  "",
  "Service: payments-api",
  "Error: PaymentGatewayTimeout: upstream 504 from acquirer-eu (POST /v3/authorisations, 5000ms)",
  "Environment: production (eu-west-1)",
  "Customer impact: ~18% of card authorisations failing",
  "",
  "**Impact**",
  "- ~18% of card authorisations failing",
  "- Checkout conversion down 23%",
  "",
  "**Links**",
  "- Dashboard: https://grafana.acme-pay.example/d/payments-api-overview/payments-api?orgId=1",
  "- Runbook: https://runbooks.acme-pay.example/payments-api/gateway-timeouts",
  "- PagerDuty: https://acme-pay.pagerduty.com/incidents/Q3PAY7X2LM9K",
  "",
  "```",
  "PaymentGatewayTimeout: upstream 504 from acquirer-eu after 5000ms",
  "    at GatewayClient.authorise (src/gateway/client.ts:214:13)",
  "    at async AuthorisationService.run (src/authorisation/service.ts:88:22)",
  "```",
}, "\n")

local function urls_of_kind(p, kind)
  local out = {}
  for _, u in ipairs(p.urls) do
    if u.kind == kind then out[#out + 1] = u.url end
  end
  return out
end

describe("parse policy", function()
  it("reads Key: value lines, sections, links and code blocks of a template", function()
    local p = parse.description(TEMPLATE, { reference_time = 1700000000 })
    assert.equals("payments-api", p.fields.service)
    assert.same({ "payments-api" }, p.services)
    assert.equals("PaymentGatewayTimeout: upstream 504 from acquirer-eu (POST /v3/authorisations, 5000ms)",
      p.fields.error)
    assert.equals("production (eu-west-1)", p.fields.region)
    assert.equals("eu-west-1", p.fields.region_code)
    assert.equals("~18% of card authorisations failing", p.fields.customer_impact)
    assert.equals("~18% of card authorisations failing; Checkout conversion down 23%", p.fields.impact)
    assert.equals("https://runbooks.acme-pay.example/payments-api/gateway-timeouts", p.fields.runbook)
    assert.equals("https://acme-pay.pagerduty.com/incidents/Q3PAY7X2LM9K", p.fields.pagerduty)
    assert.same({ "https://grafana.acme-pay.example/d/payments-api-overview/payments-api?orgId=1" },
      urls_of_kind(p, "dashboard"))
    assert.same({ "https://runbooks.acme-pay.example/payments-api/gateway-timeouts" }, urls_of_kind(p, "runbook"))
    assert.same({ "https://acme-pay.pagerduty.com/incidents/Q3PAY7X2LM9K" }, urls_of_kind(p, "pagerduty"))
    assert.equals("grafana", p.links.dashboards[1].provider)
    -- the fenced block is a stack trace; its exception line is an error too
    assert.equals(1, #p.code_blocks)
    assert.equals("stack_trace", p.code_blocks[1].kind)
    assert.equals(1, #p.stack_traces)
    assert.same({
      "PaymentGatewayTimeout: upstream 504 from acquirer-eu (POST /v3/authorisations, 5000ms)",
      "PaymentGatewayTimeout: upstream 504 from acquirer-eu after 5000ms",
    }, p.errors)
    -- "**Impact**" and "**Links**" act as headings
    assert.equals("Impact", p.sections[1].title)
    assert.same({ "~18% of card authorisations failing", "Checkout conversion down 23%" }, p.sections[1].bullets)
    assert.equals("Links", p.sections[2].title)
    -- "since 23:53 UTC" in the text gives the start, on the reference day or the one before
    assert.equals(1700000000 - 1700000000 % 86400 + 23 * 3600 + 53 * 60 - 86400, p.fields.started_at)
    -- the plain text has no markdown marks
    assert.is_nil(p.text:find("**", 1, true))
    assert.truthy(p.text:find("Customers are seeing card payments fail", 1, true))
  end)

  it("gives the same answer with Windows and old Mac line endings", function()
    local unix = parse.description(TEMPLATE)
    local crlf = parse.description((TEMPLATE:gsub("\n", "\r\n")))
    local cr = parse.description((TEMPLATE:gsub("\n", "\r")))
    for _, p in ipairs({ crlf, cr }) do
      assert.same(unix.fields, p.fields)
      assert.same(unix.errors, p.errors)
      assert.same(unix.urls, p.urls)
      assert.same(unix.bullets, p.bullets)
      assert.is_nil(p.fields.service:find("\r", 1, true))
    end
  end)

  it("accepts the many ways people write keys", function()
    local p = parse.description(table.concat({
      "**Services:** checkout-service, payments-api and user-auth",
      "__Impact__: checkout down",
      "* Started at: 2025-03-04T10:42:00Z",
      "1. Customer-facing: yes, all EU customers",
      "Run book - see below",
      "Affected Service(s)：search",          -- full-width colon
      "PD: https://acme.pagerduty.com/incidents/PX1",
      "Grafana: https://metrics.internal/d/abc/overview",
      "https://example.com/not-a-key: value", -- a URL is not a key
      "Error_Code: E1234",
    }, "\n"))
    assert.equals("checkout-service, payments-api and user-auth", p.fields.service)
    assert.equals("checkout down", p.fields.impact)
    assert.equals("2025-03-04T10:42:00Z", p.fields.started)
    assert.equals(1741084920, p.fields.started_at)
    assert.equals("yes, all EU customers", p.fields.customer_impact)
    assert.equals("https://acme.pagerduty.com/incidents/PX1", p.fields.pagerduty)
    assert.equals("dashboard", p.urls[2].kind) -- labelled by its key, whatever the host
    assert.is_nil(p.fields.runbook)
    local keys = {}
    for _, kv in ipairs(p.pairs) do keys[#keys + 1] = kv.key end
    assert.same({ "Services", "Impact", "Started at", "Customer-facing", "Affected Service(s)", "PD",
                  "Grafana", "Error_Code" }, keys)
    assert.same({ "checkout-service", "payments-api", "user-auth", "search" }, p.services)
  end)

  it("classifies URLs by host and path, and labels win over hosts", function()
    local p = parse.description(table.concat({
      "See [the dashboard](https://app.datadoghq.com/dashboard/abc-123/payments) and",
      "<https://wiki.acme.example/x/ops|ops wiki> plus https://github.com/acme/payments/pull/4512.",
      "Deploy: https://github.com/acme/payments/commit/9f2c1e7a (reverted in "
        .. "https://github.com/acme/payments/pull/4513).",
      "Runbook: https://docs.google.com/document/d/1AbC/edit",
      "Errors: https://sentry.io/organizations/acme/issues/123/",
      "(https://acme.grafana.net/d/xyz/latency?from=now-1h).",
    }, "\n"))
    local by_url = {}
    for _, u in ipairs(p.urls) do by_url[u.url] = u end
    assert.equals("dashboard", by_url["https://app.datadoghq.com/dashboard/abc-123/payments"].kind)
    assert.equals("datadog", by_url["https://app.datadoghq.com/dashboard/abc-123/payments"].provider)
    assert.equals("the dashboard", by_url["https://app.datadoghq.com/dashboard/abc-123/payments"].label)
    assert.equals("runbook", by_url["https://wiki.acme.example/x/ops"].kind)
    assert.equals("ops wiki", by_url["https://wiki.acme.example/x/ops"].label)
    local pr = by_url["https://github.com/acme/payments/pull/4512"]
    assert.equals("github", pr.kind)
    assert.same({ owner = "acme", repo = "payments", type = "pull_request", number = 4512 }, pr.github)
    assert.equals("commit", by_url["https://github.com/acme/payments/commit/9f2c1e7a"].github.type)
    assert.equals("9f2c1e7a", by_url["https://github.com/acme/payments/commit/9f2c1e7a"].github.sha)
    assert.truthy(by_url["https://github.com/acme/payments/pull/4513"])
    assert.equals("runbook", by_url["https://docs.google.com/document/d/1AbC/edit"].kind)
    assert.equals("other", by_url["https://sentry.io/organizations/acme/issues/123/"].kind)
    assert.equals("sentry", by_url["https://sentry.io/organizations/acme/issues/123/"].provider)
    -- trailing ")." of the sentence is not part of the URL
    assert.equals("dashboard", by_url["https://acme.grafana.net/d/xyz/latency?from=now-1h"].kind)
    assert.equals(3, #p.links.github)
  end)

  it("keeps nested bullets with their levels, whatever the indentation", function()
    local p = parse.description(table.concat({
      "## Timeline",
      "- 10:02 alert fired",
      "  - PagerDuty paged the on-call",
      "    * escalated after 5 min",
      "- 10:10 rollback started",
      "\t+ tab-indented child",
      "1. numbered",
      "2) also numbered",
      "---",
    }, "\n"))
    local levels, texts = {}, {}
    for _, b in ipairs(p.bullets) do
      levels[#levels + 1] = b.level
      texts[#texts + 1] = b.text
    end
    assert.same({ 1, 2, 3, 1, 2, 1, 1 }, levels)
    assert.equals("escalated after 5 min", texts[3])
    assert.equals("Timeline", p.bullets[1].section)
    assert.equals(7, #p.sections[1].bullets)
  end)

  it("handles unicode: accents, emoji, CJK, non-breaking spaces and invalid bytes", function()
    local p = parse.description("🔥 Paiements échoués 支付失败\nService:\xC2\xA0payments-api\n"
      .. "Impact: clients à Zürich 🇨🇭\nError: `Erreur: délai dépassé`\nbad bytes \xff\xfe here")
    assert.equals("payments-api", p.fields.service)
    assert.equals("clients à Zürich 🇨🇭", p.fields.impact)
    assert.equals("Erreur: délai dépassé", p.fields.error)
    assert.truthy(utf8.len(p.text))
    assert.truthy(p.text:find("bad bytes ?? here", 1, true))
    -- everything can be sent as JSON
    assert.truthy(json.encode(p))
  end)

  it("reads HTML pasted from a form or an email", function()
    local p = parse.description([[
<p><strong>Service:</strong> checkout-service</p>
<p>Error: <code>TypeError: Cannot read properties of undefined (reading 'lineItems')</code></p>
<h3>Impact</h3><ul><li>44% of cart views fail</li><li>Only saved carts &amp; guests</li></ul>
<p>Dashboard: <a href="https://grafana.acme.example/d/cart/checkout">cart dashboard</a><br>
Runbook: <a href='https://runbooks.acme.example/checkout/500s'>https://runbooks.acme.example/checkout/500s</a></p>
<pre><code>TypeError: Cannot read properties of undefined (reading 'lineItems')
    at summarizeCart (src/cart/summary.ts:31:24)
    at CartController.show (src/cart/controller.ts:118:19)</code></pre>
<script>alert("x")</script><!-- internal note -->]])
    assert.equals("checkout-service", p.fields.service)
    assert.equals("TypeError: Cannot read properties of undefined (reading 'lineItems')", p.fields.error)
    assert.equals("44% of cart views fail; Only saved carts & guests", p.fields.impact)
    assert.same({ "https://grafana.acme.example/d/cart/checkout" }, urls_of_kind(p, "dashboard"))
    assert.equals("cart dashboard", p.links.dashboards[1].label)
    assert.same({ "https://runbooks.acme.example/checkout/500s" }, urls_of_kind(p, "runbook"))
    assert.equals("stack_trace", p.code_blocks[1].kind)
    assert.is_nil(p.text:find("<", 1, true))
    assert.is_nil(p.text:find("alert", 1, true))
    assert.is_nil(p.text:find("internal note", 1, true))
  end)

  it("finds errors in prose and code spans when there is no structure at all", function()
    local p = parse.description("Stock reservations fail intermittently with deadlocks; 2% of orders "
      .. "cannot reserve stock. The error we see in `inventory-api` logs is "
      .. "`ERROR: deadlock detected (SQLSTATE 40P01) in ReserveStock`. Users are unhappy.")
    assert.same({}, p.fields)
    assert.same({}, p.services)
    assert.same({ "ERROR: deadlock detected (SQLSTATE 40P01) in ReserveStock" }, p.errors)
    assert.same({}, p.sections)
    assert.same({}, p.urls)
  end)

  it("classifies fenced blocks: traces of several languages, error output, plain code", function()
    local p = parse.description(table.concat({
      "```python", "Traceback (most recent call last):", '  File "app.py", line 12, in handler',
      "KeyError: 'user_id'", "```",
      "~~~", "goroutine 1 [running]:", "main.main()", "\t/src/main.go:42 +0x1d", "~~~",
      "```", "$ kubectl get pods", "payments-api-7f9c   0/1   CrashLoopBackOff",
      "ERROR: back-off restarting failed container", "```",
      "```yaml", "replicas: 3", "image: payments:v2", "```",
      "```", "unterminated block at the end: Error: never closed",
    }, "\n"))
    local kinds = {}
    for _, b in ipairs(p.code_blocks) do kinds[#kinds + 1] = b.kind end
    assert.same({ "stack_trace", "stack_trace", "error", "code", "error" }, kinds)
    assert.equals("python", p.code_blocks[1].lang)
    assert.equals("KeyError: 'user_id'", p.errors[1])
    assert.equals("ERROR: back-off restarting failed container", p.errors[3])
    assert.equals(2, #p.stack_traces)
  end)

  it("never breaks: empty, nil, binary, huge and hostile input", function()
    for _, input in ipairs({ "", nil, 42, {}, "\0\0\0", ("\255"):rep(1000), "```", "**", "- ", "#",
                             ("[(" .. "<"):rep(5000), ("a"):rep(100000), ("`"):rep(3000) }) do
      local p = parse.description(input)
      assert.is_table(p.fields)
      assert.is_table(p.urls)
      assert.is_string(p.text)
      assert.same({}, p.rule_errors)
    end
  end)

  it("parses a huge description quickly and says it was cut", function()
    local chunk = TEMPLATE .. "\n- " .. ("words and more words "):rep(40) .. "\n"
    local parts = {}
    for i = 1, 600 do parts[i] = chunk end
    local big = table.concat(parts) .. ("x"):rep(50000) .. "\n" .. (" "):rep(100000) .. "#\n"
    local t0 = task.now()
    local p = parse.description(big)
    local took = task.now() - t0
    assert.is_true(p.truncated)
    assert.equals("payments-api", p.fields.service)
    assert.is_true(#p.bullets <= parse.max_items)
    assert.is_true(took < 2, "took " .. took .. " s")
    -- pathological lines (a line of spaces, of brackets) stay fast too
    t0 = task.now()
    parse.description(("# " .. (" "):rep(200000)) .. "\n" .. ("[x"):rep(100000) .. "\n" .. ("<a "):rep(60000))
    assert.is_true(task.now() - t0 < 2)
  end)

  it("applies a team's rules: keys, URL kinds, section fields, patterns and an extractor", function()
    local rules = {
      keys = { owner = { "owner", "owning team" }, ticket = { "jira" } },
      urls = { { kind = "runbook", provider = "notion", host = "notion%.so$" } },
      sections = { { title = "^mitigation", field = "mitigation" } },
      patterns = { { field = "tickets", pattern = "%f[%w]OPS%-%d+", all = true } },
      extract = function(result, text)
        if text:find("customer-facing", 1, true) then result.fields.customer_facing = true end
      end,
    }
    local p = parse.description(table.concat({
      "Owning team: payments-core", "Jira: OPS-1234", "Also OPS-99 and OPS-1234 again.",
      "Playbook notes: https://www.notion.so/acme/payments-rollback-1a2b",
      "## Mitigation", "Rolled back to v2.28.4", "This was customer-facing.",
    }, "\n"), { rules = rules })
    assert.equals("payments-core", p.fields.owner)
    assert.equals("OPS-1234", p.fields.ticket)
    assert.same({ "OPS-1234", "OPS-99" }, p.fields.tickets)
    assert.equals("runbook", p.urls[1].kind)
    assert.equals("notion", p.urls[1].provider)
    assert.equals("Rolled back to v2.28.4\nThis was customer-facing.", p.fields.mitigation)
    assert.is_true(p.fields.customer_facing)
    -- without the rules none of that is there, and the built-in policy is unchanged
    local plain = parse.description("Owning team: payments-core\nJira: OPS-1")
    assert.is_nil(plain.fields.owner)
    assert.is_nil(plain.fields.ticket)
  end)

  it("reports a failing team rule and keeps the rest of the result", function()
    local p = parse.description("Service: payments-api\nsome text", { rules = {
      patterns = { { field = "x", pattern = "%" } },  -- malformed pattern
      extract = function() error("boom") end,
    } })
    assert.equals("payments-api", p.fields.service)
    assert.equals(2, #p.rule_errors)
    assert.truthy(p.rule_errors[2]:find("boom", 1, true))
  end)

  it("loads the example rules", function()
    local rules = dofile("examples/policies/parse_rules.lua")
    local p = parse.description("Owner: payments-core\nSee OPS-77.\n"
      .. "Sentry: https://sentry.io/organizations/acme/issues/1/", { rules = rules })
    assert.equals("payments-core", p.fields.owner)
    assert.truthy(p.fields.tickets)
  end)
end)
