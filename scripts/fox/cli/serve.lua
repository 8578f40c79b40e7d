-- `fox serve`: the daemon. Loads the config, opens the durable state, listens for
-- webhooks, /healthz and /metrics, polls, runs the investigation queue; SIGHUP
-- reloads config and scripts (fox.daemon is the boot module of every generation);
-- SIGTERM/SIGINT drain and exit 0.
local config = require("fox.config")
local http = require("fox.http")
local log = require("fox.log")
local queue = require("fox.queue")
local shared = require("fox.shared")
local signal = require("fox.signal")
local sys = require("fox.sys")
local task = require("fox.task")
local vm = require("fox.vm")

local USAGE = [[
usage: fox serve [--config FILE] [--listen HOST:PORT] [--state-dir DIR] [--port-file FILE]

Runs the daemon: POST /webhooks/incident-io (Standard Webhooks, secret from
INCIDENT_IO_WEBHOOK_SECRET), GET /healthz, GET /metrics; polls incident.io for new
incidents (on by default when no webhook secret is set); investigates each new
incident once with the configured playbook.

options:
  --config FILE        fox.conf.lua to use (default $FOX_CONFIG, else ./fox.conf.lua)
  --listen HOST:PORT   address of the listener (default 127.0.0.1:8080; port 0 picks one)
  --state-dir DIR      durable state directory (default $FOX_STATE_DIR, else ./var)
  --port-file FILE     write the port listened on to FILE once ready

signals: HUP reloads config and scripts (a broken one is rejected and the running
generation keeps serving); TERM or INT stop accepting, let running investigations finish
(drain_timeout, default 30 s) and exit 0.
]]

local function parse_args(args)
  local o = {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local name, value = a:match("^%-%-([%w-]+)=(.*)$")
    if not name then name = a:match("^%-%-([%w-]+)$") end
    if a == "-h" or name == "help" then return nil, nil, true end
    local takes = { config = true, listen = true, ["state-dir"] = true, ["port-file"] = true }
    if not name or not takes[name] then return nil, "unknown option '" .. a .. "'" end
    if value == nil then
      i = i + 1
      value = args[i]
      if value == nil then return nil, "--" .. name .. " needs a value" end
    end
    o[name:gsub("-", "_")] = value
    i = i + 1
  end
  return o
end

local function fail(msg)
  io.stderr:write("fox serve: ", msg, "\n")
  return 1
end

local function write_file(path, content)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then return nil, err end
  f:write(content)
  f:close()
  return os.rename(tmp, path)
end

-- Waits for the running investigations (every generation) to end, at most `timeout`
-- seconds, or until a second TERM/INT. Returns how many are still running.
local function drain(timeout, forced)
  local deadline = task.now() + timeout
  while queue.running() > 0 and task.now() < deadline and not forced() do
    task.sleep(0.05)
  end
  return queue.running()
end

return function(args)
  local o, err, help = parse_args(args or {})
  if help then
    io.write(USAGE)
    return 0
  end
  if not o then
    io.stderr:write("fox serve: ", err, "\n\n", USAGE)
    return 2
  end
  if o.listen then
    local host, why = config.parse_listen(o.listen)
    if not host then return fail("--listen " .. why) end
  end
  local state_dir = o.state_dir or sys.getenv("FOX_STATE_DIR")
  if state_dir == "" then state_dir = nil end
  shared.set("serve:opt:config", o.config)
  shared.set("serve:opt:listen", o.listen)
  shared.set("serve:opt:state_dir", state_dir)
  shared.delete("serve:draining")

  vm.boot("fox.daemon")
  local daemon = require("fox.daemon")
  local ok, lerr = pcall(daemon.load)
  if not ok then return fail(tostring(lerr)) end
  local owner = string.format("%s:%d:%.6f", sys.hostname() or "fox", sys.pid(), sys.wall_time())
  shared.set("serve:owner", owner)
  shared.set("serve:started_at", sys.wall_time())
  local e, serr = daemon.env()
  if not e then return fail("cannot open the state directory: " .. tostring(serr)) end
  local cfg = e.cfg
  e.queue:recover()

  local host, port = config.parse_listen(cfg.listen)
  -- The C limit is a backstop; the receiver answers 413 above cfg.max_body itself so
  -- oversized deliveries are counted.
  local listen_opts = { host = host, port = port, max_body = cfg.max_body * 2 + 65536,
    request_timeout = cfg.request_timeout, max_connections = cfg.max_connections }
  -- Named handler: resolved in the current generation for every request, so the
  -- listener survives reloads and new requests use the new code.
  listen_opts.handler = "fox.daemon.handle_http"
  local server, lis_err = http.listen(listen_opts)
  if not server then return fail("cannot listen on " .. cfg.listen .. ": " .. tostring(lis_err)) end
  shared.set("serve:listen_bound", cfg.listen)
  if o.port_file then
    local wok, werr = write_file(o.port_file, tostring(server.port) .. "\n")
    if not wok then return fail("cannot write --port-file: " .. tostring(werr)) end
  end
  vm.watch_sighup()
  daemon.start()
  log.info("serve.listening", { address = server.host .. ":" .. server.port, state_dir = cfg.state_dir,
    config = cfg.path or "(defaults)", generation = vm.generation() })

  local sig = signal.wait("TERM", "INT")
  local t0 = task.now()
  shared.set("serve:draining", true)
  server:close()
  local forced = false
  task.spawn({ name = "second-signal" }, function()
    signal.wait("TERM", "INT")
    forced = true
  end)
  log.info("serve.draining", { signal = sig, running = queue.running(), timeout = cfg.drain_timeout })
  local left = drain(cfg.drain_timeout, function() return forced end)
  if left > 0 then
    log.warn("serve.drain_incomplete", { running = left,
      note = "unfinished investigations stay queued and run again at the next start" })
  end
  daemon.close()
  log.info("serve.stopped", { signal = sig, drain_ms = math.floor((task.now() - t0) * 1000), unfinished = left })
  return 0
end
