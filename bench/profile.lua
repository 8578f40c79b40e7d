-- A sampling profile of the playbook, by Lua function and line: where fox's own CPU
-- goes in an investigation. Runs the configured playbook (dry run: nothing posted)
-- on one incident RUNS times against whatever the config points at (the fakes).
--
--   build/fox run bench/profile.lua CONFIG INCIDENT [RUNS] [TOP]
--
-- The profiler is bench/lua/profiler.lua (a count hook in every task, samples weighted
-- by CPU time).
local cli = require("fox.playbook_cli")

local cfg_path, incident, runs, top = arg[1], arg[2], tonumber(arg[3] or "10"), tonumber(arg[4] or "25")
assert(cfg_path and incident, "usage: fox run bench/profile.lua CONFIG INCIDENT [RUNS] [TOP]")
local here = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")) or "bench"
local prof = assert(loadfile(here .. "/lua/profiler.lua"))()

local cfg = assert(cli.load_config({ config = cfg_path }))
local run = assert(cli.load_playbook(nil, cfg))

-- one warm-up run (module loading, the incident index)
run(incident, cli.context(cfg, { dry_run = true }))

local t0 = os.clock()
prof.start()
for _ = 1, runs do
  run(incident, cli.context(cfg, { dry_run = true }))
end
prof.stop()
local cpu = os.clock() - t0
print(string.format("%d runs, %.1f ms CPU per run (whole process, with the profiler's hook)", runs, cpu * 1000 / runs))
io.write(prof.report(top))
