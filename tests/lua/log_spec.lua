-- fox.log: what a child `fox run` really writes to stderr (one line per event, formats,
-- levels, redaction), plus the in-process helpers.
local log = require("fox.log")
local proc = require("helpers.proc")
local json = require("fox.json")

-- Runs `source` in a child fox with extra environment; returns its stdout+stderr lines
-- that came from the logger (they start with ts= or {"ts").
local function run_child(source, env)
  local out = proc.run_lua(source, { env = env, merge = true })
  local lines = {}
  for line in out:gmatch("[^\n]+") do
    if line:match("^ts=") or line:match('^{"ts"') then
      lines[#lines + 1] = line
    end
  end
  return lines, out
end

local function with_event(lines, event)
  local found = {}
  for _, line in ipairs(lines) do
    if line:find("event=" .. event, 1, true) or line:find('"event":"' .. event .. '"', 1, true) then
      found[#found + 1] = line
    end
  end
  return found
end

describe("fox.log output", function()
  it("writes logfmt lines with sorted, typed fields", function()
    local lines = run_child([[
      local log = require("fox.log")
      log.info("webhook.accepted", { incident = "INC-12", duration_ms = 3, ok = true,
        ratio = 0.5, title = "db is down", nested = { a = 1, b = { c = "x" } } })
    ]])
    local got = with_event(lines, "webhook.accepted")
    assert.equals(1, #got)
    assert.matches("^ts=%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ level=info "
      .. "event=webhook%.accepted ", got[1])
    assert.equals('duration_ms=3 incident=INC-12 nested.a=1 nested.b.c=x ok=true ratio=0.5 '
      .. 'title="db is down"', got[1]:match("event=webhook%.accepted (.*)$"))
  end)

  it("writes JSON lines when FOX_LOG_FORMAT=json", function()
    local lines = run_child([[
      require("fox.log").warn("sync.failed", { err = "timeout\nafter 5s", attempt = 2, ok = false })
    ]], { FOX_LOG_FORMAT = "json" })
    local got = with_event(lines, "sync.failed")
    assert.equals(1, #got)
    local v = json.decode(got[1])
    assert.equals("warn", v.level)
    assert.equals("sync.failed", v.event)
    assert.equals("timeout\nafter 5s", v.err)
    assert.equals(2, v.attempt)
    assert.equals(false, v.ok)
    assert.matches("Z$", v.ts)
  end)

  it("keeps an event on one line whatever its values hold", function()
    local lines, out = run_child([[
      local log = require("fox.log")
      log.error("multi.line", { trace = "a\nb\r\nc", quote = 'say "hi"', msg = "x\0y" })
      log.error("second.event", "plain message\nwith newline")
    ]])
    assert.equals(1, #with_event(lines, "multi.line"))
    assert.equals(1, #with_event(lines, "second.event"))
    assert.is_nil(out:find("\nb\r", 1, true))
    assert.truthy(with_event(lines, "second.event")[1]:find('msg="plain message\\nwith newline"', 1, true))
  end)

  it("filters by FOX_LOG_LEVEL and set_level", function()
    local lines = run_child([[
      local log = require("fox.log")
      log.debug("lvl.debug") log.info("lvl.info") log.warn("lvl.warn")
      log.set_level("error")
      log.warn("lvl.warn2") log.error("lvl.error")
      io.stdout:write("level=", log.level(), "\n")
    ]], { FOX_LOG_LEVEL = "warn" })
    assert.equals(0, #with_event(lines, "lvl.debug"))
    assert.equals(0, #with_event(lines, "lvl.info"))
    assert.equals(1, #with_event(lines, "lvl.warn"))
    assert.equals(0, #with_event(lines, "lvl.warn2"))
    assert.equals(1, #with_event(lines, "lvl.error"))
  end)

  it("never writes a registered secret", function()
    local secret = "xoxb-1234-SECRET-token"
    local _, out = run_child([[
      local log = require("fox.log")
      local secret = "xoxb-1234-SECRET-token"
      assert(log.redact(secret))
      log.info("leak.field", { token = secret, header = "Bearer " .. secret })
      log.info("leak.nested", { req = { headers = { authorization = secret } } })
      log.info("leak.msg", "calling with " .. secret)
      log.info("leak." .. secret, { [secret] = "key" })
      log.set_format("json")
      log.info("leak.json", { token = secret })
      io.stdout:write(log.scrub("scrubbed " .. secret), "\n")
    ]])
    assert.is_nil(out:find(secret, 1, true))
    assert.is_nil(out:find("SECRET", 1, true))
    local _, n = out:gsub("%[REDACTED%]", "")
    assert.is_true(n >= 7, out)
    assert.truthy(out:find("scrubbed [REDACTED]", 1, true))
  end)
end)

describe("fox.log in process", function()
  it("scrubs strings and ignores too-short secrets", function()
    assert.is_true(log.redact("spec-secret-value"))
    assert.equals("a [REDACTED] b", log.scrub("a spec-secret-value b"))
    assert.is_false(log.redact("abc"))
    assert.equals("abc", log.scrub("abc"))
    assert.equals("42", log.scrub(42))
  end)

  it("reports and validates levels and formats", function()
    local before = log.level()
    log.set_level("debug")
    assert.equals("debug", log.level())
    assert.is_true(log.enabled("info"))
    log.set_level(before)
    assert.has_error(function() log.set_level("loud") end)
    assert.has_error(function() log.set_format("xml") end)
    assert.has_error(function() log.info(nil) end)
    assert.has_error(function() log.info("x", 42) end)
    assert.matches("^[a-z]+$", log.format())
  end)
end)
