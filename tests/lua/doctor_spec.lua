-- `fox doctor` against the fakes: one line per check, a fix on failure, exit 0 only
-- when every check passes.
local fakes = require("helpers.fakes")
local proc = require("helpers.proc")

local iio, slack

local SECRET = "whsec_Zm94LXRlc3Qtd2ViaG9vay1zZWNyZXQ="

local function doctor(env)
  local out, _, code = proc.run({ proc.FOX, "doctor" }, { env = env, unset = {
    "INCIDENT_IO_API_KEY", "INCIDENT_IO_API_KEY_FILE", "INCIDENT_IO_BASE_URL",
    "SLACK_BOT_TOKEN", "SLACK_BOT_TOKEN_FILE", "SLACK_API_URL",
    "INCIDENT_IO_WEBHOOK_SECRET", "INCIDENT_IO_WEBHOOK_SECRET_FILE" } })
  local lines = {}
  for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
  return lines, code, out
end

local function good_env(extra)
  local e = {
    INCIDENT_IO_BASE_URL = iio.url, INCIDENT_IO_API_KEY = fakes.KEYS.viewer,
    SLACK_BOT_TOKEN = "xoxb-test-token", SLACK_API_URL = slack.url .. "/api",
    INCIDENT_IO_WEBHOOK_SECRET = SECRET, FOX_LOG_LEVEL = "error",
  }
  for k, v in pairs(extra or {}) do
    if v == false then e[k] = nil else e[k] = v end
  end
  return e
end

-- The line of the named check.
local function line(lines, name)
  for _, l in ipairs(lines) do
    if l:find(name .. ":", 1, true) then return l end
  end
  return nil
end

describe("fox doctor", function()
  lazy_setup(function()
    iio = fakes.incidentio({ seed = "default" })
    slack = fakes.slack({ seed = "default" })
  end)
  lazy_teardown(function()
    if iio then iio:stop() end
    if slack then slack:stop() end
  end)
  before_each(function()
    iio:reset()
  end)

  it("passes with a read-only key, a good Slack token and a well-formed secret", function()
    local lines, code, out = doctor(good_env())
    assert.equals(0, code, out)
    assert.equals(7, #lines, out)
    assert.matches("^ok +incident.io API key: present %(INCIDENT_IO_API_KEY%)", lines[1])
    assert.matches("^ok +incident.io API host: .* reachable", line(lines, "incident.io API host"))
    assert.matches('^ok +incident.io API key accepted: "test%-viewer" with roles viewer$',
      line(lines, "incident.io API key accepted"))
    assert.matches("Critical=P0, High=P1, Medium=P2, Low=P3", line(lines, "severity policy"), 1, true)
    assert.matches("^ok +Slack token: accepted", line(lines, "Slack token"))
    assert.matches("^ok +webhook secret: well formed", line(lines, "webhook secret"))
    assert.equals("doctor: all 6 checks passed", lines[7])
    local ids = iio:requests({ path = "/v1/identity" })
    assert.equals("test-viewer", ids[#ids].key)
  end)

  it("warns about write roles the key does not need, and still passes", function()
    local lines, code, out = doctor(good_env({ INCIDENT_IO_API_KEY = fakes.KEYS.writer }))
    assert.equals(0, code, out)
    local l = line(lines, "incident.io API key accepted")
    assert.matches("^warn", l)
    assert.matches("write roles fox does not need (incident_creator, incident_editor)", l, 1, true)
    assert.matches("-- fix: ", l, 1, true)
  end)

  it("fails on a wrong key, with the fix", function()
    local lines, code = doctor(good_env({ INCIDENT_IO_API_KEY = "bad-key-42" }))
    assert.equals(1, code)
    local l = line(lines, "incident.io API key accepted")
    assert.matches("^FAIL", l)
    assert.matches("invalid or expired", l, 1, true)
    assert.matches("-- fix: ", l, 1, true)
    for _, x in ipairs(lines) do assert.is_nil(x:find("bad-key-42", 1, true)) end
    assert.matches("checks failed$", lines[#lines])
  end)

  it("fails without a key", function()
    local lines, code = doctor(good_env({ INCIDENT_IO_API_KEY = false }))
    assert.equals(1, code)
    assert.matches("^FAIL +incident.io API key: not set %-%- fix: set INCIDENT_IO_API_KEY", lines[1])
    assert.matches("^ok +incident.io API host", line(lines, "incident.io API host"))
  end)

  it("fails when the API host is unreachable", function()
    local port = fakes.closed_port()
    local lines, code = doctor(good_env({ INCIDENT_IO_BASE_URL = "http://127.0.0.1:" .. port }))
    assert.equals(1, code)
    local l = line(lines, "incident.io API host")
    assert.matches("^FAIL", l)
    assert.matches("connection refused", l, 1, true)
    assert.matches("allow outbound HTTPS to 127.0.0.1", l, 1, true)
  end)

  it("fails when a severity of the account is not in the policy", function()
    iio:faults({ { path = "/v1/severities", body = { severities = {
      { id = "01SEVMAJOR0000000000000000", name = "Major", rank = 2, description = "x" },
      { id = "01SEVCRIT00000000000000000", name = "Critical", rank = 3, description = "x" },
    } } } })
    local lines, code = doctor(good_env())
    assert.equals(1, code)
    local l = line(lines, "severity policy")
    assert.matches("^FAIL", l)
    assert.matches('"Major" (by rank: P1)', l, 1, true)
    assert.matches("scripts/policies/severity.lua", l, 1, true)
  end)

  it("fails on a Slack token auth.test rejects", function()
    local lines, code = doctor(good_env({ SLACK_BOT_TOKEN = "xoxb-nope" }))
    assert.equals(1, code)
    local l = line(lines, "Slack token")
    assert.matches("^FAIL", l)
    assert.matches("invalid_auth", l, 1, true)
    assert.is_nil(l:find("xoxb-nope", 1, true))
  end)

  it("fails on a malformed webhook secret", function()
    for _, bad in ipairs({ "Zm94LXRlc3Q=", "whsec_not base64!", "whsec_" }) do
      local lines, code = doctor(good_env({ INCIDENT_IO_WEBHOOK_SECRET = bad }))
      assert.equals(1, code)
      assert.matches("^FAIL +webhook secret: INCIDENT_IO_WEBHOOK_SECRET is not whsec_", line(lines, "webhook secret"))
    end
  end)

  it("skips Slack and the webhook secret when they are not configured", function()
    local lines, code, out = doctor(good_env({ SLACK_BOT_TOKEN = false, INCIDENT_IO_WEBHOOK_SECRET = false }))
    assert.equals(0, code, out)
    assert.matches("^skip +Slack token", line(lines, "Slack token"))
    assert.matches("^skip +webhook secret", line(lines, "webhook secret"))
  end)
end)
