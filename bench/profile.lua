-- A sampling profile of the playbook, by Lua function and line: where fox's own CPU
-- goes in an investigation. Runs the configured playbook (dry run: nothing posted)
-- on one incident RUNS times against whatever the config points at (the fakes).
--
--   build/fox run bench/profile.lua CONFIG INCIDENT [RUNS] [TOP] [OUT [TAG]]
--   OUT: a file to append "prof_*=VALUE" lines to (bench/run.sh): the CPU per run and
--   the share of each group of modules (JSON, log signatures, correlation, ...), the CPU
--   of a run without the profiler and the log lines read; with TAG only the last two,
--   as prof_TAG_*.
--
-- The profiler is bench/lua/profiler.lua (a count hook in every task, samples weighted
-- by CPU time).
local cli = require("fox.playbook_cli")

local cfg_path, incident, runs, top, out = arg[1], arg[2], tonumber(arg[3] or "10"), tonumber(arg[4] or "25"), arg[5]
assert(cfg_path and incident, "usage: fox run bench/profile.lua CONFIG INCIDENT [RUNS] [TOP]")
local here = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")) or "bench"
local prof = assert(loadfile(here .. "/lua/profiler.lua"))()

local cfg = assert(cli.load_config({ config = cfg_path }))
local run = assert(cli.load_playbook(nil, cfg))

-- one warm-up run (module loading, the incident index), counting the log lines the
-- log sources read (their results' `total`)
local sources = require("sources")
local query_all = sources.query_all
local lines = {}
sources.query_all = function(list, base)
  local results = query_all(list, base)
  for _, r in ipairs(results) do
    if r.source == "loki" or r.source == "elasticsearch" then lines[r.source] = tonumber(r.total) or 0 end
  end
  return results
end
run(incident, cli.context(cfg, { dry_run = true }))
sources.query_all = query_all

-- the CPU of a run without the profiler
local p0 = os.clock()
for _ = 1, runs do
  run(incident, cli.context(cfg, { dry_run = true }))
end
local plain = (os.clock() - p0) * 1000 / runs
print(string.format("%d runs, %.1f ms CPU per run without the profiler; log lines read: loki %d, elasticsearch %d",
  runs, plain, lines.loki or 0, lines.elasticsearch or 0))

local t0 = os.clock()
prof.start()
for _ = 1, runs do
  run(incident, cli.context(cfg, { dry_run = true }))
end
prof.stop()
local cpu = os.clock() - t0
print(string.format("%d runs, %.1f ms CPU per run (whole process, with the profiler's hook)", runs, cpu * 1000 / runs))
io.write(prof.report(top))

-- Self time by group of modules. Time in C between two samples (the JSON decoder, the
-- event loop) is charged to the Lua that runs next, usually the caller.
local GROUPS = {
  { "json", "fox/json%.lua" },
  { "log_signatures", "fox/error_signature%.lua" },
  { "correlation", "policies/correlate%.lua" },
  { "correlation", "fox/incident_index%.lua" },
  { "correlation", "tools/correlate_incidents%.lua" },
  { "sources", "scripts/sources/" },
  { "policies", "scripts/policies/" },
  { "findings_render", "fox/findings%.lua" },
  { "findings_render", "fox/render/" },
  { "http_clients", "fox/incidentio%.lua" },
  { "http_clients", "fox/slack%.lua" },
  { "http_clients", "fox/http%.lua" },
  { "time", "fox/timerange%.lua" },
}
local groups, total = prof.groups(GROUPS)
local names = {}
for k in pairs(groups) do names[#names + 1] = k end
table.sort(names, function(a, b) return groups[a] > groups[b] end)
print("by group:")
for _, k in ipairs(names) do
  print(string.format("  %6.1f%%  %s", 100 * groups[k] / math.max(total, 1e-9), k))
end
if out then
  local f = assert(io.open(out, "a"))
  local tag = arg[6] and ("_" .. arg[6]) or ""
  f:write(string.format("prof%s_plain_cpu_ms=%.1f\nprof%s_log_lines=%d\n", tag, plain, tag,
    (lines.loki or 0) + (lines.elasticsearch or 0)))
  if tag ~= "" then f:close(); return end
  f:write(string.format("prof_runs=%d\nprof_cpu_ms=%.1f\n", runs, cpu * 1000 / runs))
  local parts = {}
  for _, k in ipairs(names) do
    f:write(string.format("prof_group_%s_pct=%.1f\n", k, 100 * groups[k] / math.max(total, 1e-9)))
    parts[#parts + 1] = string.format("%s %.0f%%", k:gsub("_", " "), 100 * groups[k] / math.max(total, 1e-9))
  end
  f:write("prof_groups=", table.concat(parts, ", "), "\n")
  f:close()
end
