-- A sampling profiler for fox's Lua, by function and line (loadfile'd by
-- bench/profile.lua and bench/playbooks/profiled.lua).
--
--   local prof = loadfile("bench/lua/profiler.lua")()
--   prof.start()          -- every task spawned from now on is sampled
--   ... prof.stop()
--   print(prof.report(25))
--
-- A count hook every 1000 VM instructions; each sample is weighted by the CPU time
-- (os.clock) since the previous sample anywhere, the profiler's own time excluded
-- (otherwise instruction-dense Lua loops, sampled most often, would be charged the
-- profiler's overhead and look far costlier than they are), so time spent in C between two
-- samples (patterns, JSON, the allocator, the event loop) is charged to the Lua code
-- that runs next — usually the caller. The scheduler gives every task its own hook
-- (its CPU limit), so the profiler's hook is installed at the start of every task
-- spawned while profiling, through fox.task.spawn and fox.task.core.spawn (which
-- gather uses); those tasks lose their CPU limit, fine for a profile.
local task = require("fox.task")
local core = require("fox.task.core")

local P = {}

local clock = os.clock
local last
local self_w, total_w, line_w, sampled = {}, {}, {}, 0
local orig_task_spawn, orig_core_spawn
local active = false

local function where(info)
  if info.what == "C" then return "[C] " .. (info.name or "?") end
  return string.format("%s:%d %s", info.short_src, info.linedefined, info.name or "?")
end

local function hook()
  local now = clock()
  local w = now - (last or now)
  sampled = sampled + w
  local seen = {}
  for level = 2, 60 do
    local info = debug.getinfo(level, "Sln")
    if not info then break end
    local k = where(info)
    if level == 2 then
      self_w[k] = (self_w[k] or 0) + w
      local lk = info.short_src .. ":" .. (info.currentline or 0)
      line_w[lk] = (line_w[lk] or 0) + w
    end
    if not seen[k] then
      seen[k] = true
      total_w[k] = (total_w[k] or 0) + w
    end
  end
  -- the hook's own time (the stack walk) is not charged to anyone
  last = clock()
end

local function wrap_spawn(spawn)
  return function(a, b, ...)
    if type(a) == "table" then
      local fn = b
      return spawn(a, function(...) if active then debug.sethook(hook, "", 1000) end return fn(...) end, ...)
    end
    local fn = a
    return spawn(function(...) if active then debug.sethook(hook, "", 1000) end return fn(...) end, b, ...)
  end
end

function P.start()
  if active then return end
  active = true
  last = clock()
  orig_task_spawn, orig_core_spawn = task.spawn, core.spawn
  task.spawn, core.spawn = wrap_spawn(orig_task_spawn), wrap_spawn(orig_core_spawn)
  debug.sethook(hook, "", 1000)
end

function P.stop()
  if not active then return end
  active = false
  task.spawn, core.spawn = orig_task_spawn, orig_core_spawn
  debug.sethook()
end

--- CPU seconds sampled so far.
function P.sampled() return sampled end

--- The report: top functions by self and total time, and the hottest lines.
function P.report(top)
  top = top or 25
  local out = {}
  local function show(title, t)
    local list = {}
    for k, v in pairs(t) do list[#list + 1] = { k, v } end
    table.sort(list, function(a, b) return a[2] > b[2] end)
    out[#out + 1] = title
    for i = 1, math.min(top, #list) do
      out[#out + 1] = string.format("  %6.1f%%  %8.1f ms  %s", 100 * list[i][2] / math.max(sampled, 1e-9),
        list[i][2] * 1000, list[i][1])
    end
  end
  out[#out + 1] = string.format("%.1f ms CPU sampled", sampled * 1000)
  show("self (function defined at):", self_w)
  show("total (on the stack):", total_w)
  show("lines:", line_w)
  return table.concat(out, "\n") .. "\n"
end

--- Self time summed by group: rules = {{name, lua_pattern_on_the_key}, ...}, first
-- match wins, the rest is "other". Returns {name = seconds}, total seconds.
function P.groups(rules)
  local out = { other = 0 }
  for _, r in ipairs(rules) do out[r[1]] = 0 end
  for k, v in pairs(self_w) do
    local g = "other"
    for _, r in ipairs(rules) do
      if k:find(r[2]) then g = r[1]; break end
    end
    out[g] = out[g] + v
  end
  return out, sampled
end

function P.reset()
  self_w, total_w, line_w, sampled = {}, {}, {}, 0
end

return P
