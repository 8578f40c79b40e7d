-- Child processes and temporary files for the specs and the helpers that start the
-- fakes, Prometheus and `fox serve`. Every wait has a deadline.
--
--   local proc = require("helpers.proc")
--   local out, err, code = proc.run({ proc.FOX, "tool", "x" }, { env = { K = "v" }, unset = { "U" } })
--   local out, _, code = proc.run_lua("print(1)", { merge = true })
--   local pid = proc.spawn({ "node", "server.js" }, { log = path })
--   local port = proc.wait_port(port_file, 10)
--   local dir = proc.tmpdir("tag") ... proc.cleanup()
local http = require("fox.http")
local sys = require("fox.sys")
local task = require("fox.task")

local P = {}

-- The fox under test: FOX_BIN (scripts/run-tests.sh sets it), else the binary running
-- these specs (build/fox, or build-asan/fox under `make asan`).
P.FOX = sys.getenv("FOX_BIN") or sys.executable() or "build/fox"
P.ROOT = sys.getenv("PWD") or "."

--- s as one shell word.
function P.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
local quote = P.quote

--- The contents of path, or nil when it cannot be read.
function P.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function P.write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

--- A fresh path in the temporary directory (nothing is created there) ending in suffix.
function P.tmpname(suffix)
  local base = os.tmpname()
  os.remove(base)
  return base .. (suffix or "")
end

local tmp_dirs = {}

--- A fresh temporary directory (removed by P.cleanup(), unless FOX_KEEP_TMP is set).
function P.tmpdir(tag)
  local dir = P.tmpname("-" .. (tag or "fox"))
  assert(os.execute("mkdir -p " .. quote(dir)))
  tmp_dirs[#tmp_dirs + 1] = dir
  return dir
end

function P.cleanup()
  if sys.getenv("FOX_KEEP_TMP") then return end
  for _, d in ipairs(tmp_dirs) do os.execute("rm -rf " .. quote(d)) end
  tmp_dirs = {}
end

--- Polls fn every `step` seconds (default 0.02) until it returns a truthy value, which
-- is returned, or `timeout` (default 5) seconds pass (nil).
function P.wait_for(fn, timeout, step)
  local deadline = task.now() + (timeout or 5)
  while true do
    local v = fn()
    if v then return v end
    if task.now() >= deadline then return nil end
    task.sleep(step or 0.02)
  end
end

--- The port a child wrote to port_file ("PORT\n"), waiting up to timeout seconds.
function P.wait_port(port_file, timeout)
  local port = P.wait_for(function()
    local s = P.read_file(port_file)
    return s and s:match("^(%d+)\n")
  end, timeout)
  return tonumber(port)
end

function P.alive(pid)
  return pid ~= nil and os.execute("kill -0 " .. math.tointeger(pid) .. " 2>/dev/null") == true
end

--- Sends signal (default TERM) to pid; no error when it is gone.
function P.kill(pid, signal)
  os.execute("kill -" .. (signal or "TERM") .. " " .. math.tointeger(pid) .. " 2>/dev/null")
end

--- A port on 127.0.0.1 that was free a moment ago.
function P.free_port()
  local srv = assert(http.listen({ host = "127.0.0.1", port = 0, handler = function() return { status = 404 } end }))
  local port = srv.port
  srv:close()
  return port
end

--- The full path of cmd in PATH, or nil.
function P.which(cmd)
  local p = io.popen("command -v " .. quote(cmd) .. " 2>/dev/null")
  local out = p and p:read("a") or ""
  if p then p:close() end
  out = out:gsub("%s+$", "")
  return out ~= "" and out or nil
end

-- The shell command for cmd (a command line, or an argv list quoted here) with
-- opts.unset (names) taken out of the environment and opts.env ({NAME = value}) added.
local function command(cmd, opts)
  local line = cmd
  if type(cmd) == "table" then
    local words = {}
    for i, a in ipairs(cmd) do words[i] = quote(a) end
    line = table.concat(words, " ")
  end
  if not (opts and (opts.env or opts.unset)) then return line end
  local parts = { "env" }
  for _, name in ipairs(opts.unset or {}) do parts[#parts + 1] = "-u " .. name end
  local names = {}
  for k in pairs(opts.env or {}) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do parts[#parts + 1] = quote(k .. "=" .. opts.env[k]) end
  if type(cmd) == "table" then
    parts[#parts + 1] = line
  else
    parts[#parts + 1] = "sh -c " .. quote(line)
  end
  return table.concat(parts, " ")
end
P.command = command

--- Runs cmd (a shell command line, or an argv list) to its end. opts: env, unset (as
-- P.command), merge (stderr into stdout, as `2>&1` after the command line). Returns
-- stdout, stderr ("" with merge), exit status.
function P.run(cmd, opts)
  opts = opts or {}
  local err_file = not opts.merge and P.tmpname(".err") or nil
  local line = command(cmd, opts) .. (err_file and (" 2>" .. quote(err_file)) or " 2>&1")
  local p = assert(io.popen(line, "r"))
  local out = p:read("a")
  local _, _, code = p:close()
  local err = ""
  if err_file then
    err = P.read_file(err_file) or ""
    os.remove(err_file)
  end
  return out, err, code
end

--- Writes source to a temporary file and runs `fox run` on it (P.run's opts and results).
function P.run_lua(source, opts)
  local path = P.tmpname(".lua")
  P.write_file(path, source)
  local out, err, code = P.run({ P.FOX, "run", path }, opts)
  os.remove(path)
  return out, err, code
end

--- Starts cmd (as P.run) in the background, stdout and stderr to opts.log (default
-- /dev/null). Returns its pid.
function P.spawn(cmd, opts)
  opts = opts or {}
  local p = assert(io.popen(command(cmd, opts) .. " > " .. quote(opts.log or "/dev/null") .. " 2>&1 & echo $!", "r"))
  local pid = tonumber(p:read("l"))
  p:close()
  return assert(pid, "could not start " .. tostring(type(cmd) == "table" and cmd[1] or cmd))
end

return P
