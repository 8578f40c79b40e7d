-- `fox investigate` and `fox replay` as a person runs them: build/fox in a child
-- process, pointed by the environment and a config file at the fakes.
local fakes = require("helpers.fakes")
local proc = require("helpers.proc")
local json = require("fox.json")
local timerange = require("fox.timerange")

local ISO = timerange.format_time(os.time())

describe("fox investigate and fox replay", function()
  local inc, sl, gh, dir, env

  setup(function()
    inc = fakes.incidentio({ seed = "demo", args = { "--now", ISO } })
    sl = fakes.slack({ seed = "demo", args = { "--now", ISO } })
    gh = fakes.start("github", { args = { "--scenario", "demo", "--now", ISO } })
    dir = proc.tmpdir("investigate")
    proc.write_file(dir .. "/fox.conf.lua", [[
return {
  state_dir = "]] .. dir .. [[/state",
  custom_context = "Our critical services are payments-api, checkout-service, and user-auth.",
  sources = { github = { repos = { ["payments-api"] = "acme/payments-api" } } },
  timeline = { mode = "off" },
}
]])
    env = {
      INCIDENT_IO_BASE_URL = inc.url, INCIDENT_IO_API_KEY = fakes.KEYS.viewer,
      SLACK_API_URL = sl.url .. "/api", SLACK_BOT_TOKEN = "xoxb-test-token",
      GITHUB_API_URL = gh.url, GITHUB_TOKEN = "ghp_fox_test_token",
      FOX_CONFIG = dir .. "/fox.conf.lua", FOX_LOG_LEVEL = "warn",
    }
  end)

  teardown(function()
    for _, f in ipairs({ inc, sl, gh }) do f:stop() end
    proc.cleanup()
  end)

  -- Runs fox with args; returns exit status, stdout, stderr.
  local function fox(args, extra_env)
    local e = {}
    for k, v in pairs(env) do e[k] = v end
    for k, v in pairs(extra_env or {}) do e[k] = v end
    local out, err, rc = proc.run({ proc.FOX, table.unpack(args) },
      { env = e, unset = { "INCIDENT_IO_WRITE_API_KEY", "FOX_AI_ENABLED" } })
    return rc, out, err
  end

  it("prints its usage with --help, and refuses bad usage with status 2", function()
    local rc, out = fox({ "investigate", "--help" })
    assert.equals(0, rc)
    assert.truthy(out:find("usage: fox investigate INCIDENT [--dry-run] [--format text|json|slack]", 1, true))
    local rc2, _, err2 = fox({ "investigate" })
    assert.equals(2, rc2)
    assert.truthy(err2:find("which incident?", 1, true))
    local rc3, _, err3 = fox({ "investigate", "INC-2", "--format", "yaml" })
    assert.equals(2, rc3)
    assert.truthy(err3:find("--format must be text, json or slack", 1, true))
    local rc4, _, err4 = fox({ "investigate", "not an incident!" })
    assert.equals(2, rc4)
    assert.truthy(err4:find("is not an incident reference", 1, true))
    local rc5, _, err5 = fox({ "investigate", "INC-2", "--bogus" })
    assert.equals(2, rc5)
    assert.truthy(err5:find("unknown option --bogus", 1, true))
  end)

  it("prints the findings as text in a dry run and posts nothing", function()
    local rc, out = fox({ "investigate", "INC-2", "--dry-run" })
    assert.equals(0, rc)
    assert.truthy(out:find("INC-2: Elevated 5xx on payments-api checkout", 1, true))
    assert.truthy(out:find("Suspected changes\n  1. [", 1, true))
    assert.truthy(out:find("v2.35.0", 1, true))
    assert.truthy(out:find("Similar incidents\n  - INC-1", 1, true))
    assert.equals(0, #sl:control("GET", "/_fake/messages").messages)
  end)

  it("prints the findings as JSON and as the Slack message", function()
    local rc, out = fox({ "investigate", "2", "--dry-run", "--format", "json" })
    assert.equals(0, rc)
    local f = json.decode(out)
    assert.equals("INC-2", f.incident.reference)
    assert.equals("deployment", f.suspects[1].kind)
    assert.equals("INC-1", f.similar[1].reference)
    assert.same({ "checkout-service", "payments-api" }, f.critical_services)
    local rc2, out2 = fox({ "investigate", "INC-2", "--dry-run", "--format=slack" })
    assert.equals(0, rc2)
    local msg = json.decode(out2)
    assert.truthy(msg.text:find("^fox findings for INC%-2"))
    assert.is_true(#msg.blocks > 3 and #msg.blocks <= 50)
  end)

  it("posts once without --dry-run, recording it in the state directory", function()
    local rc, out, err = fox({ "investigate", "INC-2" })
    assert.equals(0, rc, err)
    assert.truthy(out:find("Suspected changes", 1, true))
    assert.truthy(err:find("posted the findings to Slack channel", 1, true))
    local msgs = sl:control("GET", "/_fake/messages").messages
    assert.equals(2, #msgs)
    local channel = msgs[1].channel
    local rc2, _, err2 = fox({ "investigate", "INC-2" })
    assert.equals(0, rc2, err2)
    assert.equals(2, #sl:control("GET", "/_fake/messages", nil, { channel = channel }).messages)
  end)

  it("fails with status 1 and the actionable message when the incident or the API is not there", function()
    local rc, _, err = fox({ "investigate", "INC-404", "--dry-run" })
    assert.equals(1, rc)
    assert.truthy(err:find("incident INC-404 not found", 1, true))
    local rc2, _, err2 = fox({ "investigate", "INC-2", "--dry-run" },
      { INCIDENT_IO_BASE_URL = "http://127.0.0.1:" .. fakes.closed_port() })
    assert.equals(1, rc2)
    assert.truthy(err2:find("unable to connect to the incident.io API", 1, true))
  end)

  it("replays the playbook over past incidents and prints the table", function()
    local rc, out = fox({ "replay", "--help" })
    assert.equals(0, rc)
    assert.truthy(out:find("usage: fox replay", 1, true))
    local rc2, out2, err2 = fox({ "replay", "--since", "60d" })
    assert.equals(0, rc2, err2)
    assert.truthy(out2:find("INCIDENT CREATED", 1, true))
    for n = 1, 6 do assert.truthy(out2:find("\nINC%-" .. n .. " "), "INC-" .. n .. " missing:\n" .. out2) end
    assert.truthy(out2:find("incidents 6 (skipped 0) | with suspects ", 1, true))
    assert.truthy(out2:find("time per investigation", 1, true))
    -- JSON: INC-2 has the deploy as its top suspect; nothing was posted
    local rc3, out3 = fox({ "replay", "--since", "60d", "--format", "json" })
    assert.equals(0, rc3)
    local r = json.decode(out3)
    assert.equals(6, r.totals.incidents)
    local inc2
    for _, row in ipairs(r.incidents) do if row.reference == "INC-2" then inc2 = row end end
    assert.truthy(inc2.top:find("v2.35.0", 1, true))
    assert.is_true(inc2.confidence > 0.5)
    assert.is_true(r.totals.with_suspects >= 1)
    assert.is_true(r.totals.mean_confidence > 0)
    -- only the incidents of the range
    local rc4, out4 = fox({ "replay", "--since", "1h", "--format", "json" })
    assert.equals(0, rc4)
    assert.equals(1, json.decode(out4).totals.incidents)
  end)

  it("replays another playbook file", function()
    local path = dir .. "/my_playbook.lua"
    proc.write_file(path, [[
return { run = function(incident, ctx)
  return { suspects = { { title = "always the network" } }, confidence = 0.42, failed_sources = {} }
end }
]])
    local rc, out, err = fox({ "replay", "--since", "60d", "--playbook", path, "--format", "json" })
    assert.equals(0, rc, err)
    local r = json.decode(out)
    assert.equals("always the network", r.incidents[1].top)
    assert.equals(0.42, r.totals.mean_confidence)
    local rc2, _, err2 = fox({ "replay", "--playbook", dir .. "/missing.lua" })
    assert.equals(2, rc2)
    assert.truthy(err2:find("cannot load the playbook", 1, true))
    local rc3, _, err3 = fox({ "replay", "--since", "yesterday" })
    assert.equals(2, rc3)
    assert.truthy(err3:find("--since", 1, true))
  end)
end)
