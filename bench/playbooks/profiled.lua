-- The default playbook under the sampling profiler (bench/lua/profiler.lua), for
-- profiling `fox serve` itself: webhooks, the queue, the investigations. Set in the
-- config:
--   playbook = "<repo>/bench/playbooks/profiled.lua",
--   playbook_options = { profile_out = "/tmp/fox-profile.txt" },
-- Profiling starts with the first investigation; the report is rewritten at most once
-- a second as investigations finish (so the last one of a run is at most a second old).
local here = (debug.getinfo(1, "S").source:match("^@(.*)/playbooks/[^/]*$")) or "bench"
local prof = assert(loadfile(here .. "/lua/profiler.lua"))()
local default = require("playbooks.investigate")

local M = {}
local last_write = 0

function M.run(incident, ctx)
  prof.start()
  local f, err = default.run(incident, ctx)
  local out = ctx.options and ctx.options.profile_out
  local now = os.time()
  if out and now ~= last_write then
    last_write = now
    local fh = io.open(out, "w")
    if fh then
      fh:write(prof.report(40))
      fh:close()
    end
  end
  return f, err
end

return M
