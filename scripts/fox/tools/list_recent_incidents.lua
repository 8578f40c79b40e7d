-- Tool: recent incidents, filtered with the API's own filters (status category,
-- severity, creation time), newest first.
local json = require("fox.json")
local incidentio = require("fox.incidentio")
local normalize = require("fox.normalize")
local timerange = require("fox.timerange")
local severity_policy = require("policies.severity")
local services_policy = require("policies.services")

local M = {
  name = "list_recent_incidents",
  description = "List recent incident.io incidents, newest first, filtered by service, "
    .. "severity, status and creation time. status: active (triage, live, paused), "
    .. "resolved (learning, closed), all, a status category or a status name.",
  input_schema = {
    type = "object",
    properties = {
      service = {
        type = "string", minLength = 1, maxLength = 200,
        description = "Only incidents affecting this service (custom fields, or named in the title or summary).",
      },
      severity = {
        type = "string", minLength = 1, maxLength = 200,
        description = "Only incidents of this severity: its name (e.g. Critical), ID or priority (P0..P3).",
      },
      status = {
        type = "string", minLength = 1, maxLength = 200, default = "active",
        description = "active, resolved, all, a status category (triage, live, paused, learning, "
          .. "closed, declined, canceled, merged) or a status name.",
      },
      time_range = {
        type = "string", minLength = 1, maxLength = 100, default = "7d",
        description = "How far back to look by creation time: 30m, 24h, 7d, 4w, or an ISO-8601 "
          .. "interval (2025-01-01T00:00:00Z/2025-01-08T00:00:00Z, 2025-01-01/P7D).",
      },
      limit = {
        type = "integer", minimum = 1, maximum = 500, default = 50,
        description = "At most this many incidents.",
      },
    },
    additionalProperties = false,
  },
}

M.STATUS_GROUPS = {
  active = { "triage", "live", "paused" },
  resolved = { "learning", "closed" },
}

M.CATEGORIES = { triage = true, live = true, paused = true, learning = true, closed = true,
                 declined = true, canceled = true, merged = true }

function M.check(args)
  local _, msg = timerange.parse(args.time_range)
  if msg then return "time_range: " .. msg end
  return nil
end

-- Translates the status argument into API filters. Returns filters-to-add, a
-- description for the output, or nil, err.
local function status_filter(client, status)
  local s = status:lower()
  if s == "all" then return {}, { status = "all" } end
  local group = M.STATUS_GROUPS[s]
  if group then
    return { ["status_category[one_of]"] = group }, { status = s, status_categories = group }
  end
  if M.CATEGORIES[s] then
    return { ["status_category[one_of]"] = { s } }, { status = s, status_categories = { s } }
  end
  local st, err = client:resolve_status(status)
  if not st then return nil, err end
  return { ["status[one_of]"] = st.id }, { status = st.name, status_id = st.id }
end

-- The API filter for a service when the services policy names a field every incident
-- fills (services.api_filter_field): {key, value} or nil (filter with the policy only),
-- or nil, err.
local function service_api_filter(client, service)
  local wanted = services_policy.api_filter_field
  if type(wanted) ~= "string" then return nil end
  local fields, err = client:custom_fields()
  if not fields then return nil, err end
  local field
  for _, f in ipairs(fields) do
    if type(f.name) == "string" and f.name:lower() == wanted:lower() then field = f end
  end
  if not field then return nil end
  local key = "custom_field[" .. field.id .. "][one_of]"
  if field.catalog_type_id then
    local entry, cerr = client:catalog_entry(field.catalog_type_id, service)
    if cerr then return nil, cerr end
    if entry then return { key, entry.id } end
    return nil
  end
  local options, oerr = client:custom_field_options(field.id)
  if not options then return nil, oerr end
  for _, o in ipairs(options) do
    if services_policy.canonical(o.value) == service then return { key, o.id } end
  end
  return nil
end

function M.handler(args, ctx)
  local client = ctx.client or incidentio.new()
  local now = ctx.now or os.time()
  local range = assert(timerange.parse(args.time_range, now))
  local filters = { sort_by = "created_at_newest_first" }
  -- The API filters creation by date: ask for a day more on each side (time zones) and
  -- keep the exact range below.
  filters["created_at[gte]"] = timerange.format_date(range.from - 86400)
  if range.explicit_end then
    filters["created_at[lte]"] = timerange.format_date(range.to + 86400)
  end

  local st_filters, applied = status_filter(client, args.status)
  if not st_filters then return nil, applied end
  for k, v in pairs(st_filters) do filters[k] = v end

  local severity
  if args.severity then
    local err
    severity, err = client:resolve_severity(args.severity)
    if not severity then return nil, err end
    filters["severity[one_of]"] = severity.id
  end

  local service = args.service and services_policy.canonical(args.service)
  if service then
    local f, ferr = service_api_filter(client, service)
    if ferr then return nil, ferr end
    if f then
      filters[f[1]] = f[2]
      applied.service_filter = f[1] .. "=" .. f[2]
    end
  end
  local limit = args.limit
  local matches, truncated = {}, false
  local page_size = service and 100 or math.min(incidentio.PAGE_SIZE_MAX, limit + 1)
  local _, err = client:list_incidents(filters, {
    page_size = page_size, collect = false,
    on_page = function(records)
      for _, raw in ipairs(records) do
        local t = timerange.parse_time(raw.created_at)
        -- newest first: once past the start of the range, nothing older is wanted
        if t and t < range.from then return false end
        if t and t <= range.to
          and (not service or services_policy.matches(services_policy.extract(raw), service)) then
          if #matches >= limit then
            truncated = true
            return false
          end
          matches[#matches + 1] = raw
        end
      end
      return true
    end,
  })
  if err then return nil, err end

  local account
  for _, raw in ipairs(matches) do
    if type(raw.severity) == "table" and not severity_policy.covers(raw.severity.name) then
      account = client:severities()
      break
    end
  end
  local incidents = {}
  for i, raw in ipairs(matches) do
    incidents[i] = normalize.incident(raw, { severities = account })
  end

  applied.time_range = { spec = range.spec, from = timerange.format_time(range.from),
                         to = timerange.format_time(range.to) }
  applied.limit = limit
  applied.service = service or json.null
  applied.severity = severity and severity.name or json.null
  if severity then applied.severity_id = severity.id end
  return {
    incidents = #incidents > 0 and incidents or json.empty_array,
    count = #incidents,
    truncated = truncated,
    filters = applied,
  }
end

return M
