-- A sampling profile of the playbook, by Lua function and line: where fox's own CPU
-- goes in an investigation. Runs the configured playbook (dry run: nothing posted)
-- on one incident N times against whatever the config points at (the fakes).
--
--   build/fox run bench/profile.lua CONFIG INCIDENT [RUNS] [TOP]
--
-- A count hook every 1000 VM instructions in every task; each sample is weighted by
-- the CPU time since the previous one (os.clock). Prints the TOP functions by samples (self) and by samples anywhere
-- on the stack (total), and the hottest lines.
local task = require("fox.task")
local cli = require("fox.playbook_cli")

local cfg_path, incident, runs, top = arg[1], arg[2], tonumber(arg[3] or "10"), tonumber(arg[4] or "25")
assert(cfg_path and incident, "usage: fox run bench/profile.lua CONFIG INCIDENT [RUNS] [TOP]")

local cfg = assert(cli.load_config({ config = cfg_path }))
local run = assert(cli.load_playbook(nil, cfg))

-- one warm-up run (module loading, the incident index)
run(incident, cli.context(cfg, { dry_run = true }))

local self_count, total_count, line_count, samples = {}, {}, {}, 0
local clock, last = os.clock, nil
local function where(info)
  return string.format("%s:%d %s", info.short_src, info.linedefined, info.name or "?")
end
-- Each sample is weighted by the CPU time since the previous one, so time spent in C
-- (patterns, JSON, the allocator) between two samples is counted, against the Lua
-- function that called it (or the one running right after it).
local function hook()
  local now = clock()
  local w = now - (last or now)
  last = now
  samples = samples + w
  local seen = {}
  for level = 2, 60 do
    local info = debug.getinfo(level, "Sln")
    if not info then break end
    local k = info.what == "C" and ("[C] " .. (info.name or "?")) or where(info)
    if level == 2 then
      self_count[k] = (self_count[k] or 0) + w
      local lk = info.short_src .. ":" .. (info.currentline or 0)
      line_count[lk] = (line_count[lk] or 0) + w
    end
    if not seen[k] then
      seen[k] = true
      total_count[k] = (total_count[k] or 0) + w
    end
  end
end

-- The scheduler gives every task its own hook (its CPU limit), so the profiler's hook
-- is installed at the start of every task spawned while profiling, through the two
-- spawn functions (fox.task.spawn, and fox.task.core.spawn that gather uses). This
-- replaces the CPU-limit hook of those tasks; fine for a profile.
local core = require("fox.task.core")
local function wrap_spawn(spawn)
  return function(a, b, ...)
    if type(a) == "table" then
      local fn = b
      return spawn(a, function(...) debug.sethook(hook, "", 1000); return fn(...) end, ...)
    end
    local fn = a
    return spawn(function(...) debug.sethook(hook, "", 1000); return fn(...) end, b, ...)
  end
end
local orig_task_spawn, orig_core_spawn = task.spawn, core.spawn
task.spawn, core.spawn = wrap_spawn(orig_task_spawn), wrap_spawn(orig_core_spawn)
debug.sethook(hook, "", 1000)
local t0 = os.clock()
last = t0
for _ = 1, runs do
  run(incident, cli.context(cfg, { dry_run = true }))
end
local cpu = os.clock() - t0
task.spawn, core.spawn = orig_task_spawn, orig_core_spawn
debug.sethook()

local function show(title, t)
  local list = {}
  for k, v in pairs(t) do list[#list + 1] = { k, v } end
  table.sort(list, function(a, b) return a[2] > b[2] end)
  print(title)
  for i = 1, math.min(top, #list) do
    print(string.format("  %6.1f%%  %s", 100 * list[i][2] / math.max(samples, 1), list[i][1]))
  end
end
print(string.format("%d runs, %.1f ms CPU per run (whole process, with the hook); %.1f ms sampled",
  runs, cpu * 1000 / runs, samples * 1000 / runs))
show("self (function defined at):", self_count)
show("total (on the stack):", total_count)
show("lines:", line_count)
