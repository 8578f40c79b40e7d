-- Installed into every generation before any other script runs.
-- Makes coroutines transparent to fox's I/O: when a binding yields inside a coroutine
-- created by a script, the wrappers below pass that yield up to the task and hand the
-- results back, so a script's own coroutines can do HTTP calls and sleeps.
local core = require("fox.task.core")

local IO_YIELD = core.io_yield
local raw_resume, raw_yield, raw_create = coroutine.resume, coroutine.yield, coroutine.create
local raw_status, raw_isyieldable = coroutine.status, coroutine.isyieldable
local pack, unpack = table.pack, table.unpack

local function relay(co, ok, ...)
  if ok and raw_status(co) == "suspended" and select("#", ...) == 1 and (...) == IO_YIELD then
    -- The coroutine waits on fox I/O: wait for it in the enclosing task, then resume it.
    return relay(co, raw_resume(co, raw_yield(IO_YIELD)))
  end
  return ok, ...
end

local function resume(co, ...)
  if not raw_isyieldable() then
    return raw_resume(co, ...)
  end
  return relay(co, raw_resume(co, ...))
end

local function wrap(fn)
  local co = raw_create(fn)
  return function(...)
    local res = pack(resume(co, ...))
    if not res[1] then
      error(res[2], 0)
    end
    return unpack(res, 2, res.n)
  end
end

-- luacheck: push ignore 122 (replacing library functions is the point here)
coroutine.resume = resume
coroutine.wrap = wrap
-- luacheck: pop

-- os.exit(code, true) would close the Lua state under the running task: exit cleanly.
local ok_sys, sys = pcall(require, "fox.sys")
if ok_sys and sys.exit then
  os.exit = function(code) -- luacheck: ignore 122
    if code == true or code == nil then
      code = 0
    elseif code == false then
      code = 1
    end
    io.stdout:flush()
    io.stderr:flush()
    sys.exit(code)
  end
end

return {}
