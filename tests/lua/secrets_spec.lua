-- Secret hygiene (issue 8, item 6): with canary values for the incident.io API key,
-- the Slack token and the webhook secret, none ever appears in logs, stdout, stderr,
-- /metrics, /healthz, HTTP answers, REPL output or error messages, including when the
-- secret is rejected, misconfigured, or put into an error on purpose.
-- (scripts/run-tests.sh also exports canaries for the whole suite and searches every
-- captured output and log file for them at the end.)
local H = require("serve_helper")
local X = require("helpers.hardening")
local json = require("fox.json")

local WEBHOOK_SECRET = "whsec_Y2FuYXJ5LXNlY3JldHMtc3BlYy13ZWJob29rLTk5"
local BAD_KEY = "canary-revoked-iio-key-31c0de77aa"
local BAD_TOKEN = "xoxb-canary-revoked-slack-6d2f10"

local SECRETS = { X.API_KEY, X.SLACK_TOKEN, WEBHOOK_SECRET, BAD_KEY, BAD_TOKEN,
  -- the webhook secret's key part, and the secrets as a log would quote them
  WEBHOOK_SECRET:sub(7), X.API_KEY:sub(1, 20) .. X.API_KEY:sub(21) }

local function assert_clean(text, where)
  for _, s in ipairs(SECRETS) do
    assert(not tostring(text):find(s, 1, true), "a secret (" .. s:sub(1, 12) .. "...) appears in " .. where)
  end
end

-- Runs `fox ARGS` with env (a table) and stdin; returns exit status, stdout, stderr.
local function run_fox(args, env, stdin)
  local dir = H.tmpdir("cli")
  local envs = {}
  for k, v in pairs(env or {}) do envs[#envs + 1] = k .. "=" .. H.sh_quote(v) end
  if stdin then H.write_file(dir .. "/in", stdin) end
  local cmd = ("cd %s && env -u INCIDENT_IO_API_KEY -u SLACK_BOT_TOKEN -u INCIDENT_IO_WEBHOOK_SECRET %s "
    .. "timeout 30 %s %s < %s > %s 2> %s; echo $? > %s"):format(H.sh_quote(H.ROOT), table.concat(envs, " "),
    H.sh_quote(H.FOX), args, stdin and H.sh_quote(dir .. "/in") or "/dev/null", H.sh_quote(dir .. "/out"),
    H.sh_quote(dir .. "/err"), H.sh_quote(dir .. "/rc"))
  os.execute(cmd)
  return tonumber(H.read_file(dir .. "/rc")), H.read_file(dir .. "/out") or "", H.read_file(dir .. "/err") or ""
end

describe("secret hygiene", function()
  local fakes

  setup(function()
    fakes = X.start_fakes()
  end)

  teardown(function()
    if fakes then fakes.stop() end
    H.cleanup()
  end)

  before_each(function()
    X.reset(fakes)
  end)

  it("fox serve: no secret in its log, answers, /metrics or /healthz, accepted or rejected", function()
    local fox = X.new_fox(fakes, { options = { sources = { similar = false } } })
    fox.secret = WEBHOOK_SECRET
    fox.env.INCIDENT_IO_WEBHOOK_SECRET = WEBHOOK_SECRET
    fox:start()
    local answers = {}
    local function get(path)
      local res = fox:get(path)
      answers[#answers + 1] = res.body .. json.encode(res.headers)
      return res
    end
    -- A normal investigation, a forged delivery, a bad request, an unknown path.
    local inc = X.create_incidents(fakes, 1, "Secrets")[1]
    answers[#answers + 1] = H.deliver(fox, H.created_event(inc)).body
    answers[#answers + 1] = H.deliver(fox, H.created_event(inc), { secret = H.new_secret() }).body
    answers[#answers + 1] = H.deliver(fox, H.created_event(inc), { signature = WEBHOOK_SECRET }).body
    answers[#answers + 1] = H.deliver(fox, nil, { body = "{" .. WEBHOOK_SECRET }).body
    X.assert_posted_once(fakes, { inc }, 20)
    get("/metrics")
    get("/healthz")
    get("/nope/" .. X.API_KEY)
    -- Slack rejects the token, then incident.io rejects the key: errors everywhere.
    H.request("POST", fakes.slack .. "/_fake/faults", { rules = { { slack_error = "invalid_auth" } } })
    local inc2 = X.create_incidents(fakes, 1, "Rejected token")[1]
    H.deliver(fox, H.created_event(inc2))
    assert.truthy(H.wait_for(function()
      for l in fox:log_text():gmatch("[^\n]+") do
        if l:find("event=investigation ", 1, true) and l:find("incident=" .. inc2.reference .. " ", 1, true) then
          return true
        end
      end
    end, 10))
    X.faults(fakes, { { status = 401 } })
    local inc3 = X.create_incidents(fakes, 1, "Rejected key")[1]
    H.deliver(fox, H.created_event(inc3))
    assert.truthy(H.wait_for(function() return fox:health().status ~= "ok" end, 10), "no degraded health")
    local health = get("/healthz")
    assert.matches("rejected the API key", health.body, 1, true)
    get("/metrics")
    assert.equals(0, fox:stop(10))
    local log = fox:log_text()
    assert.matches("invalid_auth", log, 1, true) -- the failures were logged...
    assert_clean(log, "the fox log")             -- ...without the secrets
    X.assert_clean_log(fox, WEBHOOK_SECRET)
    for i, a in ipairs(answers) do assert_clean(a, "HTTP answer #" .. i) end
  end)

  it("fox serve: a bad secret in the configuration is named, never shown", function()
    local fox = X.new_fox(fakes)
    fox.env.INCIDENT_IO_WEBHOOK_SECRET = "canary-not-a-whsec-" .. BAD_TOKEN
    local code = fox:start(nil, true)
    assert.equals(1, code)
    local log = fox:log_text()
    assert.matches("webhook_secret", log, 1, true)
    assert_clean(log, "the error of a bad webhook secret")
  end)

  it("the REPL scrubs results and errors, and fox run scrubs a failing script's error", function()
    local env = { INCIDENT_IO_API_KEY = X.API_KEY, SLACK_BOT_TOKEN = X.SLACK_TOKEN,
                  INCIDENT_IO_WEBHOOK_SECRET = WEBHOOK_SECRET, INCIDENT_IO_BASE_URL = fakes.io }
    local chunks = table.concat({
      'return require("fox.sys").secret("INCIDENT_IO_API_KEY")',
      'return { token = require("fox.sys").secret("SLACK_BOT_TOKEN") }',
      'return require("fox.sys").getenv("INCIDENT_IO_API_KEY")',
      'error("the key is " .. require("fox.sys").secret("INCIDENT_IO_API_KEY"))',
      'error({ require("fox.sys").secret("SLACK_BOT_TOKEN") })',
      'require("fox.log").error("oops", { key = require("fox.sys").getenv("INCIDENT_IO_API_KEY") })',
      'return require("fox.incidentio").new():get_incident("INC-1")',
      'return require("fox.config").load(nil).webhook_secret',
    }, "\n") .. "\n"
    local code, out, err = run_fox("repl", env, chunks)
    assert.equals(1, code) -- the chunks that raise make it exit 1
    assert.matches("[REDACTED]", out, 1, true)
    assert.matches("the key is [REDACTED]", err, 1, true)
    assert_clean(out, "REPL output")
    assert_clean(err, "REPL errors")

    local script = H.tmpdir("run") .. "/fail.lua"
    H.write_file(script, 'local t = require("fox.sys").secret("SLACK_BOT_TOKEN")\n'
      .. 'local function deep() error("posting with " .. t .. " failed") end\ndeep()\n')
    code, out, err = run_fox("run " .. H.sh_quote(script), env)
    assert.equals(1, code)
    assert.matches("posting with [REDACTED] failed", err, 1, true)
    assert_clean(out .. err, "fox run's error")
  end)

  it("fox doctor and fox tool: no secret in their output, with the secrets accepted or rejected", function()
    for _, case in ipairs({
      { key = X.API_KEY, token = X.SLACK_TOKEN, what = "accepted" },
      { key = BAD_KEY, token = BAD_TOKEN, what = "rejected" },
    }) do
      local env = { INCIDENT_IO_API_KEY = case.key, SLACK_BOT_TOKEN = case.token, INCIDENT_IO_BASE_URL = fakes.io,
                    SLACK_API_URL = fakes.slack .. "/api", INCIDENT_IO_WEBHOOK_SECRET = WEBHOOK_SECRET,
                    FOX_LOG_LEVEL = "debug" }
      local _, out, err = run_fox("doctor", env)
      assert.matches(case.what == "accepted" and "\nok    incident.io API key accepted" or "\nFAIL ", "\n" .. out)
      assert_clean(out .. err, "fox doctor (" .. case.what .. ")")
      local _, tout, terr = run_fox("tool list_recent_incidents --time-range 1d", env)
      assert_clean(tout .. terr, "fox tool (" .. case.what .. ")")
      if case.what == "rejected" then assert.matches("rejected the API key", terr, 1, true) end
    end
  end)
end)
