-- Which incidents fox does not investigate. Called with the incident as re-fetched
-- from the API and the `skip` table of the config:
--
--   skip(incident, opts) -> true, reason  (not investigated; recorded as skipped)
--                        -> false         (investigate)
--
-- opts.modes: incident modes to skip (default test, tutorial);
-- opts.status_categories: status categories to skip (default declined, merged,
-- canceled); opts.name_patterns: Lua patterns matched against the lower-cased name.
--
-- A team replaces this file with its own (config key `skip_policy`: a module name or
-- a .lua file returning a function of the same shape).
local function set_of(list)
  local s = {}
  for _, v in ipairs(list or {}) do s[tostring(v):lower()] = true end
  return s
end

return function(incident, opts)
  opts = opts or {}
  local modes = set_of(opts.modes or { "test", "tutorial" })
  local categories = set_of(opts.status_categories or { "declined", "merged", "canceled" })
  local mode = type(incident.mode) == "string" and incident.mode:lower() or nil
  if mode and modes[mode] then
    return true, mode .. " incident"
  end
  local status = type(incident.incident_status) == "table" and incident.incident_status or {}
  local category = type(status.category) == "string" and status.category:lower() or nil
  if category and categories[category] then
    return true, "status is " .. category
  end
  local name = type(incident.name) == "string" and incident.name:lower() or ""
  for _, pattern in ipairs(opts.name_patterns or {}) do
    local ok, hit = pcall(string.find, name, pattern:lower())
    if ok and hit then
      return true, "name matches " .. pattern
    end
  end
  return false
end
