-- GitHub: what changed in the repositories of the incident's services in the hours
-- before it: deployments (with their statuses), commits and merged pull requests.
-- Reverts, hotfixes, config changes, migrations and dependency bumps are flagged.
--
-- config:
--   repos        service -> "owner/repo", a list of them, or {repo = "o/r",
--                environment = "production", branch = "main"} (required: a service
--                without a repository is skipped with a warning)
--   api_url      default $GITHUB_API_URL, else https://api.github.com
--   token        default $GITHUB_TOKEN (or the file named by $GITHUB_TOKEN_FILE); sent
--                as "Authorization: Bearer ..."
--   lookback     seconds before the incident start (default 4 h); the window ends at
--                the incident start
--   max_pages    pages of 100 read per list (default 3)
--   max_deployments  deployments whose statuses are read (default 20)
--
-- items (newest first), one per change:
--   {kind = "deployment" | "pull_request" | "commit", source = "github", service, repo,
--    at, at_iso, before_start (s before the incident start), title, author, url, sha,
--    flags = {"config", ...},
--    deployment:   id, environment, production (bool), version, ref, state (latest
--                  status), deployed_at (first success), log_url, pull_requests = {n}
--    pull_request: number, branch, base, labels, merge_commit_sha, deployed (bool)
--    commit:       message (first line), pull_request (number, for merge commits)}
local json = require("fox.json")
local sys = require("fox.sys")
local http = require("fox.http")
local task = require("fox.task")
local timerange = require("fox.timerange")
local sources = require("sources")

local M = { name = "github" }

-- Statuses whose answer gh_get explains itself (one table for every request).
local GET_ACCEPT_STATUS = { [401] = true, [403] = true, [404] = true, [409] = true, [422] = true, [429] = true }

M.DEFAULT_LOOKBACK = 4 * 3600
M.API_VERSION = "2022-11-28"

---------------------------------------------------------------------------
-- flags
---------------------------------------------------------------------------

-- Lua patterns over lower-cased text (titles, messages, branches, labels).
M.FLAG_PATTERNS = {
  revert = { "^revert", "%f[%w]revert%f[%W]", "this reverts commit", "%f[%w]rollback%f[%W]",
             "%f[%w]roll back%f[%W]", "%f[%w]rolled back%f[%W]", "^revert%-" },
  hotfix = { "%f[%w]hotfix", "%f[%w]hot%-fix", "%f[%w]hot fix%f[%W]", "%f[%w]emergency fix",
             "%f[%w]quick fix%f[%W]" },
  config = { "%f[%w]config%f[%W]", "%f[%w]configs%f[%W]", "%f[%w]configuration", "%f[%w]settings?%f[%W]",
             "feature flag", "%f[%w]flags?%f[%W]", "%f[%w]toggle", "%f[%w]env var", "environment variable",
             "%f[%w]timeouts?%f[%W]", "rate limit", "%f[%w]threshold", "%f[%w]helm%f[%W]", "values%.ya?ml",
             "%.ya?ml%f[%W]", "%.toml%f[%W]", "%.ini%f[%W]", "%f[%w]terraform", "%f[%w]kustomiz", "^config/",
             "%f[%w]pool size", "%f[%w]replicas%f[%W]", "%f[%w]limits?%f[%W]" },
  migration = { "%f[%w]migration", "%f[%w]migrate%f[%W]", "%f[%w]schema%f[%W]", "alter table",
                "%f[%w]ddl%f[%W]", "%f[%w]backfill", "db/migrate", "%f[%w]add column", "%f[%w]drop column",
                "%f[%w]add index", "create table", "drop table" },
  dependency = { "^bump ", "%f[%w]bump%f[%W].*%f[%w]from%f[%W].*%f[%w]to%f[%W]", "%f[%w]bumps?%f[%W]",
                 "%f[%w]upgrade", "update dependenc", "%f[%w]dependabot", "%f[%w]renovate",
                 "%f[%w]dependencies%f[%W]", "^deps/", "^deps%(", "%f[%w]deps%f[%W]" },
}
M.FLAG_ORDER = { "revert", "hotfix", "config", "migration", "dependency" }

-- Label names that set a flag by themselves.
M.FLAG_LABELS = {
  revert = "revert", rollback = "revert", hotfix = "hotfix", ["hot-fix"] = "hotfix",
  config = "config", configuration = "config", ["feature-flag"] = "config",
  migration = "migration", database = "migration", ["db-migration"] = "migration",
  dependencies = "dependency", dependency = "dependency", deps = "dependency",
}

--- Flags of a change from its texts (title, message, branch) and labels.
function M.flags(texts, labels)
  local found = {}
  for _, text in ipairs(texts or {}) do
    if type(text) == "string" and text ~= "" then
      local l = text:lower()
      for flag, patterns in pairs(M.FLAG_PATTERNS) do
        if not found[flag] then
          for _, p in ipairs(patterns) do
            if l:find(p) then found[flag] = true; break end
          end
        end
      end
    end
  end
  for _, label in ipairs(labels or {}) do
    local f = M.FLAG_LABELS[tostring(label):lower()]
    if f then found[f] = true end
  end
  local out = {}
  for _, f in ipairs(M.FLAG_ORDER) do
    if found[f] then out[#out + 1] = f end
  end
  return out
end

---------------------------------------------------------------------------
-- HTTP
---------------------------------------------------------------------------

-- <url>; rel="next", <url>; rel="last" -> {next = url, last = url}
function M.parse_link(header)
  local links = {}
  if type(header) ~= "string" then return links end
  for url, params in header:gmatch("<([^>]*)>([^,]*)") do
    local rel = params:match('rel="([^"]+)"') or params:match("rel=([%w]+)")
    if rel then
      for r in rel:gmatch("%S+") do links[r] = url end
    end
  end
  return links
end

local function rate_limit_error(state, resp, decoded)
  local h = resp.headers
  local message = type(decoded) == "table" and decoded.message or sources.excerpt(resp.body)
  if h["x-ratelimit-remaining"] == "0" then
    local reset = tonumber(h["x-ratelimit-reset"])
    local when = ""
    if reset then
      when = string.format("; it resets at %s (in %s)", sources.iso(reset):sub(12, 16) .. "Z",
        sources.ago(math.max(0, reset - os.time())))
    end
    return string.format("github: API rate limit exhausted (%s requests/hour, HTTP %d)%s%s",
      tostring(h["x-ratelimit-limit"] or "?"), resp.status, when,
      state.token and "" or ": unauthenticated requests get 60 an hour, set GITHUB_TOKEN")
  end
  if h["retry-after"] then
    return string.format("github: secondary rate limit (HTTP %d): GitHub asks to wait %s s before retrying (%s)",
      resp.status, h["retry-after"], sources.excerpt(tostring(message), 100))
  end
  return nil
end

-- GET url with GitHub's headers. Returns decoded, nil, resp — or nil, err.
local function gh_get(state, url, what)
  for attempt = 1, 2 do
    local decoded, err, resp = sources.request_json("github", {
      url = url, headers = state.headers,
      accept_status = GET_ACCEPT_STATUS,
    }, state.deadline)
    if not resp then return nil, err end
    local status = resp.status
    if status >= 300 and decoded == nil then decoded = json.safe.decode(resp.body) end
    if status < 300 then
      if decoded == nil then return nil, err end
      return decoded, nil, resp
    end
    if status == 403 or status == 429 then
      local rl = rate_limit_error(state, resp, decoded)
      local wait = tonumber(resp.headers["retry-after"])
      if rl and wait and resp.headers["x-ratelimit-remaining"] ~= "0" and attempt == 1 and wait <= 2 then
        local left = sources.remaining(state.deadline)
        if left and left > wait + 0.5 then
          task.sleep(wait)
          goto continue
        end
      end
      if rl then return nil, rl end
    end
    do
      local message = type(decoded) == "table" and decoded.message or sources.excerpt(resp.body)
      if status == 401 then
        return nil, "github: token rejected (HTTP 401 " .. tostring(message) .. "): check GITHUB_TOKEN"
      elseif status == 404 then
        return nil, "github: " .. what .. " not found (HTTP 404): the repository does not exist or the token "
          .. "cannot read it" .. (state.token and "" or " (no GITHUB_TOKEN set)")
      elseif status == 409 then
        return {}, nil, resp -- an empty repository has no commits
      elseif status == 403 then
        return nil, "github: HTTP 403 on " .. what .. ": " .. tostring(message)
          .. " (does the token have read access to contents, deployments and pull requests?)"
      end
      return nil, "github: HTTP " .. status .. " on " .. what .. ": " .. tostring(message)
    end
    ::continue::
  end
  return nil, "github: " .. what .. ": rate limited twice"
end

-- Reads pages while keep_going(last item of the page) says so. Returns items, or nil, err.
local function paginate(state, url, what, keep_going)
  local out = {}
  local pages = 0
  while url do
    pages = pages + 1
    local list, err, resp = gh_get(state, url, what)
    if not list then return nil, err end
    if type(list) ~= "table" then return nil, "github: " .. what .. ": expected a JSON array" end
    for _, item in ipairs(list) do out[#out + 1] = item end
    local links = M.parse_link(resp and resp.headers.link)
    url = links.next
    if url and url:sub(1, #state.api) ~= state.api then
      -- Never send the token to another host.
      state.warnings[#state.warnings + 1] = "github: " .. what .. ": not following a next page outside "
        .. state.api
      url = nil
    end
    if #list == 0 or pages >= state.max_pages or (keep_going and not keep_going(list[#list])) then
      if url and pages >= state.max_pages then
        state.warnings[#state.warnings + 1] = string.format("github: %s: stopped after %d pages", what, pages)
      end
      url = nil
    end
  end
  return out
end

---------------------------------------------------------------------------
-- changes of one repository
---------------------------------------------------------------------------

local function login_of(u)
  return type(u) == "table" and u ~= json.null and u.login or nil
end

local function first_line(s)
  return type(s) == "string" and (s:match("^[^\r\n]*") or s) or ""
end

local function str(v)
  if type(v) == "string" and v ~= "" then return v end
  return nil
end

local function version_of(d)
  local p = d.payload
  if type(p) == "string" then p = json.safe.decode(p) end
  if type(p) == "table" and str(p.version) then return p.version end
  local ref = str(d.ref)
  if ref and (ref:match("^v?%d+%.%d+") or not ref:match("^%x+$")) then return ref end
  return type(d.sha) == "string" and d.sha:sub(1, 7) or nil
end

local function base_item(kind, spec, at, start)
  return { kind = kind, source = "github", service = spec.service, repo = spec.repo, at = at,
           at_iso = sources.iso(at), before_start = math.floor(start - at + 0.5) }
end

-- The deployments of the window (at most max_deployments) and their statuses, all
-- asked for at once: in_window, {{list =, err =}...} in the same order.
local function deployment_statuses(state, spec, path, deployments)
  local in_window = {}
  for _, d in ipairs(deployments or {}) do
    local created = timerange.parse_time(d.created_at)
    if created and created >= state.since and created <= state.untl and #in_window < state.max_deployments then
      in_window[#in_window + 1] = d
    end
  end
  local status_fns, statuses = {}, {}
  for i, d in ipairs(in_window) do
    status_fns[i] = function()
      local list, err = gh_get(state, path .. "/deployments/" .. math.tointeger(d.id)
        .. "/statuses?per_page=100", spec.repo .. " deployment " .. tostring(d.id) .. " statuses")
      statuses[i] = { list = list, err = err }
      return true
    end
  end
  if #status_fns > 0 then task.gather(status_fns) end
  return in_window, statuses
end

local function collect_repo(state, spec)
  local repo = spec.repo
  local path = state.api .. "/repos/" .. repo
  local since, untl = state.since, state.untl
  local q_since, q_until = sources.iso(since), sources.iso(untl)
  local res = {}
  local fns = {
    function()
      local params = { per_page = 100 }
      if spec.environment then params.environment = spec.environment end
      res.deployments, res.deployments_err = paginate(state, path .. "/deployments?" .. http.build_query(params),
        repo .. " deployments", function(last)
          local t = timerange.parse_time(last.created_at)
          return t and t >= since
        end)
      -- the statuses need only the deployments: asked for now, not after the commits
      -- and pull requests
      res.in_window, res.statuses = deployment_statuses(state, spec, path, res.deployments)
      return true
    end,
    function()
      local params = { since = q_since, ["until"] = q_until, per_page = 100 }
      if spec.branch then params.sha = spec.branch end
      res.commits, res.commits_err = paginate(state, path .. "/commits?" .. http.build_query(params),
        repo .. " commits")
      return true
    end,
    function()
      local params = { state = "closed", sort = "updated", direction = "desc", per_page = 100 }
      if spec.branch then params.base = spec.branch end
      res.pulls, res.pulls_err = paginate(state, path .. "/pulls?" .. http.build_query(params),
        repo .. " pull requests", function(last)
          local t = timerange.parse_time(last.updated_at)
          return t and t >= since
        end)
      return true
    end,
  }
  local _, errors = task.gather(fns)
  for i = 1, 3 do
    if errors[i] then return nil, "github: " .. repo .. ": " .. tostring(errors[i]) end
  end
  local failed = res.deployments_err or res.commits_err or res.pulls_err
  if failed and not (res.deployments or res.commits or res.pulls) then return nil, failed end
  for _, name in ipairs({ "deployments_err", "commits_err", "pulls_err" }) do
    if res[name] then state.warnings[#state.warnings + 1] = res[name] end
  end

  local start = state.incident_start
  local items = {}
  local pr_by_merge = {}

  for _, p in ipairs(res.pulls or {}) do
    local merged = timerange.parse_time(p.merged_at)
    if merged and merged >= since and merged <= untl then
      local labels = {}
      for _, l in ipairs(type(p.labels) == "table" and p.labels or {}) do
        if type(l) == "table" and str(l.name) then labels[#labels + 1] = l.name end
      end
      local head = type(p.head) == "table" and p.head.ref or nil
      local item = base_item("pull_request", spec, merged, start)
      item.number = p.number
      item.title = first_line(p.title)
      item.author = login_of(p.user)
      item.url = p.html_url
      item.branch = head
      item.base = type(p.base) == "table" and p.base.ref or nil
      item.labels = labels
      item.merge_commit_sha = str(p.merge_commit_sha)
      item.sha = item.merge_commit_sha
      item.flags = M.flags({ p.title, head }, labels)
      items[#items + 1] = item
      if item.merge_commit_sha then pr_by_merge[item.merge_commit_sha] = item end
    end
  end

  for _, c in ipairs(res.commits or {}) do
    local cm = type(c.commit) == "table" and c.commit or {}
    local at = timerange.parse_time(type(cm.committer) == "table" and cm.committer.date or nil)
      or timerange.parse_time(type(cm.author) == "table" and cm.author.date or nil)
    if at and at >= since and at <= untl then
      local item = base_item("commit", spec, at, start)
      item.sha = c.sha
      item.title = first_line(cm.message)
      item.message = item.title
      item.author = login_of(c.author) or (type(cm.author) == "table" and cm.author.name) or nil
      item.url = c.html_url
      local pr = pr_by_merge[c.sha]
      if pr then item.pull_request = pr.number end
      item.flags = M.flags({ cm.message })
      items[#items + 1] = item
    end
  end

  local in_window, statuses = res.in_window or {}, res.statuses or {}
  for i, d in ipairs(in_window) do
    local created = timerange.parse_time(d.created_at)
    local st = statuses[i] or {}
    local list = type(st.list) == "table" and st.list or {}
    if st.err then state.warnings[#state.warnings + 1] = st.err end
    local latest = list[1]
    local deployed_at
    for _, s in ipairs(list) do -- newest first: the last success seen is the first one
      if s.state == "success" then deployed_at = timerange.parse_time(s.created_at) or deployed_at end
    end
    local at = deployed_at or created
    local env = str(d.environment) or "production"
    local item = base_item("deployment", spec, at, start)
    item.id = d.id
    item.environment = env
    item.production = d.production_environment == true or env:lower():match("^prod") ~= nil
    item.version = version_of(d)
    item.ref = d.ref
    item.sha = d.sha
    item.state = latest and latest.state or "unknown"
    item.created_at = created
    item.deployed_at = deployed_at
    item.author = login_of(d.creator)
    item.log_url = latest and (str(latest.log_url) or str(latest.target_url)) or nil
    item.url = item.log_url or ("https://github.com/" .. repo .. "/deployments")
    item.title = "deployed " .. spec.service .. " " .. tostring(item.version or "?") .. " to " .. env
    local texts = { d.description, d.ref, type(d.payload) == "string" and d.payload or nil }
    local labels = {}
    local pr = d.sha and pr_by_merge[d.sha]
    if pr then
      item.pull_requests = { pr.number }
      item.title = item.title .. " (PR #" .. pr.number .. " " .. pr.title .. ")"
      texts[#texts + 1] = pr.title
      texts[#texts + 1] = pr.branch
      labels = pr.labels
      pr.deployed = true
    end
    item.description = str(d.description)
    item.flags = M.flags(texts, labels)
    items[#items + 1] = item
  end
  return items
end

---------------------------------------------------------------------------
-- the source
---------------------------------------------------------------------------

-- {service, repo, environment, branch} for each repository of the services.
local function repo_specs(config, services)
  local specs, unmapped = {}, {}
  local repos = config.repos or {}
  for _, service in ipairs(services) do
    local v = repos[service]
    local list = {}
    if type(v) == "string" then
      list = { { repo = v } }
    elseif type(v) == "table" then
      if v.repo then
        list = { v }
      else
        for _, e in ipairs(v) do list[#list + 1] = type(e) == "string" and { repo = e } or e end
      end
    end
    if #list == 0 then unmapped[#unmapped + 1] = service end
    for _, e in ipairs(list) do
      if type(e.repo) == "string" and e.repo:match("^[%w_.%-]+/[%w_.%-]+$") then
        specs[#specs + 1] = { service = service, repo = e.repo, environment = e.environment or config.environment,
                              branch = e.branch or config.branch }
      else
        unmapped[#unmapped + 1] = service .. " (bad repository " .. tostring(e.repo) .. ")"
      end
    end
  end
  return specs, unmapped
end

local function summarize(items, specs, lookback)
  local n = { deployment = 0, pull_request = 0, commit = 0 }
  local flags, flag_order = {}, {}
  local latest_prod
  for _, it in ipairs(items) do
    n[it.kind] = n[it.kind] + 1
    for _, f in ipairs(it.flags or {}) do
      if not flags[f] then flag_order[#flag_order + 1] = f end
      flags[f] = (flags[f] or 0) + 1
    end
    if it.kind == "deployment" and it.production and (not latest_prod or it.at > latest_prod.at) then
      latest_prod = it
    end
  end
  local repos = {}
  for _, s in ipairs(specs) do repos[#repos + 1] = s.repo end
  local parts = {}
  local function count(k, word)
    if n[k] > 0 then parts[#parts + 1] = n[k] .. " " .. word .. (n[k] == 1 and "" or "s") end
  end
  count("deployment", "deployment")
  count("pull_request", "merged PR")
  count("commit", "commit")
  if #parts == 0 then
    return "no deployments, merged PRs or commits in the " .. sources.ago(lookback) .. " before the incident ("
      .. table.concat(repos, ", ") .. ")"
  end
  local s = table.concat(parts, ", ") .. " in the " .. sources.ago(lookback) .. " before the incident ("
    .. table.concat(repos, ", ") .. ")"
  if latest_prod then
    s = s .. "; last production deploy " .. latest_prod.service .. " " .. tostring(latest_prod.version)
      .. " " .. sources.ago(latest_prod.before_start) .. " before"
  end
  if #flag_order > 0 then
    local fl = {}
    for _, f in ipairs(flag_order) do fl[#fl + 1] = f .. " " .. flags[f] end
    s = s .. "; flagged: " .. table.concat(fl, ", ")
  end
  return s
end

function M.query(ctx)
  local config = ctx.config or {}
  local services = sources.services(ctx)
  local specs, unmapped = repo_specs(config, services)
  if #specs == 0 then
    local names = #services > 0 and table.concat(services, ", ") or "the incident's services"
    return nil, "github: no repository mapped to " .. names
      .. ": add them to the github source's repos (service = \"owner/repo\")"
  end
  local token = config.token
  if token == nil then token = sys.secret("GITHUB_TOKEN") end
  if token == "" then token = nil end
  local api = (config.api_url or sys.getenv("GITHUB_API_URL") or "https://api.github.com"):gsub("/+$", "")
  local headers = {
    ["Accept"] = "application/vnd.github+json",
    ["X-GitHub-Api-Version"] = M.API_VERSION,
    ["User-Agent"] = "fox-incident-investigator",
  }
  if token then headers["Authorization"] = "Bearer " .. token end
  local lookback = config.lookback or M.DEFAULT_LOOKBACK
  local start = sources.incident_start(ctx)
  local state = {
    api = api, headers = headers, token = token, deadline = sources.deadline(ctx),
    since = start - lookback, untl = start + (config.after or 0), incident_start = start,
    max_pages = config.max_pages or 3, max_deployments = config.max_deployments or 20,
    warnings = {},
  }
  for _, s in ipairs(unmapped) do
    state.warnings[#state.warnings + 1] = "github: no repository mapped to " .. s
  end

  local results, fns = {}, {}
  for i, spec in ipairs(specs) do
    fns[i] = function()
      local items, err = collect_repo(state, spec)
      results[i] = { items = items, err = err }
      return true
    end
  end
  local _, errors = task.gather(fns)
  local items, failures = {}, {}
  for i, spec in ipairs(specs) do
    local r = results[i]
    if errors[i] then
      failures[#failures + 1] = "github: " .. spec.repo .. ": " .. tostring(errors[i])
    elseif r.err then
      failures[#failures + 1] = r.err
    else
      for _, it in ipairs(r.items) do items[#items + 1] = it end
    end
  end
  if #failures == #specs then
    local msg = failures[1]
    if #failures > 1 and failures[2] ~= msg then
      msg = msg .. string.format(" (and %d more repositories failed)", #failures - 1)
    end
    return nil, msg
  end
  for _, f in ipairs(failures) do state.warnings[#state.warnings + 1] = f end
  local kind_order = { deployment = 1, pull_request = 2, commit = 3 }
  table.sort(items, function(a, b)
    if a.at ~= b.at then return a.at > b.at end
    return kind_order[a.kind] < kind_order[b.kind]
  end)
  return {
    ok = true, source = M.name, items = items, summary = summarize(items, specs, lookback),
    warnings = #state.warnings > 0 and state.warnings or nil,
    window = { from = state.since, to = state.untl, incident_start = start },
  }
end

return M
