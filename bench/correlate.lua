-- Correlation at scale: the correlate_incidents tool over 1k, 10k, 50k and 100k indexed
-- incidents (the incident.io fake's `large:N` seed: N incidents over 365 days), p50
-- and p99 of a call once the index is loaded.
--
--   build/fox run bench/correlate.lua [SIZES] [OUT]
--     SIZES  comma-separated, default 1000,10000,50000,100000
--     OUT    a file for "KEY=VALUE" results (bench/run.sh reads them)
--
-- For each size: start the fake, load the index (the first call; timed on its own),
-- then CALLS calls correlating INC-2 (the live incident) against every indexed
-- incident (time_range 400d: the whole history), each timed by wall clock
-- (fox.task.now) and by fox's CPU (os.clock); the same calls with the default
-- 30-day window too. A call includes its three requests to the fake (the incident,
-- its updates, its relationships) and the checks of merged candidates; `http_ms`
-- is what those took, measured by the fake's request log.
-- The shared dictionary must hold the index: FOX_SHARED_MAX_BYTES (bench/run.sh
-- sets 512M).
local http = require("fox.http")
local json = require("fox.json")
local sys = require("fox.sys")
local task = require("fox.task")
local incidentio = require("fox.incidentio")
local tools = require("fox.tools")
local index = require("fox.incident_index")

local sizes = {}
for s in (arg[1] or "1000,10000,50000,100000"):gmatch("%d+") do sizes[#sizes + 1] = tonumber(s) end
local out_path = arg[2]
local ROOT = sys.getenv("FOX_BENCH_ROOT") or "."
local CALLS = { [1000] = 40, [10000] = 30, [50000] = 15, [100000] = 10 }

local function sh(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Each result is appended at once, so a run stopped by its time limit keeps what it
-- measured.
local function result(k, v)
  io.stderr:write(string.format("[correlate] %s=%s\n", k, tostring(v)))
  if out_path then
    local f = assert(io.open(out_path, "a"))
    f:write(k, "=", tostring(v), "\n")
    f:close()
  end
end

-- Starts the incident.io fake with large:N; returns url, pid.
local function start_fake(n)
  local base = os.tmpname()
  os.remove(base)
  local pf = base .. ".port"
  local cmd = string.format(
    "node %s --port 0 --port-file %s --parent-pid %d --seed large:%d --no-rate-limit >%s 2>&1 & echo $!",
    sh(ROOT .. "/tests/fakes/incidentio/server.js"), sh(pf), sys.pid(), n, sh(base .. ".log"))
  local p = assert(io.popen(cmd))
  local pid = tonumber(p:read("l"))
  p:close()
  local deadline = task.now() + 120
  local port
  while task.now() < deadline do
    local s = read_file(pf)
    port = s and tonumber(s:match("^(%d+)\n"))
    if port then break end
    task.sleep(0.05)
  end
  os.remove(pf)
  assert(port, "the incident.io fake (large:" .. n .. ") did not start: " .. tostring(read_file(base .. ".log")))
  return "http://127.0.0.1:" .. port, pid
end

local function percentile(list, p)
  local s = {}
  for i, v in ipairs(list) do s[i] = v end
  table.sort(s)
  if #s == 0 then return 0 end
  local i = math.max(1, math.ceil(p / 100 * #s))
  return s[i]
end

local function fake_http_ms(url, since)
  local resp = http.request({ url = url .. "/_fake/requests?since=" .. since, timeout = 30 })
  local body = resp and json.safe.decode(resp.body)
  local total, seq = 0, since
  for _, r in ipairs(body and body.requests or {}) do
    total = total + (tonumber(r.duration_ms) or 0)
    if r.seq > seq then seq = r.seq end
  end
  return total, seq
end

local function fmt(x) return string.format("%.1f", x) end

for _, n in ipairs(sizes) do
  local t_start = task.now()
  local url, pid = start_fake(n)
  local client = incidentio.new({ base_url = url, api_key = "test-viewer-key", timeout = 60 })
  index.clear(client)
  local function call(range)
    return tools.call("correlate_incidents", { incident_id = "INC-2", time_range = range,
      similarity_threshold = 0.5, limit = 10 }, { client = client })
  end
  local c0, w0 = os.clock(), task.now()
  local res, err = call("400d")
  assert(res, "correlate_incidents failed: " .. tostring(err))
  local load_wall, load_cpu = task.now() - w0, os.clock() - c0
  result("corr_" .. n .. "_index_load_s", fmt(load_wall))
  result("corr_" .. n .. "_index_load_cpu_s", fmt(load_cpu))
  result("corr_" .. n .. "_considered", res.candidates_considered)
  result("corr_" .. n .. "_matches", #res.matches)
  local _, seq = fake_http_ms(url, 0)
  for _, range in ipairs({ "400d", "30d" }) do
    local walls, cpus, considered, scored, lookup = {}, {}, 0, 0, "?"
    local calls = CALLS[n] or 20
    local http_total = 0
    for i = 1, calls do
      collectgarbage("step", 0)
      local cc, ww = os.clock(), task.now()
      local r, e = call(range)
      assert(r, "correlate_incidents failed: " .. tostring(e))
      walls[i] = (task.now() - ww) * 1000
      cpus[i] = (os.clock() - cc) * 1000
      considered = r.candidates_considered
      scored, lookup = r.candidates_scored, r.candidate_lookup
      local ms
      ms, seq = fake_http_ms(url, seq)
      http_total = http_total + ms
    end
    local key = "corr_" .. n .. "_" .. range
    result(key .. "_calls", calls)
    result(key .. "_considered", considered)
    result(key .. "_scored", scored)
    result(key .. "_lookup", lookup)
    result(key .. "_p50_ms", fmt(percentile(walls, 50)))
    result(key .. "_p99_ms", fmt(percentile(walls, 99)))
    result(key .. "_cpu_p50_ms", fmt(percentile(cpus, 50)))
    result(key .. "_http_ms", fmt(http_total / calls))
  end
  local mem = collectgarbage("count")
  result("corr_" .. n .. "_lua_heap_mib", fmt(mem / 1024))
  index.clear(client)
  os.execute("kill " .. pid .. " 2>/dev/null")
  result("corr_" .. n .. "_bench_s", fmt(task.now() - t_start))
  collectgarbage()
end

