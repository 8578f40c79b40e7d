-- Starts the fake servers of tests/fakes/ for a spec and talks to their control API.
--
--   local fakes = require("helpers.fakes")
--   local fake = fakes.incidentio({ seed = "default", args = { "--latency-ms", "5" } })
--   fake.url                       -- http://127.0.0.1:PORT
--   fake:faults({ { path_prefix = "/v2/incidents", status = 503, times = 2 } })
--   fake:requests({ path = "/v2/incidents" })   -- the log, with decoded queries
--   fake:api_requests({ method = "GET" })        -- the same without /_fake/ calls
--   fake:clear_requests(); fake:reset(); fake:config({ timeline_items = false })
--   fake:stats(); fake:create_incident({...}); fake:update_incident("INC-2", {...})
--   fake:stop()
--
-- The fake is started with --parent-pid, so it exits with this fox process even when a
-- spec fails before stop().
local http = require("fox.http")
local json = require("fox.json")
local task = require("fox.task")
local sys = require("fox.sys")
local proc = require("helpers.proc")

local M = {}

M.KEYS = { viewer = "test-viewer-key", writer = "test-writer-key", admin = "test-admin-key" }

local Fake = {}
Fake.__index = Fake

-- Starts tests/fakes/<kind>/server.js. opts: seed, args (extra CLI arguments),
-- timeout (seconds to wait for the port, default 20).
function M.start(kind, opts)
  opts = opts or {}
  local base = proc.tmpname()
  local port_file, log_file = base .. ".port", base .. ".log"
  local argv = { "node", proc.ROOT .. "/tests/fakes/" .. kind .. "/server.js", "--port", "0",
                 "--port-file", port_file, "--parent-pid", tostring(sys.pid()) }
  if opts.seed then argv[#argv + 1] = "--seed"; argv[#argv + 1] = opts.seed end
  for _, a in ipairs(opts.args or {}) do argv[#argv + 1] = a end
  local pid = proc.spawn(argv, { log = log_file })
  local port = proc.wait_port(port_file, opts.timeout or 20)
  if not port then
    proc.kill(pid)
    error("the " .. kind .. " fake did not start within " .. (opts.timeout or 20) .. " s:\n"
      .. (proc.read_file(log_file) or ""), 2)
  end
  return setmetatable({
    kind = kind, pid = pid, port = port, url = "http://127.0.0.1:" .. port,
    port_file = port_file, log_file = log_file,
  }, Fake)
end

function M.incidentio(opts)
  return M.start("incidentio", opts)
end

function M.slack(opts)
  return M.start("slack", opts)
end

-- Calls the control API; returns the decoded body (raises on failure).
function Fake:control(method, path, body, query)
  local url = self.url .. path
  if query then
    local q = http.build_query(query)
    if q ~= "" then url = url .. "?" .. q end
  end
  local resp, err = http.request({
    method = method, url = url, timeout = 30,
    headers = body ~= nil and { ["Content-Type"] = "application/json" } or nil,
    body = body ~= nil and json.encode(body) or nil,
  })
  assert(resp, "fake control " .. method .. " " .. path .. ": " .. tostring(err))
  local decoded = json.safe.decode(resp.body)
  assert(resp.status < 300, "fake control " .. method .. " " .. path .. " -> " .. resp.status .. " " .. resp.body)
  return decoded
end

-- Replaces the fault rules (a list, or one rule).
function Fake:faults(rules)
  return self:control("POST", "/_fake/faults", rules)
end

function Fake:clear_faults()
  return self:control("DELETE", "/_fake/faults")
end

-- The request log (filter: path, path_prefix, method, key, status, since).
function Fake:requests(filter)
  return self:control("GET", "/_fake/requests", nil, filter).requests
end

function Fake:clear_requests()
  return self:control("DELETE", "/_fake/requests")
end

function Fake:reset(body)
  return self:control("POST", "/_fake/reset", body or {})
end

function Fake:config(cfg)
  return self:control("POST", "/_fake/config", cfg).config
end

function Fake:stats()
  return self:control("GET", "/_fake/stats")
end

function Fake:create_incident(fields)
  return self:control("POST", "/_fake/incidents", fields).incident
end

function Fake:add_update(ref, fields)
  return self:control("POST", "/_fake/incidents/" .. ref .. "/updates", fields)
end

function Fake:update_incident(ref, fields)
  return self:control("PATCH", "/_fake/incidents/" .. ref, fields).incident
end

-- The request log without the control API's own requests.
function Fake:api_requests(filter)
  local out = {}
  for _, r in ipairs(self:requests(filter)) do
    if r.path:sub(1, 7) ~= "/_fake/" then out[#out + 1] = r end
  end
  return out
end

function Fake:log()
  return proc.read_file(self.log_file) or ""
end

function Fake:stop()
  if self.stopped then return end
  self.stopped = true
  proc.kill(self.pid)
  os.remove(self.port_file)
  os.remove(self.log_file)
end

-- Values of a query parameter in a logged request, always as a list.
function M.query_values(entry, key)
  local v = entry.query and entry.query[key]
  if v == nil then return {} end
  if type(v) == "table" then return v end
  return { v }
end

-- A port on 127.0.0.1 nothing listens on.
function M.closed_port()
  local port = proc.free_port()
  task.sleep(0.05)
  return port
end

return M
