-- A light playbook for the reload benchmark: one Slack message per incident, recorded
-- with ctx.once like the default playbook's posts, so the benchmark measures the
-- daemon (webhooks, queue, generations) rather than the evidence sources. The message
-- names the incident id, which is how the benchmark finds lost events.
local slack = require("fox.slack")

local M = {}

function M.run(incident, ctx)
  local client = slack.new((ctx.options or {}).slack or (ctx.config or {}).slack)
  local res, err = ctx.once("seen", function()
    return client:post_message({ channel = incident.slack_channel_id ~= "" and incident.slack_channel_id
      or "C00INCIDENTS", text = "fox saw " .. incident.id .. " (" .. tostring(incident.reference) .. ")" })
  end)
  if not res then return nil, err end
  return { summary = "seen " .. incident.id }
end

return M
