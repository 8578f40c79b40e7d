-- sources/suspects.lua: ranking changes into suspects with a confidence and a reason.
local suspects = require("sources.suspects")

local START = 1800000000
local MIN = 60

local function deploy(fields)
  local d = { kind = "deployment", source = "github", service = "payments-api", repo = "acme/payments-api",
              environment = "production", production = true, state = "success", version = "v2.35.0",
              sha = "aaa111", flags = {} }
  for k, v in pairs(fields or {}) do d[k] = v end
  d.created_at = d.created_at or d.at
  d.before_start = START - d.at
  return d
end

local function pr(fields)
  local p = { kind = "pull_request", source = "github", service = "payments-api", repo = "acme/payments-api",
              number = 412, title = "Bump payment gateway client to 3.2; shorten upstream timeout",
              merge_commit_sha = "aaa111", flags = { "config", "dependency" } }
  for k, v in pairs(fields or {}) do p[k] = v end
  p.before_start = START - p.at
  return p
end

local function commit(fields)
  local c = { kind = "commit", source = "github", service = "payments-api", repo = "acme/payments-api",
              sha = "bbb222", title = "Tidy logging", flags = {} }
  for k, v in pairs(fields or {}) do c[k] = v end
  c.before_start = START - c.at
  return c
end

local function feed(fields)
  local f = { source = "feed", service = "payments-api", kind = "deploy", flags = {} }
  for k, v in pairs(fields or {}) do f[k] = v end
  f.before_start = START - f.at
  return f
end

local error_spike = { { service = "payments-api", name = "error_rate", status = "changed",
  change = { type = "step", direction = "up", at = START - 17 * MIN, before = 0.005, after = 0.05, ratio = 10 } } }

describe("suspects.rank", function()
  it("puts the deploy right before an error spike first, with its reason", function()
    local list = suspects.rank({
      commit({ at = START - 3 * 3600, title = "Docs: runbook links" }),
      pr({ at = START - 35 * MIN }),
      commit({ at = START - 35 * MIN, sha = "aaa111", pull_request = 412, title = "Merge pull request #412" }),
      deploy({ at = START - 20 * MIN }),
    }, { incident_start = START, services = { "payments-api" }, metrics = error_spike })
    local top = list[1]
    assert.equals(1, top.rank)
    assert.equals("deployment", top.kind)
    assert.is_true(top.confidence >= 0.8, "confidence " .. top.confidence)
    assert.equals('deployed payments-api v2.35.0 20 min before the incident; error rate rose 10x 3 min after; '
      .. 'PR #412 "Bump payment gateway client to 3.2; shorten upstream timeout"; flagged: config change, '
      .. 'dependency bump', top.reason)
    -- the PR and its merge commit are part of the deploy, not suspects of their own
    assert.equals(2, #list)
    assert.equals(2, #top.related)
    assert.equals("commit", list[2].kind)
    assert.is_true(list[2].confidence < 0.3)
    assert.same({ what = "error rate rose 10x", at = START - 17 * MIN, gap = 3 * MIN }, top.onset)
  end)

  it("prefers the deploy closest before the trouble and ranks others lower", function()
    local list = suspects.rank({
      deploy({ at = START - 3 * 3600, version = "v2.34.0", sha = "old" }),
      deploy({ at = START - 20 * MIN }),
      deploy({ at = START - 25 * MIN, service = "search", version = "v9", sha = "s9" }),
    }, { incident_start = START, services = { "payments-api" }, metrics = error_spike })
    assert.equals("v2.35.0", list[1].version)
    assert.equals("v9", list[2].version) -- other service: halved
    assert.equals("v2.34.0", list[3].version)
    assert.is_true(list[1].confidence > list[2].confidence and list[2].confidence > list[3].confidence)
  end)

  it("lowers a change that came after the errors began, and says so", function()
    local list = suspects.rank({ deploy({ at = START - 5 * MIN }) },
      { incident_start = START, services = { "payments-api" }, metrics = error_spike })
    assert.is_true(list[1].confidence < 0.4)
    assert.matches("but the trouble %(error rate rose 10x%) began 12 min before it", list[1].reason)
  end)

  it("ranks changes after the incident start low", function()
    local list = suspects.rank({ deploy({ at = START + 10 * MIN }) },
      { incident_start = START, services = { "payments-api" } })
    assert.is_true(list[1].confidence < 0.2)
    assert.matches("10 min after the incident started", list[1].reason)
  end)

  it("folds the CD feed's copy of a GitHub deploy into it", function()
    local list = suspects.rank({
      deploy({ at = START - 20 * MIN }),
      feed({ at = START - 20 * MIN - 40, version = "v2.35.0", url = "https://cd/5120" }),
    }, { incident_start = START, services = { "payments-api" }, metrics = error_spike })
    assert.equals(1, #list)
    assert.same({ "github", "feed" }, list[1].sources)
    assert.matches("; seen by github and feed$", list[1].reason)
    local alone = suspects.rank({ deploy({ at = START - 20 * MIN }) },
      { incident_start = START, services = { "payments-api" }, metrics = error_spike })
    assert.is_true(list[1].confidence >= alone[1].confidence)
  end)

  it("treats feed config changes and flags as strong suspects", function()
    local list = suspects.rank({
      feed({ kind = "feature_flag", title = "Enabled checkout.new_banner", at = START - 15 * MIN,
             flags = { "config" } }),
      commit({ at = START - 15 * MIN }),
    }, { incident_start = START, services = { "payments-api" } })
    assert.equals("feature_flag", list[1].kind)
    assert.matches("^feature flag change to payments%-api: Enabled checkout%.new_banner 15 min before the incident",
      list[1].reason)
    assert.is_true(list[1].confidence > list[2].confidence + 0.2)
  end)

  it("ranks a staging or failed deploy below a production one", function()
    local list = suspects.rank({
      deploy({ at = START - 20 * MIN, environment = "staging", production = false, version = "main", sha = "st" }),
      deploy({ at = START - 30 * MIN, state = "failure", version = "v3", sha = "f3" }),
      deploy({ at = START - 40 * MIN, version = "v2", sha = "p2" }),
    }, { incident_start = START, services = { "payments-api" } })
    assert.equals("v2", list[1].version)
    assert.matches("%(deploy failure%)", list[2].reason)
    assert.matches("to staging", list[3].reason)
  end)

  it("uses a new log signature as the onset when there are no metrics", function()
    local list = suspects.rank({ deploy({ at = START - 20 * MIN }) }, {
      incident_start = START, services = { "payments-api" }, logs_window_from = START - 3600,
      logs = { { signature = "PaymentGatewayTimeout: upstream 504 from <host>", count = 400,
                 first_seen = START - 16 * MIN, services = { "payments-api" } } } })
    assert.matches('new errors "PaymentGatewayTimeout: upstream 504 from <host>" appeared 4 min after', list[1].reason)
  end)

  it("returns nothing for no changes and caps the list", function()
    assert.same({}, suspects.rank({}, { incident_start = START }))
    local many = {}
    for i = 1, 12 do many[i] = commit({ at = START - i * MIN, sha = "c" .. i }) end
    assert.equals(5, #suspects.rank(many, { incident_start = START }))
    assert.equals(3, #suspects.rank(many, { incident_start = START, max = 3 }))
  end)
end)

describe("suspects.from_results", function()
  it("takes changes, metrics and logs from source results and skips failed sources", function()
    local list = suspects.from_results({
      { ok = true, source = "github", items = { deploy({ at = START - 20 * MIN }) },
        window = { incident_start = START } },
      { ok = true, source = "prometheus", items = error_spike },
      { ok = false, source = "changes", error = "down", items = {} },
    }, { services = { "payments-api" } })
    assert.equals(1, #list)
    assert.matches("error rate rose 10x 3 min after", list[1].reason)
  end)
end)
