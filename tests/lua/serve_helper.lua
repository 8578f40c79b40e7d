-- Helpers for the `fox serve` integration specs: the fakes (incident.io and Slack),
-- `build/fox serve` as a child process, signed webhooks (built here with fox.crypto,
-- independently of fox.webhook), and bounded waits. Every wait has a deadline; nothing
-- here loops forever. Processes and temporary files: helpers.proc.
local crypto = require("fox.crypto")
local http = require("fox.http")
local json = require("fox.json")
local sys = require("fox.sys")
local task = require("fox.task")
local fake_servers = require("helpers.fakes")
local proc = require("helpers.proc")

local H = {
  FOX = proc.FOX, ROOT = proc.ROOT, sh_quote = proc.quote, read_file = proc.read_file,
  write_file = proc.write_file, tmpdir = proc.tmpdir, cleanup = proc.cleanup,
  wait_for = proc.wait_for, alive = proc.alive,
}
local sh_quote, alive = proc.quote, proc.alive

---------------------------------------------------------------------------
-- fakes
---------------------------------------------------------------------------

--- Starts the fake incident.io and the fake Slack; opts.io_args and opts.slack_args
-- are extra arguments (a list, or words separated by spaces). Returns {io=url,
-- slack=url, stop=fn}.
function H.start_fakes(opts)
  opts = opts or {}
  local function args(list, extra)
    if type(extra) == "string" then
      for word in extra:gmatch("%S+") do list[#list + 1] = word end
    else
      for _, a in ipairs(extra or {}) do list[#list + 1] = a end
    end
    return list
  end
  local io_fake = fake_servers.incidentio({ seed = "empty", timeout = 10,
    args = args({ "--no-rate-limit" }, opts.io_args) })
  local slack_fake = fake_servers.slack({ seed = "none", timeout = 10,
    args = args({ "--any-channel", "--no-rate-limit" }, opts.slack_args) })
  return {
    io = io_fake.url, slack = slack_fake.url,
    stop = function()
      io_fake:stop()
      slack_fake:stop()
    end,
  }
end

local function request(method, url, body, headers)
  local res, err = http.request({ method = method, url = url, timeout = 10,
    headers = headers or { ["Content-Type"] = "application/json" },
    body = body and (type(body) == "string" and body or json.encode(body)) or nil })
  assert(res, err)
  return res, res.body ~= "" and json.safe.decode(res.body) or nil
end
H.request = request

--- Creates an incident in the fake (no webhook unless the fake's webhook_url is set).
function H.create_incident(fakes, fields)
  local res, body = request("POST", fakes.io .. "/_fake/incidents", fields)
  assert(res.status == 201, "fake refused the incident: " .. res.body)
  return body.incident
end

function H.reset_fakes(fakes)
  request("POST", fakes.io .. "/_fake/reset", { seed = "empty" })
  request("DELETE", fakes.slack .. "/_fake/messages")
end

--- Messages the fake Slack received.
function H.messages(fakes)
  local _, body = request("GET", fakes.slack .. "/_fake/messages")
  return body.messages
end

--- Messages per incident reference ("INC-3" -> count), from the test playbook's text.
function H.posts_by_ref(fakes)
  local counts = {}
  for _, m in ipairs(H.messages(fakes)) do
    local ref = tostring(m.text):match("(INC%-%d+)")
    if ref then counts[ref] = (counts[ref] or 0) + 1 end
  end
  return counts
end

---------------------------------------------------------------------------
-- webhooks
---------------------------------------------------------------------------

--- A fresh whsec_ secret.
function H.new_secret()
  return "whsec_" .. crypto.base64_encode(crypto.random_bytes(24))
end

--- Standard Webhooks signature: base64(HMAC-SHA256(key, id.ts.body)), key = the
-- base64-decoded secret after whsec_.
function H.sign(secret, id, ts, body)
  local key = assert(crypto.base64_decode(secret:gsub("^whsec_", "")))
  return "v1," .. crypto.base64_encode(crypto.hmac_sha256(key, id .. "." .. ts .. "." .. body))
end

local counter = 0
function H.webhook_id()
  counter = counter + 1
  return string.format("msg_test_%d_%d_%s", sys.pid(), counter, crypto.hex(crypto.random_bytes(4)))
end

--- The envelope incident.io sends for a created incident.
function H.created_event(incident, private)
  local et = private and "private_incident.incident_created_v2" or "public_incident.incident_created_v2"
  return { event_type = et, [et] = private and { id = incident.id } or incident }
end

--- Posts a signed delivery. opts: id, ts, secret (default fox.secret), body (raw),
-- signature (override). Returns the response and the elapsed seconds.
function H.deliver(fox, event, opts)
  opts = opts or {}
  local body = opts.body or json.encode(event)
  local id = opts.id or H.webhook_id()
  local ts = tostring(opts.ts or math.floor(sys.wall_time()))
  local sig = opts.signature or H.sign(opts.secret or fox.secret, id, ts, body)
  local t0 = task.now()
  local res, err = http.request({ method = "POST", url = fox.url .. "/webhooks/incident-io", timeout = 10,
    headers = { ["Content-Type"] = "application/json", ["webhook-id"] = id, ["webhook-timestamp"] = ts,
      ["webhook-signature"] = sig }, body = body })
  return res, task.now() - t0, err
end

---------------------------------------------------------------------------
-- fox serve
---------------------------------------------------------------------------

-- Lua source of a value (config files).
local function lua_value(v, indent)
  indent = indent or ""
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) ~= "table" then return tostring(v) end
  if v.__raw then return v.__raw end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local out = { "{\n" }
  for _, k in ipairs(keys) do
    local kk = type(k) == "number" and "" or (k .. " = ")
    out[#out + 1] = indent .. "  " .. kk .. lua_value(v[k], indent .. "  ") .. ",\n"
  end
  out[#out + 1] = indent .. "}"
  return table.concat(out)
end
H.lua_value = lua_value

--- Writes the test playbook (VERSION = version) into dir; returns its path.
function H.write_playbook(dir, version, broken)
  local src = assert(H.read_file(H.ROOT .. "/tests/lua/fixtures/serve/playbook.lua"))
  src = src:gsub('M%.VERSION = "v1"', 'M.VERSION = "' .. version .. '"')
  if broken then src = src .. "\nthis is not lua (\n" end
  local path = dir .. "/playbook.lua"
  H.write_file(path, src)
  return path
end

H.Fox = {}

--- A fox serve instance in its own directory. opts: fakes, config (extra keys), env
-- (extra environment), secret (webhook secret; false for none), api_key,
-- api_key_file (write the key to a file instead of the environment).
function H.new_fox(opts)
  local dir = H.tmpdir("serve")
  local fox = { dir = dir, state_dir = dir .. "/state", log = dir .. "/fox.log", runs = 0 }
  fox.secret = opts.secret == nil and H.new_secret() or opts.secret or nil
  fox.api_key = opts.api_key or "test-viewer-key"
  fox.playbook = H.write_playbook(dir, "v1")
  local cfg = {
    listen = "127.0.0.1:0",
    state_dir = fox.state_dir,
    playbook = fox.playbook,
    playbook_options = { slack_url = opts.fakes.slack .. "/api", delay = 0 },
    incidentio = { base_url = opts.fakes.io },
    poll = false,
    log_level = "debug",
  }
  if fox.secret then cfg.webhook_secret = { __raw = 'env("INCIDENT_IO_WEBHOOK_SECRET")' } end
  fox.cfg = cfg
  fox.config_path = dir .. "/fox.conf.lua"
  setmetatable(fox, { __index = H.Fox })
  fox:set_config(opts.config or {})
  local env = { FOX_LOG_FORMAT = "logfmt" }
  if fox.secret then env.INCIDENT_IO_WEBHOOK_SECRET = fox.secret end
  if opts.api_key_file then
    fox.key_file = dir .. "/api_key"
    H.write_file(fox.key_file, fox.api_key .. "\n")
    env.INCIDENT_IO_API_KEY_FILE = fox.key_file
  else
    env.INCIDENT_IO_API_KEY = fox.api_key
  end
  for k, v in pairs(opts.env or {}) do env[k] = v end
  fox.env = env
  return fox
end

--- Merges overrides into the config (one level deep for tables) and rewrites the file.
function H.Fox:set_config(overrides)
  local cfg = self.cfg
  for k, v in pairs(overrides) do
    if type(v) == "table" and type(cfg[k]) == "table" and not v.__raw and not cfg[k].__raw then
      for kk, vv in pairs(v) do cfg[k][kk] = vv end
    else
      cfg[k] = v
    end
  end
  H.write_file(self.config_path, "return " .. lua_value(cfg) .. "\n")
end

--- Starts (or restarts) the process; waits until it listens. Returns self.
-- With expect_failure, waits for it to exit instead and returns the exit status.
function H.Fox:start(extra_args, expect_failure)
  self.runs = self.runs + 1
  local port_file = self.dir .. "/port"
  os.remove(port_file)
  self.exit_file = self.dir .. "/exit." .. self.runs
  local serve = proc.command({ H.FOX, "serve", "--config", self.config_path, "--port-file", port_file }, {
    unset = { "INCIDENT_IO_API_KEY", "INCIDENT_IO_API_KEY_FILE", "INCIDENT_IO_WEBHOOK_SECRET" },
    env = self.env,
  })
  -- A subshell waits for it to record its exit status.
  local cmd = string.format("( %s %s 2>> %s & echo $! > %s; wait $!; echo $? > %s ) > /dev/null 2>&1 &",
    serve, extra_args or "", sh_quote(self.log), sh_quote(self.dir .. "/pid"), sh_quote(self.exit_file))
  assert(os.execute(cmd))
  if expect_failure then return self:wait_exit(10) end
  local port = proc.wait_port(port_file, 10)
  self.pid = tonumber(H.read_file(self.dir .. "/pid"))
  assert(port, "fox serve did not start:\n" .. tostring(H.read_file(self.log)))
  self.url = "http://127.0.0.1:" .. port
  return self
end

--- Sends a signal; returns after it is sent.
function H.Fox:signal(name)
  assert(self.pid, "not started")
  proc.kill(self.pid, name)
end

--- Waits for the process to end; returns its exit status (nil on timeout).
function H.Fox:wait_exit(timeout)
  local code = H.wait_for(function()
    local s = H.read_file(self.exit_file)
    return s and s:match("^(%d+)")
  end, timeout or 10)
  return code and tonumber(code)
end

--- SIGTERM and wait; returns the exit status.
function H.Fox:stop(timeout)
  if not self.pid or not alive(self.pid) then return self:wait_exit(1) end
  self:signal("TERM")
  local code = self:wait_exit(timeout or 10)
  if not code then
    self:signal("KILL")
    self:wait_exit(2)
  end
  return code
end

function H.Fox:kill9()
  self:signal("KILL")
  return self:wait_exit(5)
end

function H.Fox:get(path)
  local res, err = http.request({ url = self.url .. path, timeout = 5 })
  assert(res, err)
  return res
end

function H.Fox:health()
  local res = self:get("/healthz")
  return json.decode(res.body), res.status
end

--- The value of one metric sample (exact name with labels), or 0.
function H.Fox:metric(sample)
  local body = self:get("/metrics").body
  for line in body:gmatch("[^\n]+") do
    local name, value = line:match("^(.-) (%S+)$")
    if name == sample then return tonumber(value) end
  end
  return 0
end

--- The durable records of a stopped fox: {incident id -> record} (opens the state).
function H.Fox:records()
  local state = require("fox.state")
  local st = assert(state.open(self.state_dir))
  local out = {}
  for _, row in ipairs(assert(st:list("incidents"))) do out[row.key] = json.decode(row.value) end
  local queued = assert(st:list("queue"))
  st:close()
  return out, queued
end

function H.Fox:log_text()
  return H.read_file(self.log) or ""
end

return H
