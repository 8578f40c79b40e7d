-- The github source against the fake GitHub REST API (tests/fakes/github/server.js).
local task = require("fox.task")
local fakes = require("helpers.fakes")
local src = require("sources.github")

local TOKEN = "ghp_fox_test_token"

describe("github source", function()
  local gh, now, incident_at

  setup(function()
    now = os.time()
    incident_at = now - 20 * 60
    gh = fakes.start("github", { args = { "--scenario", "busy", "--now", tostring(now),
                                          "--incident-at", tostring(incident_at) } })
  end)

  teardown(function()
    if gh then gh:stop() end
  end)

  before_each(function()
    gh:reset()
  end)

  local REPOS = { ["payments-api"] = "acme/payments-api", ["checkout-service"] = "acme/checkout-service",
                  monorepo = "acme/monorepo" }

  local function query(config, extra)
    config = config or {}
    config.api_url = config.api_url or gh.url
    if config.token == nil then config.token = TOKEN end
    config.repos = config.repos or REPOS
    local ctx = { services = { "payments-api" }, window = { incident_start = incident_at, to = now },
                  config = config, timeout = 5 }
    for k, v in pairs(extra or {}) do ctx[k] = v end
    return src.query(ctx)
  end

  local function of_kind(items, kind)
    local out = {}
    for _, it in ipairs(items) do
      if it.kind == kind then out[#out + 1] = it end
    end
    return out
  end

  it("finds the demo deploy with its status, the merged PR it shipped and the commits", function()
    local r, err = query()
    assert.is_nil(err)
    assert.equals("github", r.source)
    local deploys = of_kind(r.items, "deployment")
    assert.equals(2, #deploys) -- production v2.35.0 and staging; v2.34.1 (26 h ago) is outside
    local d = deploys[1]
    assert.equals("v2.35.0", d.version)
    assert.equals("production", d.environment)
    assert.is_true(d.production)
    assert.equals("success", d.state)
    assert.equals(incident_at - 20 * 60, d.created_at)
    assert.equals(incident_at - 20 * 60 + 90, d.deployed_at)
    assert.equals(d.deployed_at, d.at)
    assert.equals(20 * 60 - 90, d.before_start)
    assert.same({ 412 }, d.pull_requests)
    assert.equals("deployed payments-api v2.35.0 to production (PR #412 Bump payment gateway client to 3.2; "
      .. "shorten upstream timeout)", d.title)
    assert.same({ "config", "dependency" }, d.flags)
    assert.equals("https://cd.acme.test/pipelines/5120", d.url)
    assert.equals("deploy-bot", d.author)
    assert.is_false(deploys[2].production)

    local prs = of_kind(r.items, "pull_request")
    assert.equals(2, #prs) -- #412 and #409; #410 was closed unmerged, #401 is too old, #413 open
    assert.equals(412, prs[1].number)
    assert.equals("marcus-dev", prs[1].author)
    assert.equals("deps/gateway-client-3.2", prs[1].branch)
    assert.same({ "dependencies", "payments" }, prs[1].labels)
    assert.equals("https://github.com/acme/payments-api/pull/412", prs[1].url)
    assert.is_true(prs[1].deployed)

    local commits = of_kind(r.items, "commit")
    assert.equals(4, #commits)
    assert.equals(412, commits[1].pull_request) -- the merge commit
    assert.equals("Merge pull request #412 from acme/deps/gateway-client-3.2", commits[1].title)
    -- newest first
    for i = 2, #r.items do assert.is_true(r.items[i - 1].at >= r.items[i].at) end
    assert.matches("^2 deployments, 2 merged PRs, 4 commits in the 4 h before the incident %(acme/payments%-api%); "
      .. "last production deploy payments%-api v2%.35%.0 19 min before; flagged: config 4, dependency 4", r.summary)
  end)

  it("sends GitHub's headers and the window, and never the token in errors", function()
    assert(query())
    local reqs = gh:requests({ path = "/repos/acme/payments-api/commits" })
    assert.equals(1, #reqs)
    local h = reqs[1].headers
    assert.equals("application/vnd.github+json", h.accept)
    assert.equals("2022-11-28", h["x-github-api-version"])
    assert.matches("^Bearer ghp_f", h.authorization) -- the fake logs a prefix only
    assert.equals(os.date("!%Y-%m-%dT%H:%M:%SZ", incident_at - 4 * 3600), reqs[1].query.since)
    assert.equals(os.date("!%Y-%m-%dT%H:%M:%SZ", incident_at), reqs[1].query["until"])
    local pulls = gh:requests({ path = "/repos/acme/payments-api/pulls" })[1].query
    assert.same({ state = "closed", sort = "updated", direction = "desc", per_page = "100" }, pulls)
  end)

  it("follows Link headers page by page, and stops paging once past the window", function()
    local r = assert(query(nil, { services = { "monorepo" } }))
    -- 230 commits 5 min apart before now: 49 fall in the 4 h before the incident (now - 20 min)
    local commits = of_kind(r.items, "commit")
    assert.equals(49, #commits)
    -- deployments every 9 min, newest first: the first page already reaches past the
    -- window, so no second page is read; 26 fall in the window, of which the statuses
    -- of max_deployments (20) are read
    local dreqs = gh:requests({ path = "/repos/acme/monorepo/deployments" })
    assert.equals(1, #dreqs)
    assert.equals(20, #of_kind(r.items, "deployment"))
    -- the failed deploy is the newest one (after the incident start): not in the window
    for _, d in ipairs(of_kind(r.items, "deployment")) do assert.equals("success", d.state) end
    -- PRs sorted by update: stops at the first page whose last PR is older than the window
    local preqs = gh:requests({ path = "/repos/acme/monorepo/pulls" })
    assert.equals(1, #preqs)
    local reverts, hotfixes = 0, 0
    for _, p in ipairs(of_kind(r.items, "pull_request")) do
      for _, f in ipairs(p.flags) do
        if f == "revert" then reverts = reverts + 1 elseif f == "hotfix" then hotfixes = hotfixes + 1 end
      end
    end
    assert.is_true(reverts >= 1 and hotfixes >= 1)
    local more = assert(query({ max_deployments = 30 }, { services = { "monorepo" } }))
    assert.equals(26, #of_kind(more.items, "deployment"))
  end)

  it("stops after max_pages and says so", function()
    local r = assert(query({ lookback = 20 * 3600, max_pages = 2 }, { services = { "monorepo" } }))
    assert.equals(200, #of_kind(r.items, "commit"))
    local found = false
    for _, w in ipairs(r.warnings or {}) do
      if w:match("acme/monorepo commits: stopped after 2 pages") then found = true end
    end
    assert.is_true(found)
  end)

  it("reports an exhausted rate limit with when it resets", function()
    gh:control("POST", "/_fake/rate_limit", { remaining = 0, reset = os.time() + 17 * 60 })
    local r, err = query()
    assert.is_nil(r)
    assert.matches("^github: API rate limit exhausted %(5000 requests/hour, HTTP 403%); "
      .. "it resets at %d%d:%d%dZ %(in 17 min%)$", err)
  end)

  it("tells an anonymous caller to set GITHUB_TOKEN when rate limited", function()
    gh:control("POST", "/_fake/rate_limit", { remaining = 0 })
    local r, err = query({ token = false, repos = { ["payments-api"] = "acme/public-thing" } })
    assert.is_nil(r)
    -- unknown/private repo for anonymous is a 404 before the limit... the limit comes first
    assert.matches("rate limit exhausted %(60 requests/hour", err)
    assert.matches("set GITHUB_TOKEN", err)
  end)

  it("waits out a short secondary rate limit once, and reports a long one", function()
    gh:control("POST", "/_fake/rate_limit", { secondary = { retry_after = 0, times = 1 } })
    local r, err = query()
    assert.is_nil(err)
    assert.is_true(#r.items > 0)
    local limited = gh:requests({ status = 403 })
    assert.equals(1, #limited)
    -- the same call was made again and answered
    assert.equals(2, #gh:requests({ path = limited[1].path }))

    gh:control("POST", "/_fake/rate_limit", { secondary = { retry_after = 60, times = 20, status = 429 } })
    r, err = query()
    assert.is_nil(r)
    assert.matches("^github: secondary rate limit %(HTTP 429%): GitHub asks to wait 60 s before retrying", err)
  end)

  it("says the token was rejected", function()
    local r, err = query({ token = "ghp_wrong" })
    assert.is_nil(r)
    assert.equals("github: token rejected (HTTP 401 Bad credentials): check GITHUB_TOKEN", err)
  end)

  it("says a repository was not found, and keeps the repositories that answered", function()
    local r, err = query({ repos = { ["payments-api"] = "acme/nope" } })
    assert.is_nil(r)
    assert.matches("^github: acme/nope deployments not found %(HTTP 404%): the repository does not exist or the token "
      .. "cannot read it", err)
    r, err = query({ repos = { ["payments-api"] = { "acme/nope", "acme/payments-api" } } })
    assert.is_nil(err)
    assert.is_true(#r.items > 0)
    assert.matches("acme/nope", r.warnings[1])
  end)

  it("fails clearly without any repository for the services", function()
    local r, err = query({ repos = {} }, { services = { "payments-api", "user-auth" } })
    assert.is_nil(r)
    assert.equals('github: no repository mapped to payments-api, user-auth: add them to the github source\'s repos '
      .. '(service = "owner/repo")', err)
    r = assert(query(nil, { services = { "payments-api", "user-auth" } }))
    assert.same({ "github: no repository mapped to user-auth" }, r.warnings)
  end)

  it("fails on 500s, malformed JSON and timeouts", function()
    gh:faults({ { path_prefix = "/repos/acme/payments-api", status = 502 } })
    local r, err = query()
    assert.is_nil(r)
    assert.matches("^github: HTTP 502 on acme/payments%-api %a+: Server Error", err)

    -- one list failing leaves the others, with a warning
    gh:faults({ { path = "/repos/acme/payments-api/commits", malformed_json = true } })
    r, err = query()
    assert.is_nil(err)
    assert.equals(0, #of_kind(r.items, "commit"))
    assert.equals(2, #of_kind(r.items, "deployment"))
    assert.matches("^github: malformed JSON from http://127%.0%.0%.1:%d+/repos/acme/payments%-api/commits",
      r.warnings[1])

    gh:faults({ { path_prefix = "/repos/", delay_ms = 1500 } })
    local t0 = task.now()
    r, err = query({}, { timeout = 0.3 })
    assert.is_nil(r)
    assert.matches("timed out", err)
    assert.is_true(task.now() - t0 < 1)
  end)

  it("treats an empty repository as no changes", function()
    gh:control("POST", "/_fake/repos", { repo = "acme/empty" })
    local r = assert(query({ repos = { ["payments-api"] = "acme/empty" } }))
    assert.same({}, r.items)
    assert.matches("^no deployments, merged PRs or commits in the 4 h before the incident %(acme/empty%)", r.summary)
  end)
end)

describe("github flags and links", function()
  it("flags reverts, hotfixes, config changes, migrations and dependency bumps", function()
    assert.same({ "revert" }, src.flags({ 'Revert "Add retries to ledger client"' }))
    assert.same({ "revert" }, src.flags({ "Fix totals\n\nThis reverts commit 1a2b3c4." }))
    assert.same({ "hotfix" }, src.flags({ "Fix NPE in checkout", "hotfix/npe-checkout" }))
    assert.same({ "config" }, src.flags({ "Raise pool size to 50" }))
    assert.same({ "config" }, src.flags({ "Update values.yaml for payments" }))
    assert.same({ "config" }, src.flags({ "Enable feature flag new_checkout" }))
    assert.same({ "migration" }, src.flags({ "Add index on payments.created_at", "db/migrate-payments" }))
    assert.same({ "migration" }, src.flags({ "ALTER TABLE orders ADD COLUMN note" }))
    assert.same({ "dependency" }, src.flags({ "Bump lodash from 4.17.20 to 4.17.21" }))
    assert.same({ "config", "dependency" },
      src.flags({ "Bump payment gateway client to 3.2; shorten upstream timeout" }))
    assert.same({ "hotfix", "migration" }, src.flags({ "Fix checkout" }, { "hotfix", "database" }))
    assert.same({}, src.flags({ "Add tests for the cart", "feature/cart-tests" }))
    assert.same({}, src.flags({ "Docs: explain the reconfigured reverter" }))
  end)

  it("parses Link headers", function()
    local l = src.parse_link('<https://api.github.com/repositories/1/commits?page=2>; rel="next", '
      .. '<https://api.github.com/repositories/1/commits?page=9>; rel="last"')
    assert.equals("https://api.github.com/repositories/1/commits?page=2", l.next)
    assert.equals("https://api.github.com/repositories/1/commits?page=9", l.last)
    assert.same({}, src.parse_link(nil))
  end)
end)

describe("github source ordering", function()
  it("asks for the deployment statuses as soon as the deployments answer, not after the commits and PRs", function()
    local http = require("fox.http")
    local json = require("fox.json")
    local now = os.time()
    local at = os.date("!%Y-%m-%dT%H:%M:%SZ", now - 600)
    local seen = "gh-statuses-" .. tostring(task.now())
    local events = {}
    local function answer(v)
      return { status = 200, headers = { ["Content-Type"] = "application/json" }, body = json.encode(v) }
    end
    -- commits and pull requests answer only once the statuses were asked for (or after
    -- 3 s): before the change the statuses waited for them, so they came last
    local srv = assert(http.listen({ host = "127.0.0.1", port = 0, handler = function(req)
      local p = req.path
      if p:match("/deployments$") then
        return answer({ { id = 7, created_at = at, environment = "production", ref = "v1.2.0", sha = "abc1234" } })
      elseif p:match("/statuses$") then
        events[#events + 1] = "statuses asked"
        task.notify(seen)
        return answer({ { state = "success", created_at = at } })
      end
      task.wait_for(seen, 3)
      events[#events + 1] = p:match("[^/]+$") .. " answered"
      return answer({})
    end }))
    local r, err = src.query({ services = { "payments-api" }, window = { incident_start = now, to = now },
      config = { api_url = "http://127.0.0.1:" .. srv.port, token = TOKEN,
                 repos = { ["payments-api"] = "acme/payments-api" } }, timeout = 10 })
    srv:close()
    assert.is_nil(err)
    assert.equals("statuses asked", events[1])
    assert.equals(3, #events)
    local d = r.items[1]
    assert.equals("deployment", d.kind)
    assert.equals("success", d.state)
    assert.equals("v1.2.0", d.version)
  end)
end)
