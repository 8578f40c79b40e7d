-- A real Prometheus server (Debian's `prometheus` package) for the specs and the demo:
-- generates OpenMetrics text for a scenario, turns it into TSDB blocks with
-- `promtool tsdb create-blocks-from openmetrics`, starts `prometheus` on 127.0.0.1 with
-- that data directory and waits for /-/ready.
--
--   local prom = require("helpers.prometheus")
--   local ok, why = prom.available()
--   local server = prom.start({ scenario = "spike", now = os.time(), change_at = t })
--   server.url ... server:stop()
--
-- Scenarios (times relative to `now`, data from now - 3 h to now - 30 s every 15 s):
--   spike  payments-api: 5xx ratio 0.5% that jumps 10x at change_at (default now - 17
--          min), p99 latency about 0.25 s -> 2.4 s at the same time, CPU flat;
--          checkout-service: everything flat; idle-service: no traffic (NaN ratios).
--   demo   the same with the demo incident: incident_at (default now - 20 min), the
--          deploy 20 min before it and the jump 3 min after the deploy.
--
-- As a script, for `make demo` (leaves Prometheus running until --parent-pid exits):
--   build/fox run tests/lua/helpers/prometheus.lua --scenario demo --port-file F \
--       --parent-pid PID [--incident-at EPOCH|RFC3339] [--port N]
local http = require("fox.http")
local task = require("fox.task")
local sys = require("fox.sys")
local timerange = require("fox.timerange")
-- As a script (make demo) tests/lua is not on the module path yet.
if not package.path:find("tests/lua/?.lua", 1, true) then package.path = "tests/lua/?.lua;" .. package.path end
local proc = require("helpers.proc")

local M = {}

M.STEP = 15
M.READY_TIMEOUT = 20

local sh_quote, read_file, write_file = proc.quote, proc.read_file, proc.write_file

--- true, or nil and why Prometheus cannot run here.
function M.available()
  local prom, promtool = proc.which("prometheus"), proc.which("promtool")
  if not prom or not promtool then
    return nil, "the prometheus package is not installed (no prometheus/promtool in PATH): "
      .. "run `make deps` or `apt-get install -y prometheus`"
  end
  return true
end

---------------------------------------------------------------------------
-- data
---------------------------------------------------------------------------

local function labels_text(labels)
  local keys = {}
  for k in pairs(labels) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    parts[#parts + 1] = string.format('%s="%s"', k, tostring(labels[k]):gsub("\\", "\\\\"):gsub('"', '\\"'))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

--- OpenMetrics text of families from `from` to `to` every `step` seconds.
-- families: {{name=, type="counter"|"gauge", series={{labels={...}, rate=fn(t)} (counter)
--   | {labels={...}, value=fn(t)} (gauge)}}}. Counter samples are named NAME_total.
function M.openmetrics(families, from, to, step)
  step = step or M.STEP
  local out = {}
  for _, fam in ipairs(families) do
    out[#out + 1] = "# TYPE " .. fam.name .. " " .. (fam.type == "counter" and "counter" or "gauge")
    for _, s in ipairs(fam.series) do
      local name = fam.type == "counter" and (fam.name .. "_total") or fam.name
      local lt = labels_text(s.labels)
      local acc = 0
      for t = from, to, step do
        local v
        if fam.type == "counter" then
          acc = acc + s.rate(t) * step
          v = acc
        else
          v = s.value(t)
        end
        out[#out + 1] = string.format("%s%s %.4f %d", name, lt, v, t)
      end
    end
  end
  out[#out + 1] = "# EOF"
  return table.concat(out, "\n") .. "\n"
end

local BUCKETS = { "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf" }
local FAST = { 0.5, 0.8, 0.992, 0.998, 1, 1, 1, 1 }       -- p99 ~ 0.25 s
local SLOW = { 0.45, 0.72, 0.88, 0.9, 0.92, 0.995, 1, 1 }  -- p99 ~ 2.4 s

--- The families of a scenario. opts: now, change_at, services.
function M.scenario(name, opts)
  opts = opts or {}
  local now = opts.now or os.time()
  local change_at = opts.change_at
  if name == "demo" then
    local incident_at = opts.incident_at or (now - 20 * 60)
    change_at = change_at or (incident_at - 20 * 60 + 3 * 60)
  elseif name == "spike" then
    change_at = change_at or (now - 17 * 60)
  else
    error("unknown Prometheus scenario " .. tostring(name) .. " (spike, demo)")
  end
  local function after(t) return t >= change_at end
  local requests = { name = "http_requests", type = "counter", series = {} }
  local buckets = { name = "http_request_duration_seconds_bucket", type = "counter_raw", series = {} }
  local cpu = { name = "process_cpu_seconds", type = "counter", series = {} }
  local function service(svc, total, err_before, err_after, slow_after)
    requests.series[#requests.series + 1] = { labels = { service = svc, code = "200" },
      rate = function(t) return total - (after(t) and err_after or err_before) end }
    requests.series[#requests.series + 1] = { labels = { service = svc, code = "504" },
      rate = function(t) return after(t) and err_after or err_before end }
    for i, le in ipairs(BUCKETS) do
      buckets.series[#buckets.series + 1] = { labels = { service = svc, le = le },
        rate = function(t)
          local frac = (slow_after and after(t)) and SLOW[i] or FAST[i]
          return total * frac
        end }
    end
    cpu.series[#cpu.series + 1] = { labels = { service = svc }, rate = function() return total > 0 and 0.4 or 0 end }
  end
  service("payments-api", 100, 0.5, 5, true)
  service("checkout-service", 60, 0.3, 0.3, false)
  service("idle-service", 0, 0, 0, false)
  return { requests, buckets, cpu }, change_at
end

-- counter_raw: a counter whose samples keep the family name (histogram buckets
-- written as plain series: OpenMetrics histograms need _count/_sum and the whole
-- bucket set per timestamp, which the specs do not need).
local function render_families(families, from, to, step)
  local fixed = {}
  for _, f in ipairs(families) do
    if f.type == "counter_raw" then
      local copy = { name = f.name, type = "gauge", series = {} }
      for _, s in ipairs(f.series) do
        local acc, last = 0, nil
        copy.series[#copy.series + 1] = { labels = s.labels, value = function(t)
          if last then acc = acc + s.rate(t) * (t - last) end
          last = t
          return acc
        end }
      end
      fixed[#fixed + 1] = copy
    else
      fixed[#fixed + 1] = f
    end
  end
  return M.openmetrics(fixed, from, to, step)
end

---------------------------------------------------------------------------
-- the server
---------------------------------------------------------------------------

local Server = {}
Server.__index = Server

function Server:log()
  return read_file(self.dir .. "/prometheus.log") or ""
end

function Server:stop()
  if self.stopped then return end
  self.stopped = true
  if proc.alive(self.pid) then
    proc.kill(self.pid)
    proc.wait_for(function() return not proc.alive(self.pid) end, 5)
    if proc.alive(self.pid) then proc.kill(self.pid, "KILL") end
  end
  if not self.keep then os.execute("rm -rf " .. sh_quote(self.dir)) end
end

--- Starts Prometheus with the data of a scenario (or opts.families).
-- opts: scenario ("spike"), families, now, from (now - 3 h), to (now - 30 s),
--   change_at, incident_at, port (default: a free one), parent_pid (Prometheus exits
--   when that process is gone; default this fox), keep (keep the directory).
-- Returns a Server {url, port, pid, dir, change_at, stop, log} or raises with the reason.
function M.start(opts)
  opts = opts or {}
  assert(M.available())
  local now = opts.now or os.time()
  local from = opts.from or (now - 3 * 3600)
  local to = opts.to or (now - 30)
  from = from - from % M.STEP
  local families, change_at = opts.families, opts.change_at
  if not families then
    families, change_at = M.scenario(opts.scenario or "spike", {
      now = now, change_at = opts.change_at, incident_at = opts.incident_at })
  end
  local dir = proc.tmpname("-prometheus")
  assert(os.execute("mkdir -p " .. sh_quote(dir .. "/data")))
  local t0 = task.now()
  write_file(dir .. "/data.om", render_families(families, from, to, M.STEP))
  local ok = os.execute("promtool tsdb create-blocks-from openmetrics " .. sh_quote(dir .. "/data.om")
    .. " " .. sh_quote(dir .. "/data") .. " > " .. sh_quote(dir .. "/promtool.log") .. " 2>&1")
  if not ok then
    local log = read_file(dir .. "/promtool.log") or ""
    os.execute("rm -rf " .. sh_quote(dir))
    error("promtool could not create blocks:\n" .. log)
  end
  local load_seconds = task.now() - t0
  write_file(dir .. "/prometheus.yml", "global:\n  scrape_interval: 1h\n  evaluation_interval: 1h\n")

  local parent = opts.parent_pid or sys.pid()
  local last_err
  for _ = 1, 3 do
    local port = opts.port or proc.free_port()
    -- Prometheus runs under a small shell watchdog that stops it (and removes its
    -- data) when the parent process is gone, so a crashed spec leaves nothing behind.
    local script = string.format([[
prometheus --storage.tsdb.path=%s --storage.tsdb.retention.time=3650d \
  --web.listen-address=127.0.0.1:%d --config.file=%s > %s 2>&1 &
p=$!
echo $p > %s
while kill -0 %d 2>/dev/null && kill -0 $p 2>/dev/null; do sleep 1; done
if ! kill -0 %d 2>/dev/null; then
  kill $p 2>/dev/null
  wait $p 2>/dev/null
  rm -rf %s
fi
]], sh_quote(dir .. "/data"), port, sh_quote(dir .. "/prometheus.yml"), sh_quote(dir .. "/prometheus.log"),
      sh_quote(dir .. "/pid"), math.tointeger(parent), math.tointeger(parent), sh_quote(dir))
    write_file(dir .. "/run.sh", script)
    os.remove(dir .. "/pid")
    assert(os.execute("sh " .. sh_quote(dir .. "/run.sh") .. " > /dev/null 2>&1 &"))
    local pid
    local deadline = task.now() + M.READY_TIMEOUT
    while not pid and task.now() < deadline do
      pid = tonumber((read_file(dir .. "/pid") or ""):match("%d+"))
      if not pid then task.sleep(0.01) end
    end
    local server = setmetatable({ dir = dir, pid = pid, port = port, url = "http://127.0.0.1:" .. port,
      change_at = change_at, now = now, from = from, to = to, keep = opts.keep,
      load_seconds = load_seconds }, Server)
    while task.now() < deadline do
      local r = http.request({ url = server.url .. "/-/ready", timeout = 1 })
      if r and r.status == 200 then
        server.start_seconds = task.now() - t0 - load_seconds
        return server
      end
      if not proc.alive(pid) then break end
      task.sleep(0.05)
    end
    last_err = server:log()
    server.keep = true
    server:stop()
    if not last_err:find("address already in use", 1, true) then break end
  end
  os.execute("rm -rf " .. sh_quote(dir))
  error("prometheus did not become ready:\n" .. tostring(last_err):sub(-2000))
end

---------------------------------------------------------------------------
-- command line (make demo)
---------------------------------------------------------------------------

local function main(args)
  local opts = { scenario = "demo" }
  local port_file
  local i = 1
  while i <= #args do
    local a, v = args[i], args[i + 1]
    if a == "--scenario" then opts.scenario = v
    elseif a == "--port" then opts.port = tonumber(v) ~= 0 and tonumber(v) or nil
    elseif a == "--port-file" then port_file = v
    elseif a == "--parent-pid" then opts.parent_pid = tonumber(v)
    elseif a == "--incident-at" then opts.incident_at = tonumber(v) or timerange.parse_time(v)
    elseif a == "--now" then opts.now = tonumber(v) or timerange.parse_time(v)
    else
      io.stderr:write("unknown option " .. tostring(a) .. "\n")
      return 2
    end
    i = i + 2
  end
  if not opts.parent_pid then
    io.stderr:write("--parent-pid is required (Prometheus stops when that process exits)\n")
    return 2
  end
  local ok, why = M.available()
  if not ok then
    io.stderr:write(why .. "\n")
    return 1
  end
  opts.keep = true
  local server = M.start(opts)
  if port_file then write_file(port_file, server.port .. "\n") end
  print("prometheus listening on " .. server.url .. " (data in " .. server.dir .. ", pid " .. server.pid .. ")")
  return 0
end

local first = ...
if type(first) == "string" and first:match("^%-%-") then
  local code = main({ ... })
  os.exit(code)
end

return M
