-- Suspects: the changes before an incident (GitHub deployments, merged PRs and commits,
-- change-feed events) ranked by how likely each is to have caused it, each with a
-- confidence (0..1) and a reason a responder can check:
--
--   "deployed payments-api v2.35.0 20 min before the incident; error rate rose 10x
--    3 min after; PR #412 "Bump payment gateway client to 3.2; shorten upstream
--    timeout"; flagged: config change, dependency bump"
--
-- What counts (tune M.weights, M.half_life... from the playbook or config):
--   kind        a production deploy or a config/flag/migration change weighs most, a
--               merged PR that was not seen deployed less, a lone commit least
--   proximity   halves every `half_life` seconds before the incident start; changes
--               after the start are most likely part of the response
--   onset       a metric change (prometheus items) or a new error signature (log
--               items) starting shortly after the change lifts it; errors that started
--               before the change lower it
--   service     a change to one of the incident's services counts fully, others half
--   flags       config, migration, hotfix, dependency add a little
--   corroboration  the same deploy seen by GitHub and by the change feed adds a little
--
--   suspects.rank(changes, opts) -> array of suspects, most likely first
--     changes: items of the github and changes sources
--     opts: incident_start (epoch s), services ({...}), metrics (prometheus items),
--           logs (loki/elasticsearch items), max (default 5)
--   suspects.from_results(results, opts) -> the same from sources.run/query_all results
--
-- A suspect: {rank, confidence, reason, service, kind, source, sources, at, at_iso,
--   before_start, title, url, version, author, flags, related = {{kind, title, url,
--   number, sha}}, onset = {what, at, gap} | nil}
local sources = require("sources")

local M = {}

M.weights = {
  deployment = 1.0,           -- a production deploy (GitHub or the change feed)
  deployment_other_env = 0.3, -- staging, preview...
  deployment_failed = 0.6,    -- a deploy whose last status is failure/error
  config = 0.9,               -- config, feature flag, migration events of the feed
  rollback = 0.6,
  pull_request = 0.6,         -- merged, not seen deployed
  commit = 0.4,
  other = 0.7,                -- any other change-feed kind
}
M.half_life = 45 * 60
M.onset_window = 30 * 60      -- an onset this long after a change is "right after" it
M.after_start_factor = 0.3    -- changes after the incident start
M.onset_long_after_factor = 0.6 -- the trouble began long (> onset_window) after the change
M.other_service_factor = 0.5
M.no_onset_factor = 0.75
M.onset_before_factor = 0.4   -- errors began before the change
M.flag_bonus = { config = 0.06, migration = 0.06, hotfix = 0.04, dependency = 0.03, revert = 0 }
M.max_flag_bonus = 0.1
M.corroboration_bonus = 0.04
M.max_confidence = 0.97

local FEED_DEPLOY_KINDS = { deploy = true, deployment = true, release = true, rollout = true }
local FEED_CONFIG_KINDS = { config = true, configuration = true, feature_flag = true, flag = true,
                            ["feature-flag"] = true, migration = true, schema = true, infrastructure = true }

local FLAG_WORDS = { config = "config change", migration = "migration", hotfix = "hotfix",
                     dependency = "dependency bump", revert = "revert" }

local function lower(s) return type(s) == "string" and s:lower() or nil end

local function short_sha(s) return type(s) == "string" and s:sub(1, 7) or nil end

local function metric_words(name)
  local known = { error_rate = "error rate", latency_p99 = "p99 latency", latency = "latency",
                  saturation = "saturation", errors = "errors" }
  return known[name] or tostring(name):gsub("_", " ")
end

---------------------------------------------------------------------------
-- onsets: when things started going wrong, per service
---------------------------------------------------------------------------

local function onsets(opts)
  local by_service = {}
  local function consider(service, o)
    local key = lower(service) or "*"
    local cur = by_service[key]
    if not cur or o.at < cur.at then by_service[key] = o end
  end
  for _, it in ipairs(opts.metrics or {}) do
    local c = it.change
    if it.status == "changed" and type(c) == "table" and c.direction == "up" and tonumber(c.at) then
      local what = metric_words(it.name)
      if c.ratio then
        what = string.format("%s rose %s", what, (c.ratio >= 10 and string.format("%.0fx", c.ratio))
          or string.format("%.1fx", c.ratio))
      else
        what = what .. " rose from " .. tostring(c.before) .. " to " .. tostring(c.after)
      end
      consider(it.service, { at = c.at, what = what, source = "metrics" })
    end
  end
  -- A log signature is an onset when it is new in the window (first seen well after
  -- the window opened) and frequent.
  local window_from = opts.logs_window_from
  for _, sig in ipairs(opts.logs or {}) do
    local first = tonumber(sig.first_seen)
    if first and (sig.count or 0) >= (opts.min_log_count or 5)
      and (not window_from or first > window_from + 300) then
      local what = "new errors \"" .. sources.excerpt(sig.signature or "", 80) .. "\" appeared"
      local services = type(sig.services) == "table" and #sig.services > 0 and sig.services or { "*" }
      for _, s in ipairs(services) do
        local key = lower(s)
        if not by_service[key] or by_service[key].source ~= "metrics" then
          consider(s, { at = first, what = what, source = "logs" })
        end
      end
    end
  end
  return by_service
end

---------------------------------------------------------------------------
-- grouping changes into suspects
---------------------------------------------------------------------------

local function new_suspect(primary)
  return {
    primary = primary, service = primary.service, kind = primary.kind, source = primary.source,
    sources = { primary.source }, at = primary.at, before_start = primary.before_start,
    title = primary.title, url = primary.url, version = primary.version, author = primary.author,
    flags = {}, related = {}, _flagset = {}, _start_at = primary.created_at or primary.at,
  }
end

local function add_flags(s, flags)
  for _, f in ipairs(flags or {}) do
    if not s._flagset[f] then
      s._flagset[f] = true
      s.flags[#s.flags + 1] = f
    end
  end
end

local function add_source(s, src)
  for _, x in ipairs(s.sources) do
    if x == src then return end
  end
  s.sources[#s.sources + 1] = src
end

local function related_entry(c)
  return { kind = c.kind, title = c.title, url = c.url, number = c.number, sha = c.sha, source = c.source }
end

local function is_deploy(c)
  if c.kind == "deployment" then return true end
  return c.source ~= "github" and FEED_DEPLOY_KINDS[c.kind] == true
end

local function group(changes)
  local suspects = {}
  local deploy_by_sha = {}
  local deploys = {}
  -- 1. deployments (GitHub first, so the feed's copy folds into it)
  local ordered = {}
  for pass = 1, 2 do
    for _, c in ipairs(changes) do
      if type(c) == "table" and tonumber(c.at) and is_deploy(c) and ((c.source == "github") == (pass == 1)) then
        ordered[#ordered + 1] = c
      end
    end
  end
  for _, c in ipairs(ordered) do
    local twin
    if c.source ~= "github" then
      for _, s in ipairs(deploys) do
        local p = s.primary
        if lower(p.service) == lower(c.service) and (
            (c.version and p.version and c.version == p.version)
            or (c.sha and p.sha and c.sha == p.sha)
            or math.abs(c.at - p.at) <= 300) then
          twin = s
          break
        end
      end
    end
    if twin then
      add_source(twin, c.source)
      add_flags(twin, c.flags)
      twin.related[#twin.related + 1] = related_entry(c)
      if not twin.version then twin.version = c.version end
    else
      local s = new_suspect(c)
      add_flags(s, c.flags)
      suspects[#suspects + 1] = s
      deploys[#deploys + 1] = s
      if c.sha then deploy_by_sha[c.sha] = s end
    end
  end
  -- 2. merged PRs: into the deployment that shipped their merge commit
  local pr_suspect = {}
  for _, c in ipairs(changes) do
    if type(c) == "table" and c.kind == "pull_request" and tonumber(c.at) then
      local d = c.merge_commit_sha and deploy_by_sha[c.merge_commit_sha]
      if d then
        d.related[#d.related + 1] = related_entry(c)
        add_flags(d, c.flags)
        d.pr = d.pr or c
        pr_suspect[c.number or c] = d
      else
        local s = new_suspect(c)
        add_flags(s, c.flags)
        suspects[#suspects + 1] = s
        pr_suspect[c.number or c] = s
      end
    end
  end
  -- 3. commits: merge commits fold into their PR (or deployment); others stand alone
  for _, c in ipairs(changes) do
    if type(c) == "table" and c.kind == "commit" and tonumber(c.at) then
      local home = (c.pull_request and pr_suspect[c.pull_request]) or (c.sha and deploy_by_sha[c.sha])
      if home then
        home.related[#home.related + 1] = related_entry(c)
      else
        local s = new_suspect(c)
        add_flags(s, c.flags)
        suspects[#suspects + 1] = s
      end
    end
  end
  -- 4. everything else from the feed (config, flags, migrations, rollbacks...)
  for _, c in ipairs(changes) do
    if type(c) == "table" and tonumber(c.at) and c.source ~= "github" and not is_deploy(c) then
      local s = new_suspect(c)
      add_flags(s, c.flags)
      suspects[#suspects + 1] = s
    end
  end
  return suspects
end

---------------------------------------------------------------------------
-- scoring
---------------------------------------------------------------------------

local function kind_weight(s)
  local p = s.primary
  local w = M.weights
  if is_deploy(p) then
    if p.source == "github" then
      if p.production == false then return w.deployment_other_env end
      if p.state == "failure" or p.state == "error" then return w.deployment_failed end
    elseif p.environment and not lower(p.environment):match("^prod") then
      return w.deployment_other_env
    end
    return w.deployment
  end
  if p.kind == "pull_request" then return w.pull_request end
  if p.kind == "commit" then return w.commit end
  if p.kind == "rollback" or p.kind == "revert" then return w.rollback end
  if FEED_CONFIG_KINDS[p.kind] then return w.config end
  return w.other
end

local function action_text(s)
  local p = s.primary
  if is_deploy(p) then
    local what = "deployed " .. tostring(p.service) .. (s.version and (" " .. s.version) or "")
    local env = p.environment
    if env and not lower(env):match("^prod") then what = what .. " to " .. env end
    if p.state == "failure" or p.state == "error" then what = what .. " (deploy " .. p.state .. ")" end
    return what
  end
  if p.kind == "pull_request" then
    return string.format('merged PR #%s "%s" in %s', tostring(p.number), tostring(p.title),
      tostring(p.repo or p.service))
  end
  if p.kind == "commit" then
    return string.format('commit %s "%s" in %s', tostring(short_sha(p.sha)), tostring(p.title),
      tostring(p.repo or p.service))
  end
  local kind = p.kind:gsub("_", " ")
  return string.format("%s change to %s: %s", kind, tostring(p.service), tostring(p.title))
end

local function when_text(before)
  if before >= 0 then return sources.ago(before) .. " before the incident" end
  return sources.ago(-before) .. " after the incident started"
end

local function round2(x) return math.floor(x * 100 + 0.5) / 100 end

function M.score(s, opts, onset_by_service)
  local start = opts.incident_start
  local p = s.primary
  local weight = kind_weight(s)
  local before = start and (start - s.at) or (p.before_start or 0)
  s.before_start = math.floor(before + 0.5)
  local score
  if before < 0 then
    score = weight * M.after_start_factor * 0.5 ^ (-before / M.half_life)
  else
    score = weight * (0.3 + 0.7 * 0.5 ^ (before / M.half_life))
  end

  local svc = lower(s.service)
  local services = {}
  for _, x in ipairs(opts.services or {}) do services[lower(x)] = true end
  if next(services) and not services[svc] then score = score * M.other_service_factor end

  local onset = onset_by_service[svc] or onset_by_service["*"]
  if not onset and not next(services) then
    for _, o in pairs(onset_by_service) do
      if not onset or o.at < onset.at then onset = o end
    end
  end
  local onset_note
  if onset then
    local gap = onset.at - s._start_at
    if gap >= -60 and gap <= M.onset_window + (s.at - s._start_at) then
      onset_note = onset.what .. " " .. (gap <= 60 and "right" or sources.ago(gap)) .. " after"
      s.onset = { what = onset.what, at = onset.at, gap = math.floor(gap + 0.5) }
    elseif gap < -60 then
      score = score * M.onset_before_factor
      onset_note = "but the trouble (" .. onset.what .. ") began " .. sources.ago(-gap) .. " before it"
      s.onset = { what = onset.what, at = onset.at, gap = math.floor(gap + 0.5) }
    else
      score = score * M.onset_long_after_factor
    end
  else
    score = score * M.no_onset_factor
  end

  local bonus = 0
  for _, f in ipairs(s.flags) do bonus = bonus + (M.flag_bonus[f] or 0) end
  score = score + math.min(bonus, M.max_flag_bonus)
  if #s.sources > 1 then score = score + M.corroboration_bonus end
  s.confidence = round2(math.max(0.01, math.min(M.max_confidence, score)))

  -- the reason
  local parts = { action_text(s) .. " " .. when_text(before) }
  if onset_note then parts[#parts + 1] = onset_note end
  for _, r in ipairs(s.related) do
    if r.kind == "pull_request" and p.kind ~= "pull_request" then
      parts[#parts + 1] = string.format('PR #%s "%s"', tostring(r.number), tostring(r.title))
      break
    end
  end
  if #s.flags > 0 then
    local words = {}
    for _, f in ipairs(s.flags) do words[#words + 1] = FLAG_WORDS[f] or f end
    parts[#parts + 1] = "flagged: " .. table.concat(words, ", ")
  end
  if #s.sources > 1 then
    parts[#parts + 1] = "seen by " .. table.concat(s.sources, " and ")
  end
  s.reason = table.concat(parts, "; ")
  return s
end

--- Ranks changes into suspects (see the top of the file).
function M.rank(changes, opts)
  opts = opts or {}
  local onset_by_service = onsets(opts)
  local list = group(changes or {})
  for _, s in ipairs(list) do M.score(s, opts, onset_by_service) end
  table.sort(list, function(a, b)
    if a.confidence ~= b.confidence then return a.confidence > b.confidence end
    return a.before_start < b.before_start
  end)
  local out = {}
  for i = 1, math.min(#list, opts.max or 5) do
    local s = list[i]
    out[i] = {
      rank = i, confidence = s.confidence, reason = s.reason, service = s.service, kind = s.kind,
      source = s.source, sources = s.sources, at = s.at, at_iso = sources.iso(s.at),
      before_start = s.before_start, title = s.title, url = s.url, version = s.version,
      author = s.author, flags = s.flags, related = s.related, onset = s.onset,
    }
  end
  return out
end

--- Suspects from source results (sources.run / sources.query_all): changes from the
-- github and changes results, onsets from prometheus and the log sources.
function M.from_results(results, opts)
  opts = opts or {}
  local changes, metrics, logs = {}, {}, {}
  local logs_from
  for _, r in ipairs(results or {}) do
    if type(r) == "table" and r.ok ~= false then
      if r.source == "github" or r.source == "changes" then
        for _, it in ipairs(r.items or {}) do changes[#changes + 1] = it end
      elseif r.source == "prometheus" then
        for _, it in ipairs(r.items or {}) do metrics[#metrics + 1] = it end
      elseif r.source == "loki" or r.source == "elasticsearch" then
        for _, it in ipairs(r.items or {}) do logs[#logs + 1] = it end
        if type(r.window) == "table" and r.window.from then
          logs_from = math.min(logs_from or math.huge, r.window.from)
        end
      end
      if not opts.incident_start and type(r.window) == "table" then opts.incident_start = r.window.incident_start end
    end
  end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.metrics = o.metrics or metrics
  o.logs = o.logs or logs
  o.logs_window_from = o.logs_window_from or logs_from
  return M.rank(changes, o)
end

return M
