-- fox.config: the sandboxed fox.conf.lua, its schema, env() and `fox check`.
local config = require("fox.config")
local log = require("fox.log")
local proc = require("helpers.proc")

local files = {}

local function conf(text)
  local path = proc.tmpname()
  proc.write_file(path, text)
  files[#files + 1] = path
  return path
end

local function errors_of(text)
  local cfg, errs = config.load(conf(text))
  assert.is_nil(cfg)
  return table.concat(errs, "\n"), errs
end

describe("fox.config", function()
  after_each(function()
    for _, p in ipairs(files) do os.remove(p) end
    files = {}
  end)

  it("gives every key its default without a file", function()
    local cfg = assert(config.load(nil))
    assert.equals("127.0.0.1:8080", cfg.listen)
    assert.equals("./var", cfg.state_dir)
    assert.equals(30, cfg.poll_interval)
    assert.equals(86400, cfg.max_catch_up)
    assert.equals(8, cfg.concurrency)
    assert.equals(120, cfg.investigation_timeout)
    assert.equals(30, cfg.drain_timeout)
    assert.equals(1048576, cfg.max_body)
    assert.equals(60, cfg.request_timeout)
    assert.is_nil(cfg.max_connections) -- the listener picks it from the open-files limit
    assert.equals("playbooks.investigate", cfg.playbook)
    assert.same({ "test", "tutorial" }, cfg.skip.modes)
    assert.same({}, cfg.skip.name_patterns)
    assert.is_table(cfg.incidentio)
  end)

  it("checks the listener's limits", function()
    local cfg = assert(config.load(conf("return { request_timeout = 5, max_connections = 200 }")))
    assert.equals(5, cfg.request_timeout)
    assert.equals(200, cfg.max_connections)
    assert.matches("max_connections", errors_of("return { max_connections = 0 }"))
    assert.matches("request_timeout", errors_of("return { request_timeout = 0 }"))
    assert.matches("max_connections", errors_of("return { max_connections = 'many' }"))
  end)

  it("turns the poller on by default only when no webhook secret is set", function()
    local cfg = assert(config.load(conf("return { webhook_secret = 'whsec_dGVzdHRlc3R0ZXN0' }")))
    assert.is_false(cfg.poll)
    cfg = assert(config.load(conf("return { webhook_secret = 'whsec_dGVzdHRlc3R0ZXN0', poll = true }")))
    assert.is_true(cfg.poll)
    -- Hermetic: the suite runs with a canary INCIDENT_IO_WEBHOOK_SECRET (run-tests.sh),
    -- which would be the default here.
    local sys = require("fox.sys")
    local real_secret = sys.secret
    sys.secret = function(name)
      if name == "INCIDENT_IO_WEBHOOK_SECRET" then return nil end
      return real_secret(name)
    end
    finally(function() sys.secret = real_secret end)
    cfg = assert(config.load(conf("return { webhook_secret = env('FOX_SPEC_NO_SUCH_VAR') }")))
    assert.is_nil(cfg.webhook_secret)
    assert.is_true(cfg.poll)
  end)

  it("reads env(NAME), then the file named by NAME_FILE, then the default", function()
    local home = os.getenv("HOME")
    local cfg = assert(config.load(conf([[return { playbook_options = {
      home = env("HOME"), missing = env("FOX_SPEC_NO_SUCH_VAR"), dflt = env("FOX_SPEC_NO_SUCH_VAR", "d") } }]])))
    assert.equals(home, cfg.playbook_options.home)
    assert.is_nil(cfg.playbook_options.missing)
    assert.equals("d", cfg.playbook_options.dflt)
  end)

  it("names the key of an unknown setting and suggests the closest valid one, with the line", function()
    local text = errors_of("return {\n  listen = '127.0.0.1:9000',\n  pol_interval = 5,\n}\n")
    assert.matches(":3: unknown key 'pol_interval' %(did you mean 'poll_interval'%?%)", text)
    text = errors_of("return { skip = { mode = { 'test' } } }")
    assert.matches("unknown key 'skip.mode' %(did you mean 'skip.modes'%?%)", text)
    text = errors_of("return { incidentio = { api_kye = 'x' } }")
    assert.matches("unknown key 'incidentio.api_kye' %(did you mean 'incidentio.api_key'%?%)", text)
    text = errors_of("return { completely_unrelated_thing = 1 }")
    assert.matches("unknown key 'completely_unrelated_thing'$", text)
  end)

  it("reports wrong types and out-of-range values naming the key", function()
    local text, errs = errors_of([[return {
      concurrency = "8",
      poll_interval = -1,
      listen = "localhost",
      skip = { modes = "test" },
      log_level = "loud",
      poll = "yes",
    }]])
    assert.equals(6, #errs)
    assert.matches(':2: concurrency must be an integer %(got string "8"%)', text)
    assert.matches(":3: poll_interval must be at least", text)
    assert.matches(":4: listen must be HOST:PORT", text)
    assert.matches(":5: skip.modes must be an array of strings", text)
    assert.matches(":6: log_level must be one of debug, info, warn, error", text)
    assert.matches(":7: poll must be a boolean", text)
  end)

  it("reports a syntax error with file and line, and a file that returns no table", function()
    local text = errors_of("return {\n  listen = \n")
    assert.matches(":3: unexpected symbol", text)
    text = errors_of("return 42")
    assert.matches("must return a table %(got number%)", text)
  end)

  it("evaluates the file in a sandbox, and bounds its work", function()
    local text = errors_of("os.execute('true') return {}")
    assert.matches("execute", text)
    text = errors_of("return { x = io.open('/etc/passwd') }")
    assert.matches("io", text)
    text = errors_of("return { x = require('fox.sys') }")
    assert.matches("require", text)
    text = errors_of("while true do end")
    assert.matches("ran too long", text)
  end)

  it("rejects a malformed webhook secret without repeating it", function()
    local text = errors_of("return { webhook_secret = 'not-a-whsec-secret-123' }")
    assert.matches("webhook_secret must be the endpoint's signing secret", text)
    assert.is_nil(text:find("not-a-whsec-secret-123", 1, true))
    text = errors_of("return { webhook_secret = 12345678 }")
    assert.matches("webhook_secret must be a string %(got number%)", text)
    assert.is_nil(text:find("12345678", 1, true))
  end)

  it("registers secrets with the log redactor", function()
    local secret = "whsec_c2VjcmV0LWZvci1yZWRhY3Rpb24tdGVzdA=="
    assert(config.load(conf("return { webhook_secret = '" .. secret .. "' }")))
    assert.equals("x [REDACTED] y", log.scrub("x " .. secret .. " y"))
  end)

  it("applies command-line overrides over the file", function()
    local cfg = assert(config.load(conf("return { listen = '127.0.0.1:1', state_dir = 'a' }"),
      { overrides = { listen = "0.0.0.0:2" } }))
    assert.equals("0.0.0.0:2", cfg.listen)
    assert.equals("a", cfg.state_dir)
  end)

  it("parses listen addresses", function()
    assert.same({ "127.0.0.1", 8080 }, { config.parse_listen("127.0.0.1:8080") })
    assert.same({ "127.0.0.1", 0 }, { config.parse_listen(":0") })
    assert.same({ "::1", 9 }, { config.parse_listen("[::1]:9") })
    assert.is_nil(config.parse_listen("8080"))
    assert.is_nil(config.parse_listen("h:70000"))
  end)

  it("loads a playbook given as a file relative to the config", function()
    local dir = proc.tmpdir("config")
    proc.write_file(dir .. "/pb.lua", "return { run = function() return { summary = 'from file' } end }")
    local cfg = assert(config.load(nil))
    cfg.dir = dir
    local pb = config.load_code("pb.lua", cfg)
    assert.equals("from file", pb.run().summary)
    assert.equals("function", type(config.load_code("policies.skip", cfg)))
    proc.cleanup()
  end)

  it("check() counts and prints the errors of the file", function()
    local path = conf("return { pol_interval = 1, concurrency = 0 }")
    local real_stderr = io.stderr
    local out = {}
    -- luacheck: push ignore 122
    io.stderr = { write = function(_, ...) for _, s in ipairs({ ... }) do out[#out + 1] = s end end }
    local n = config.check(path)
    io.stderr = real_stderr
    -- luacheck: pop
    assert.equals(2, n)
    local text = table.concat(out)
    assert.matches("did you mean 'poll_interval'", text)
    assert.matches("concurrency must be at least 1", text)
  end)

  it("accepts the annotated example configuration", function()
    local cfg, errs = config.load("examples/fox.conf.lua")
    assert.is_nil(errs)
    assert.equals("127.0.0.1:8080", cfg.listen)
  end)
end)
