-- A team's own playbook, built from the default playbook's steps
-- (scripts/playbooks/investigate.lua; docs/playbooks.md describes them). It:
--   * asks a check of its own (the card gateway's status page) at the same time as the
--     evidence sources, and puts what it says first in the next steps
--   * leaves the timeline alone for low-priority incidents
--   * posts a copy of the findings of P0/P1 incidents to the team's channel, once
--
-- Use it with `playbook = "playbooks/custom_investigate.lua"` in fox.conf.lua (relative
-- to the config file), try it first with
--   fox replay --since 30d --playbook examples/playbooks/custom_investigate.lua
-- and send fox serve a SIGHUP to switch to it.
--
-- Its own settings go in playbook_options (ctx.options):
--   team_channel        Slack channel ID for the copy (none: no copy)
--   gateway_status_url  a Statuspage-style JSON status endpoint (none: no check)
local default = require("playbooks.investigate")
local http = require("fox.http")
local json = require("fox.json")
local task = require("fox.task")
local render = require("fox.render.slack")

local M = {}

-- "All Systems Operational", "Partial System Outage", ... or nil when it cannot tell.
local function gateway_status(url)
  local resp = http.request({ url = url, timeout = 3 })
  if not resp or resp.status ~= 200 then return nil end
  local doc = json.safe.decode(resp.body)
  return type(doc) == "table" and type(doc.status) == "table" and doc.status.description or nil
end

function M.run(incident, ctx)
  local inv, err = default.prepare(incident, ctx)
  if not inv then return nil, err end
  local options = ctx.options or {}

  -- low-priority incidents: findings in the channel, nothing on the timeline
  local priority = inv.incident.priority
  if priority == "P3" or priority == "P4" then inv.timeline_mode = nil end

  default.announce(inv)
  local status
  task.gather({
    function() default.gather(inv) end,
    function()
      if options.gateway_status_url then status = gateway_status(options.gateway_status_url) end
    end,
  })
  local f = default.build_findings(inv)
  if status and status ~= "All Systems Operational" then
    table.insert(f.next_steps, 1, "The card gateway's status page says: " .. status .. ".")
  end

  local result, derr = default.deliver(inv, f)

  -- the team's copy, once (inv.record is the durable "posted" record; nil in a dry run)
  if inv.record and inv.slack and options.team_channel and (priority == "P0" or priority == "P1") then
    local msg = render.findings(f)
    inv.record.once("team-copy", function()
      local body, perr = inv.slack:post_message({ channel = options.team_channel, text = msg.text,
                                                  blocks = msg.blocks })
      if not body then return nil, perr end
      return { channel = body.channel, ts = body.ts }
    end)
  end
  return result, derr
end

return M
