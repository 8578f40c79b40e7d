-- The correlation policy (error-line normalisation, features, scoring) and the
-- correlate_incidents tool against the fake incident.io.
local correlate = require("policies.correlate")

describe("correlation policy: error lines", function()
  it("strips numbers, IDs, hashes and hosts but keeps exception names and HTTP codes", function()
    local norm = correlate.normalize_error_line
    assert.equals("error: connection refused to <host> after <n>ms (econnrefused)",
      norm("Error: connection refused to db-primary-3.internal:5432 after 30000ms (ECONNREFUSED)"))
    assert.equals("java.net.sockettimeoutexception: read timed out at <host>",
      norm("java.net.SocketTimeoutException: Read timed out at 10.0.4.12:8080"))
    assert.equals("upstream returned http 503 service unavailable for request <hash> trace <id>",
      norm("upstream returned HTTP 503 Service Unavailable for request 7f9c2ab1e3d4 trace "
        .. "01HXYZABCDEFGHJKMNPQRSTVWX"))
    assert.equals("timeout after <n> ms; status code 429", norm("timeout after 500 ms; status code 429"))
    assert.equals("payments-api returns 502/504 to checkout-service for ~<n>% of requests",
      norm("payments-api returns 502/504 to checkout-service for ~18% of requests"))
    assert.equals("request <id> failed: <id>",
      norm("request req_7Hq2kLm9 failed: 123e4567-e89b-12d3-a456-426614174000"))
  end)

  it("gives the same line for the same error on different hosts and at different times", function()
    local norm = correlate.normalize_error_line
    local a = norm("PaymentGatewayTimeout: upstream 504 from acquirer-eu after 5000ms (req 8f2a9c01d3)")
    local b = norm("PaymentGatewayTimeout: upstream 504 from acquirer-eu after 7200ms (req 1b77e0a4ff)")
    assert.equals(a, b)
    local c = norm("PaymentGatewayTimeout: upstream 502 from acquirer-eu after 5000ms (req 8f2a9c01d3)")
    assert.are_not.equals(a, c) -- a different HTTP code is a different error
  end)

  it("finds error lines in prose, code spans and fenced blocks, not in plain prose", function()
    local text = table.concat({
      "Customers saw failures at checkout.",
      "Logs show `PG::ConnectionBad: could not connect to server` repeatedly.",
      "```",
      "TypeError: Cannot read properties of undefined (reading 'lineItems')",
      "    at summarizeCart (src/cart/summary.ts:31:24)",
      "```",
      "Error: HTTP 502 from payments-api on POST /v3/payments/authorise",
    }, "\n")
    local lines = correlate.error_lines(text)
    local joined = table.concat(lines, "\n")
    assert.matches("pg::connectionbad: could not connect to server", joined, 1, true)
    assert.matches("typeerror: cannot read properties of undefined", joined, 1, true)
    assert.matches("http 502 from payments-api", joined, 1, true)
    assert.not_matches("customers saw failures", joined, 1, true)
    assert.not_matches("summarizecart", joined, 1, true)
  end)
end)

describe("correlation policy: scoring", function()
  local function rec(fields)
    fields.features = correlate.features({ name = fields.name, summary = fields.summary })
    return fields
  end
  local target = rec({
    id = "T", name = "Payments failing at checkout: PaymentGatewayTimeout (upstream 504)",
    summary = "Error: PaymentGatewayTimeout: upstream 504 from acquirer-eu (POST /v3/authorisations)",
    services = { "payments-api" }, severity = { name = "Critical", rank = 4 }, type = "Production Outage",
    t = 1000000,
  })
  local prep = correlate.prepare(target)

  it("scores a look-alike high and says which signals contributed", function()
    local same = rec({
      id = "A", name = "PaymentGatewayTimeout errors on payments-api (upstream 504 from acquirer-eu)",
      summary = "Error: PaymentGatewayTimeout: upstream 504 from acquirer-eu (POST /v3/authorisations)",
      services = { "payments-api", "checkout-service" }, severity = { name = "Critical", rank = 4 },
      type = "Production Outage", t = 1000000 - 40 * 86400,
    })
    local score, signals, shared_services = correlate.score(prep, same, {})
    assert.is_true(score >= 0.7, "score " .. score)
    assert.equals(1, signals.error_pattern)
    assert.equals(0.75, signals.service)
    assert.equals(1, signals.severity)
    assert.equals(1, signals.type)
    assert.is_true(signals.text > 0.3)
    assert.same({ "payments-api" }, shared_services)
  end)

  it("scores an unrelated incident low", function()
    local other = rec({
      id = "B", name = "Password reset emails slow to arrive",
      summary = "Error: EmailSendLatencyHigh: p95 9m for template password_reset",
      services = { "user-auth" }, severity = { name = "Low", rank = 1 }, type = "Degraded Performance",
      t = 1000000 - 2 * 86400,
    })
    local score, signals = correlate.score(prep, other, {})
    assert.is_true(score < 0.2, "score " .. score)
    assert.is_nil(signals.service)
    assert.is_nil(signals.severity)
  end)

  it("lifts an explicitly linked incident and marks the link", function()
    local other = rec({ id = "C", name = "Unrelated words entirely", services = {}, t = 0 })
    local score, signals, _, link = correlate.score(prep, other, { C = "related" })
    assert.equals(correlate.explicit_link_score, score)
    assert.equals(1, signals.explicit_link)
    assert.equals("related", link)
  end)

  it("weights closeness in time", function()
    local near = rec({ id = "N", name = "x", services = {}, t = target.t - 3600 })
    local far = rec({ id = "F", name = "x", services = {}, t = target.t - 60 * 86400 })
    local _, sn = correlate.score(prep, near, {})
    local _, sf = correlate.score(prep, far, {})
    assert.is_true(sn.time > 0.9)
    assert.is_nil(sf.time)
  end)
end)
