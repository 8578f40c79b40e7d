-- fox.slack against the fake Slack (tests/fakes/slack/server.js): posting, updating,
-- pinning and reacting; `ok` always checked; 429 Retry-After waited out; errors a
-- person can act on; the token from the environment or a file, never logged.
local fakes = require("helpers.fakes")
local slack = require("fox.slack")
local log = require("fox.log")
local task = require("fox.task")
local sys = require("fox.sys")

local TOKEN = "xoxb-test-token"

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

describe("fox.slack", function()
  local fake, client

  setup(function()
    fake = fakes.slack({ seed = "none", args = { "--channel", "C0INCIDENT:inc-2-payments" } })
  end)

  teardown(function()
    if fake then fake:stop() end
  end)

  before_each(function()
    fake:reset()
    fake:clear_requests()
    client = slack.new({ base_url = fake.url .. "/api", token = TOKEN })
  end)

  it("posts a message with blocks and text, and reads it back from the fake", function()
    assert.is_true(client:configured())
    local body, err = client:post_message({ channel = "C0INCIDENT", text = "fallback",
      blocks = { { type = "section", text = { type = "mrkdwn", text = "*hello*" } } } })
    assert.is_nil(err)
    assert.equals("C0INCIDENT", body.channel)
    assert.matches("^%d+%.%d+$", body.ts)
    local msgs = fake:control("GET", "/_fake/messages", nil, { channel = "C0INCIDENT" }).messages
    assert.equals(1, #msgs)
    assert.equals("fallback", msgs[1].text)
    assert.equals("*hello*", msgs[1].blocks[1].text.text)
    assert.is_false(msgs[1].unfurl_links)
    -- JSON with a charset, bearer auth
    local req = fake:requests({ path = "/api/chat.postMessage" })[1]
    assert.equals("application/json; charset=utf-8", req.headers["content-type"])
    assert.matches("^Bearer xoxb", req.headers.authorization)
  end)

  it("updates, pins and reacts; a second pin or reaction counts as done", function()
    local body = assert(client:post_message({ channel = "C0INCIDENT", text = "first" }))
    assert.truthy(client:update({ channel = "C0INCIDENT", ts = body.ts, text = "second" }))
    assert.is_true(client:pin("C0INCIDENT", body.ts))
    local again, why = client:pin("C0INCIDENT", body.ts)
    assert.is_true(again)
    assert.equals("already_pinned", why)
    assert.is_true(client:react("C0INCIDENT", body.ts, "fox_face"))
    assert.is_true(client:react("C0INCIDENT", body.ts, "fox_face"))
    local msgs = fake:control("GET", "/_fake/messages").messages
    assert.equals("second", msgs[1].text)
    assert.is_true(msgs[1].pinned)
    assert.same({ "fox_face" }, msgs[1].reactions)
    assert.equals(1, #fake:control("GET", "/_fake/pins").pins)
  end)

  it("checks the token with auth.test", function()
    local who = assert(client:auth_test())
    assert.equals("T04ACMEPAY", who.team_id)
  end)

  it("says to invite the bot when it is not in the channel", function()
    fake:control("POST", "/_fake/channels", { id = "C0OUTSIDE", is_member = false })
    local body, err = client:post_message({ channel = "C0OUTSIDE", text = "x" })
    assert.is_nil(body)
    assert.equals("forbidden", err.kind)
    assert.equals("not_in_channel", err.error)
    assert.truthy(tostring(err):find("invite it to the channel", 1, true))
    assert.truthy(tostring(err):find("C0OUTSIDE", 1, true))
  end)

  it("names a channel that does not exist, and an archived one", function()
    local _, err = client:post_message({ channel = "C0NOPE", text = "x" })
    assert.equals("not_found", err.kind)
    assert.truthy(tostring(err):find("Slack channel C0NOPE not found", 1, true))
    fake:control("POST", "/_fake/channels", { id = "C0OLD", is_archived = true })
    local _, err2 = client:post_message({ channel = "C0OLD", text = "x" })
    assert.equals("is_archived", err2.error)
    assert.truthy(tostring(err2):find("archived", 1, true))
  end)

  it("says the token is wrong, naming where it came from", function()
    local bad = slack.new({ base_url = fake.url .. "/api", token = "xoxb-wrong" })
    local _, err = bad:post_message({ channel = "C0INCIDENT", text = "x" })
    assert.equals("auth", err.kind)
    assert.equals("invalid_auth", err.error)
    assert.truthy(tostring(err):find("Bot User OAuth Token", 1, true))
    assert.is_nil(tostring(err):find("xoxb-wrong", 1, true))
  end)

  it("names the missing scope", function()
    fake:control("POST", "/_fake/tokens", { token = "xoxb-narrow", scopes = { "chat:write" } })
    local narrow = slack.new({ base_url = fake.url .. "/api", token = "xoxb-narrow" })
    local body = assert(narrow:post_message({ channel = "C0INCIDENT", text = "x" }))
    local ok, err = narrow:pin("C0INCIDENT", body.ts)
    assert.is_nil(ok)
    assert.equals("forbidden", err.kind)
    assert.equals("pins:write", err.needed)
    assert.truthy(tostring(err):find("lacks the scope pins:write", 1, true))
    assert.truthy(tostring(err):find("reinstall the app", 1, true))
  end)

  it("waits out a 429 for its Retry-After, then posts once", function()
    fake:faults({ { path = "/api/chat.postMessage", status = 429, retry_after = 1, times = 1 } })
    local t0 = task.now()
    local body, err = client:post_message({ channel = "C0INCIDENT", text = "after the limit" })
    assert.is_nil(err)
    assert.truthy(body.ts)
    assert.is_true(task.now() - t0 >= 0.95)
    assert.equals(2, #fake:requests({ path = "/api/chat.postMessage" }))
    assert.equals(1, #fake:control("GET", "/_fake/messages").messages)
  end)

  it("gives up on a rate limit that does not end", function()
    local c = slack.new({ base_url = fake.url .. "/api", token = TOKEN, max_429 = 2 })
    fake:faults({ { path = "/api/chat.postMessage", status = 429, retry_after = 0 } })
    local _, err = c:post_message({ channel = "C0INCIDENT", text = "x" })
    assert.equals("rate_limited", err.kind)
    assert.equals(2, #fake:requests({ path = "/api/chat.postMessage" }))
  end)

  it("does not repeat a post after a server error, but repeats a pin", function()
    fake:faults({ { path = "/api/chat.postMessage", status = 500, times = 1 } })
    local _, err = client:post_message({ channel = "C0INCIDENT", text = "x" })
    assert.equals("server", err.kind)
    assert.truthy(tostring(err):find("will not repeat a post", 1, true))
    assert.equals(1, #fake:requests({ path = "/api/chat.postMessage" }))
    fake:clear_faults()
    local body = assert(client:post_message({ channel = "C0INCIDENT", text = "y" }))
    fake:faults({ { path = "/api/pins.add", status = 503, times = 1, retry_after = 0 } })
    assert.is_true(client:pin("C0INCIDENT", body.ts))
    assert.equals(2, #fake:requests({ path = "/api/pins.add" }))
  end)

  it("reports ok:false errors it has no special words for, and a host it cannot reach", function()
    fake:faults({ { path = "/api/chat.postMessage", slack_error = "team_access_not_granted", times = 1 } })
    local _, err = client:post_message({ channel = "C0INCIDENT", text = "x" })
    assert.equals("team_access_not_granted", err.error)
    assert.truthy(tostring(err):find("ok:false (team_access_not_granted)", 1, true))
    local down = slack.new({ base_url = "http://127.0.0.1:" .. fakes.closed_port() .. "/api", token = TOKEN,
                             max_attempts = 2, backoff_base = 0.01 })
    local _, nerr = down:auth_test()
    assert.equals("network", nerr.kind)
    assert.truthy(tostring(nerr):find("unable to reach the Slack API", 1, true))
  end)

  it("needs a token, and says where to put it", function()
    local none = slack.new({ base_url = fake.url .. "/api", token = false })
    assert.is_false(none:configured())
    local _, err = none:post_message({ channel = "C0INCIDENT", text = "x" })
    assert.equals("config", err.kind)
    assert.truthy(tostring(err):find("SLACK_BOT_TOKEN", 1, true))
    assert.equals(0, #fake:requests({ path = "/api/chat.postMessage" }))
  end)

  it("reads the token from SLACK_BOT_TOKEN_FILE and SLACK_API_URL, and never logs it", function()
    local dir = os.tmpname()
    local token_file, script = dir .. ".token", dir .. ".lua"
    local f = assert(io.open(token_file, "wb"))
    f:write(TOKEN, "\n")
    f:close()
    f = assert(io.open(script, "wb"))
    f:write([[
      local slack = require("fox.slack")
      local log = require("fox.log")
      local c = slack.new()
      local who = assert(c:auth_test())
      log.warn("token_check", { token = c.cfg.token, source = c.cfg.token_source })
      print(who.team_id, c.cfg.token == "]] .. TOKEN .. [[")
    ]])
    f:close()
    local cmd = "env -u SLACK_BOT_TOKEN SLACK_BOT_TOKEN_FILE=" .. sh_quote(token_file) .. " SLACK_API_URL="
      .. sh_quote(fake.url .. "/api") .. " " .. (sys.getenv("FOX_BIN") or "build/fox") .. " run "
      .. sh_quote(script) .. " 2>&1"
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    os.remove(token_file)
    os.remove(script)
    os.remove(dir)
    assert.truthy(out:find("T04ACMEPAY\ttrue", 1, true), out)
    assert.truthy(out:find("source=SLACK_BOT_TOKEN_FILE", 1, true), out)
    assert.is_nil(out:find(TOKEN, 1, true), out)
    -- in this process too: a client's token is registered for redaction
    slack.new({ token = "xoxb-very-secret-123" })
    assert.is_nil(log.scrub("token xoxb-very-secret-123 here"):find("xoxb-very-secret-123", 1, true))
  end)
end)
