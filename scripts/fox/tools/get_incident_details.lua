-- Tool: one incident, normalised, with its timeline on request.
local json = require("fox.json")
local task = require("fox.task")
local incidentio = require("fox.incidentio")
local normalize = require("fox.normalize")
local severity_policy = require("policies.severity")

local M = {
  name = "get_incident_details",
  description = "Get one incident.io incident, normalised: status, severity and priority, "
    .. "lead and roles, services, custom fields, timestamps and durations. With "
    .. "include_timeline, also its timeline (status and severity updates with their "
    .. "messages, and timeline items when the server has them) in time order.",
  input_schema = {
    type = "object",
    properties = {
      incident_id = {
        type = "string", minLength = 1, maxLength = 128,
        description = "The incident: its reference (INC-123), number (123) or full ID.",
      },
      include_timeline = {
        type = "boolean", default = false,
        description = "Also return the incident's timeline.",
      },
    },
    required = { "incident_id" },
    additionalProperties = false,
  },
}

function M.check(args)
  local seg, msg = incidentio.parse_reference(args.incident_id)
  if not seg then return "incident_id: " .. msg end
  return nil
end

-- The account's severities, fetched only when the policy does not name the incident's
-- severity (so it can be placed by rank).
local function account_severities(client, raw)
  if type(raw.severity) == "table" and not severity_policy.covers(raw.severity.name) then
    return client:severities()
  end
  return nil
end

function M.handler(args, ctx)
  local client = ctx.client or incidentio.new()
  local raw, err = client:get_incident(args.incident_id)
  if not raw then return nil, err end
  local result = {
    incident = normalize.incident(raw, { severities = account_severities(client, raw) }),
  }
  if args.include_timeline then
    -- updates and timeline items at once
    local res = {}
    local values, errors = task.gather({
      function() res.updates = table.pack(client:incident_updates(raw.id)); return true end,
      function() res.items = table.pack(client:timeline_items(raw.id)); return true end,
    })
    for i = 1, 2 do
      if not values[i] then return nil, incidentio.error("internal", tostring(errors[i])) end
    end
    if not res.updates[1] then return nil, res.updates[2] end
    if not res.items[1] then return nil, res.items[2] end
    local timeline = normalize.timeline(res.updates[1], res.items[1])
    result.timeline = #timeline > 0 and timeline or json.empty_array
  end
  return result
end

return M
