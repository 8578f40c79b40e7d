-- Findings as JSON: the findings table itself, with every list written as a JSON array
-- (also when empty), so consumers can rely on the shape fox.findings documents.
--
--   local render = require("fox.render.json")
--   render.findings(f [, {pretty = true}]) -> string
local json = require("fox.json")

local M = {}

-- The lists of the findings (and of their items) that are arrays even when empty.
local LISTS = { "services", "critical_services", "suspects", "metrics", "logs", "similar", "errors",
                "links", "next_steps", "failed_sources", "sources" }

local function as_array(t)
  if type(t) ~= "table" then return json.array({}) end
  local copy = {}
  for i, v in ipairs(t) do copy[i] = v end
  return json.array(copy)
end

-- A copy of f with its lists marked as arrays (f itself is left alone).
function M.prepare(f)
  local out = {}
  for k, v in pairs(f or {}) do out[k] = v end
  for _, k in ipairs(LISTS) do out[k] = as_array(out[k]) end
  if type(out.delivery) == "table" then
    local d = {}
    for k, v in pairs(out.delivery) do d[k] = v end
    d.errors = as_array(d.errors)
    out.delivery = d
  end
  return out
end

function M.findings(f, opts)
  local v = M.prepare(f)
  if opts and opts.pretty then return json.pretty(v) end
  return json.encode(v)
end

return M
