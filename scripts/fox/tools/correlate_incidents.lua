-- Tool: incidents like a given one (scripts/policies/correlate.lua decides what "like"
-- means), with how each was resolved, from the in-memory index of recent incidents.
local json = require("fox.json")
local task = require("fox.task")
local incidentio = require("fox.incidentio")
local normalize = require("fox.normalize")
local timerange = require("fox.timerange")
local index = require("fox.incident_index")
local search = require("fox.correlation_search")
local correlate = require("policies.correlate")
local severity_policy = require("policies.severity")

local M = {
  name = "correlate_incidents",
  description = "Find past and current incidents similar to one incident: shared services, "
    .. "the same error pattern, similar title and summary, closeness in time, the same "
    .. "severity or type, and explicit links (related or merged incidents). Each match has "
    .. "its score, the score of every signal, its status and how it was resolved (lead, "
    .. "duration, postmortem). A duration time_range (30d) is counted back from the "
    .. "incident's creation (and as far forward, up to now).",
  input_schema = {
    type = "object",
    properties = {
      incident_id = {
        type = "string", minLength = 1, maxLength = 128,
        description = "The incident to correlate: INC-123, 123 or its full ID.",
      },
      similarity_threshold = {
        type = "number", minimum = 0, maximum = 1, default = 0.5,
        description = "Only matches scoring at least this (0..1).",
      },
      time_range = {
        type = "string", minLength = 1, maxLength = 100, default = "30d",
        description = "Which incidents to compare with, by creation time: 30m, 24h, 7d, 4w, or "
          .. "an ISO-8601 interval.",
      },
      limit = {
        type = "integer", minimum = 1, maximum = 100, default = 10,
        description = "At most this many matches, best first.",
      },
    },
    required = { "incident_id" },
    additionalProperties = false,
  },
}

M.MAX_LINKED_FETCHES = 10   -- linked incidents outside the window fetched one by one
M.MAX_MERGED_CHECKS = 10    -- merged candidates whose updates are read to find merges

function M.check(args)
  local seg, msg = incidentio.parse_reference(args.incident_id)
  if not seg then return "incident_id: " .. msg end
  local _, tmsg = timerange.parse(args.time_range)
  if tmsg then return "time_range: " .. tmsg end
  return nil
end

local function window(spec, created, now)
  local range = assert(timerange.parse(spec, now))
  if range.explicit_end then return range.from, range.to, range end
  local from = created - range.seconds
  local to = math.min(now, created + range.seconds)
  if to < created then to = created end
  return from, to, range
end

local function or_null(v)
  if v == nil then return json.null end
  return v
end

local function match_entry(rec, score, signals, shared_services, link)
  return {
    id = rec.id,
    reference = rec.reference,
    name = rec.name,
    score = score,
    signals = signals,
    link = or_null(link),
    shared_services = shared_services or json.empty_array,
    services = (rec.services and #rec.services > 0) and rec.services or json.empty_array,
    status = { name = or_null(rec.status and rec.status.name),
               category = or_null(rec.status and rec.status.category) },
    severity = rec.severity and { name = rec.severity.name, rank = rec.severity.rank } or json.null,
    priority = or_null(rec.severity and severity_policy.to_priority(rec.severity)),
    incident_type = or_null(rec.type),
    created_at = rec.created_at,
    permalink = or_null(rec.permalink),
    resolution = {
      lead = rec.lead and { name = or_null(rec.lead.name), email = or_null(rec.lead.email) } or json.null,
      duration_seconds = or_null(rec.duration),
      resolved_at = or_null(rec.resolved_at),
      postmortem_url = or_null(rec.postmortem_url),
    },
  }
end

local function gather_packed(fns)
  local res = {}
  local wrapped = {}
  for i, fn in ipairs(fns) do
    wrapped[i] = function() res[i] = table.pack(fn()); return true end
  end
  local values, errors = task.gather(wrapped)
  for i = 1, #fns do
    if not values[i] then return nil, incidentio.error("internal", tostring(errors[i])) end
  end
  return res
end

function M.handler(args, ctx)
  local client = ctx.client or incidentio.new()
  local now = ctx.now or os.time()
  local raw, err = ctx.incident, nil
  if type(raw) ~= "table" or not raw.id or not raw.created_at then
    raw, err = client:get_incident(args.incident_id)
  end
  if not raw then return nil, err end
  local created = timerange.parse_time(raw.created_at) or now
  local from, to, range = window(args.time_range, created, now)

  -- The index, the target's updates (merges, error lines in messages) and its
  -- explicit relationships, all at once.
  local res, gerr = gather_packed({
    function() return index.ensure(client, from) end,
    function() return client:incident_updates(raw.id) end,
    function() return client:incident_relationships(raw.id) end,
  })
  if not res then return nil, gerr end
  for i = 1, 3 do
    if not res[i][1] then return nil, res[i][2] end
  end
  local updates, relationships = res[2][1], res[3][1]
  index.put(client, raw)

  local links = {}
  for _, rel in ipairs(relationships) do
    if type(rel.incident) == "table" and rel.incident.id then links[rel.incident.id] = "related" end
  end
  local messages = {}
  for _, u in ipairs(updates) do
    if type(u.merged_into_incident_id) == "string" and u.merged_into_incident_id ~= "" then
      links[u.merged_into_incident_id] = "merged_into"
    end
    if type(u.message) == "string" then messages[#messages + 1] = u.message end
  end

  local target = index.record(raw, { extra_text = table.concat(messages, "\n") })
  local prep = correlate.prepare(target)
  local threshold = args.similarity_threshold
  local function match(rec)
    local score, signals, shared_services, link = correlate.score(prep, rec, links)
    return { rec = rec, score = score, signals = signals, shared = shared_services, link = link }
  end
  local function in_window(rec)
    return rec and rec.t and rec.t >= from and rec.t <= to
  end

  -- Linked incidents in the window are scored here, whatever they share; the search
  -- finds the best of the others.
  local target_docno = index.docno(client, raw.id)
  local skip, seen, scored, linked_scored = {}, {}, {}, 0
  if target_docno then skip[target_docno] = true end
  for id in pairs(links) do
    local docno = id ~= raw.id and index.docno(client, id)
    local rec = docno and index.get(client, docno)
    if in_window(rec) then
      skip[docno], seen[id] = true, true
      linked_scored = linked_scored + 1
      local m = match(rec)
      if m.score >= threshold then scored[#scored + 1] = m end
    end
  end
  local found = search.find(client, prep, { from = from, to = to, threshold = threshold,
    limit = args.limit, match = match, skip = skip, target_docno = target_docno, scan = ctx.scan })
  for _, m in ipairs(found.matches) do scored[#scored + 1] = m end

  -- Incidents merged into this one: their own updates say so. Check the closest few.
  local merged = {}
  for _, period in ipairs(index.periods(from, to)) do
    index.scan(index.postings(client, period, index.MERGED), from, to, function(_, docno)
      local rec = index.get(client, docno)
      if in_window(rec) and rec.id ~= raw.id and not links[rec.id]
        and rec.status and rec.status.category == "merged" then
        merged[#merged + 1] = rec
      end
    end)
  end
  table.sort(merged, function(a, b)
    local da, db = math.abs(a.t - created), math.abs(b.t - created)
    if da ~= db then return da < db end
    return a.id < b.id
  end)
  for i = 1, math.min(#merged, M.MAX_MERGED_CHECKS) do
    local rec = merged[i]
    local ups = client:incident_updates(rec.id)
    for _, u in ipairs(ups or {}) do
      if u.merged_into_incident_id == raw.id then
        links[rec.id] = "merged_from"
        -- it may be among the matches already, scored without its link
        for j = #scored, 1, -1 do
          if scored[j].rec.id == rec.id then table.remove(scored, j) end
        end
        scored[#scored + 1] = match(rec)
        break
      end
    end
  end

  -- Linked incidents outside the window still matter: fetch them.
  local fetched = 0
  local outside = {}
  for id in pairs(links) do
    if not seen[id] and id ~= raw.id and links[id] ~= "merged_from" then outside[#outside + 1] = id end
  end
  table.sort(outside)
  for _, id in ipairs(outside) do
    if fetched >= M.MAX_LINKED_FETCHES then break end
    fetched = fetched + 1
    local other = client:get_incident(id)
    if other then scored[#scored + 1] = match(index.record(other)) end
  end

  table.sort(scored, search.better)
  local matches = {}
  for i = 1, math.min(#scored, args.limit) do
    local s = scored[i]
    matches[i] = match_entry(s.rec, s.score, s.signals, s.shared, s.link)
  end

  local account
  if type(raw.severity) == "table" and not severity_policy.covers(raw.severity.name) then
    account = client:severities()
  end
  return {
    incident = normalize.incident(raw, { severities = account }),
    matches = #matches > 0 and matches or json.empty_array,
    threshold = threshold,
    time_range = { spec = range.spec, from = timerange.format_time(from), to = timerange.format_time(to) },
    candidates_considered = found.considered,
    candidates_scored = found.scored + linked_scored,
    candidate_lookup = found.lookup,
  }
end

return M
