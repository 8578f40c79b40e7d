-- The Lua heap per investigation in flight: N dry runs of the playbook on one incident
-- at once, weighed (after a full collection) while every one waits on its evidence
-- sources, and a census of what holds the bytes (bench/lua/census.lua).
--
--   build/fox run bench/lua/heap.lua CONFIG INCIDENT [N] [WAIT_S] [TOP]
-- The evidence fakes must answer after more than WAIT_S (bench/lua_heap.sh sets that up).
local cli = require("fox.playbook_cli")
local task = require("fox.task")

local cfg_path, incident = arg[1], arg[2]
local n, wait, top = tonumber(arg[3] or "50"), tonumber(arg[4] or "3"), tonumber(arg[5] or "30")
assert(cfg_path and incident, "usage: fox run bench/lua/heap.lua CONFIG INCIDENT [N] [WAIT_S] [TOP]")
local here = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")) or "bench/lua"
local census = assert(loadfile(here .. "/census.lua"))()

local cfg = assert(cli.load_config({ config = cfg_path }))
local run = assert(cli.load_playbook(nil, cfg))
run(incident, cli.context(cfg, { dry_run = true })) -- warm-up: modules, the incident index

local seen = census.mark()
collectgarbage()
collectgarbage()
local base = collectgarbage("count")
local tasks = {}
for i = 1, n do
  tasks[i] = task.spawn({ name = "investigation " .. i }, function()
    return run(incident, cli.context(cfg, { dry_run = true }))
  end)
end
task.sleep(wait)
collectgarbage()
collectgarbage()
local during = collectgarbage("count")
local acc, total, threads, list = census.count(seen)
print(string.format("heap per investigation in flight: %.1f KiB (%d in flight; census %.1f KiB in %d threads)",
  (during - base) / n, n, total / 1024 / n, threads // n))
print("bytes per investigation, by holder:")
print(census.report(acc, top, n))
print("threads per investigation, by where they wait:")
print(census.report(census.thread_places(list, 3), top, n))
for i = 1, n do task.wait(tasks[i]) end
