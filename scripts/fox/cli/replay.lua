-- `fox replay --since 30d [--playbook FILE]`: runs a playbook in dry run over past
-- incidents and prints a table, so a team can try a playbook change against history
-- before sending SIGHUP.
local json = require("fox.json")
local task = require("fox.task")
local timerange = require("fox.timerange")
local cli = require("fox.playbook_cli")

local USAGE = [[
usage: fox replay [--since 30d] [--playbook FILE] [--limit N] [--concurrency N]
                  [--format table|json] [--config FILE] [--ai]

Runs the playbook in dry run (nothing posted, nothing written) over the incidents
created in the time range, oldest first, and prints one row per incident: the suspects
found, the top one and its confidence, the sources that failed, and the time the
investigation took; then the totals (incidents, incidents with a suspect, mean
confidence, time per investigation). Test and tutorial incidents, and the ones the skip
policy skips, are left out.

options:
  --since RANGE      30m, 24h, 7d, 4w or an ISO-8601 interval (default 30d)
  --playbook FILE    the playbook to try (default: the configured one)
  --limit N          at most N incidents, the most recent (default 200)
  --concurrency N    investigations at once (default 4)
  --format F         table (default) or json
  --config FILE      fox.conf.lua (default $FOX_CONFIG, else ./fox.conf.lua)
  --ai               also ask the AI endpoint (off by default in a replay)
exit status: 0 ok, 1 the incidents could not be listed, 2 usage.
]]

local SPEC = { since = "value", playbook = "value", limit = "value", concurrency = "value",
               format = "value", config = "value", ai = "flag" }

local function usage_error(msg)
  return cli.usage_error("fox replay", msg)
end

local function pad(s, n)
  s = tostring(s)
  local len = utf8.len(s) or #s
  if len > n then
    local cut = utf8.offset(s, n) or (n + 1)
    return s:sub(1, cut - 1) .. "…"
  end
  return s .. (" "):rep(n - len)
end

-- The incidents created in range, oldest first, at most limit (the most recent).
local function past_incidents(client, range, limit)
  local list, err = client:list_incidents({
    sort_by = "created_at_newest_first",
    ["created_at[gte]"] = timerange.format_date(range.from),
  }, { limit = limit * 2 })
  if not list then return nil, err end
  local out = {}
  for _, raw in ipairs(list) do
    local t = timerange.parse_time(raw.created_at)
    if t and t >= range.from and t <= range.to and #out < limit then out[#out + 1] = raw end
  end
  table.sort(out, function(a, b) return tostring(a.created_at) < tostring(b.created_at) end)
  return out
end

local function mean(list)
  if #list == 0 then return 0 end
  local s = 0
  for _, v in ipairs(list) do s = s + v end
  return s / #list
end

return function(argv)
  local opts, pos = cli.args("fox replay", argv, SPEC, USAGE)
  if not opts then return pos end
  if #pos > 0 then return usage_error("unexpected argument " .. pos[1]) end
  local range, rerr = timerange.parse(opts.since or "30d", os.time())
  if not range then return usage_error("--since: " .. rerr) end
  local limit = math.tointeger(tonumber(opts.limit or 200))
  local concurrency = math.tointeger(tonumber(opts.concurrency or 4))
  if not limit or limit < 1 then return usage_error("--limit must be a positive integer") end
  if not concurrency or concurrency < 1 then return usage_error("--concurrency must be a positive integer") end
  local format = opts.format or "table"
  if format ~= "table" and format ~= "json" then return usage_error("--format must be table or json") end

  local cfg, run = cli.load("fox replay", opts)
  if not cfg then return 2 end
  local base = cli.context(cfg, { dry_run = true, no_ai = not opts.ai })
  local incidents, lerr = past_incidents(base.client, range, limit)
  if not incidents then
    io.stderr:write("fox replay: ", tostring(lerr), "\n")
    return 1
  end
  local skip = require("fox.config").load_code(cfg.skip_policy or "policies.skip", cfg)
  local todo = {}
  for _, raw in ipairs(incidents) do
    local skipped = type(skip) == "function" and skip(raw, cfg.skip)
    if not skipped then todo[#todo + 1] = raw end
  end

  -- at most `concurrency` investigations at once
  local rows = {}
  local next_i = 0
  local function worker()
    while true do
      next_i = next_i + 1
      local i = next_i
      local raw = todo[i]
      if not raw then return end
      local ctx = {}
      for k, v in pairs(base) do ctx[k] = v end
      local t0 = task.now()
      local ok, f, err = pcall(run, raw, ctx)
      local row = { reference = raw.reference, name = raw.name, created_at = raw.created_at,
                    seconds = task.now() - t0 }
      if ok and type(f) == "table" then
        row.suspects = #(f.suspects or {})
        row.top = f.suspects and f.suspects[1] and f.suspects[1].title or nil
        row.confidence = f.confidence or 0
        local failed = {}
        for _, s in ipairs(f.failed_sources or {}) do failed[#failed + 1] = s.source end
        row.failed_sources = json.array(failed)
      else
        row.error = tostring(ok and err or f)
      end
      rows[i] = row
    end
  end
  local workers = {}
  for w = 1, math.min(concurrency, math.max(1, #todo)) do workers[w] = worker end
  task.gather(workers)

  local with_suspects, confidences, times, errors = 0, {}, {}, 0
  for _, r in ipairs(rows) do
    times[#times + 1] = r.seconds
    if r.error then
      errors = errors + 1
    else
      confidences[#confidences + 1] = r.confidence
      if r.suspects > 0 then with_suspects = with_suspects + 1 end
    end
  end
  local max_time = 0
  for _, t in ipairs(times) do max_time = math.max(max_time, t) end
  local totals = {
    incidents = #rows, skipped = #incidents - #todo, with_suspects = with_suspects, errors = errors,
    mean_confidence = mean(confidences), mean_seconds = mean(times), max_seconds = max_time,
    since = range.spec,
  }

  if format == "json" then
    io.write(json.encode({ incidents = json.array(rows), totals = totals }), "\n")
    return 0
  end
  local out = {}
  out[#out + 1] = string.format("%-8s %-17s %-8s %-44s %-6s %-16s %s", "INCIDENT", "CREATED", "SUSPECTS",
    "TOP SUSPECT", "CONF", "FAILED SOURCES", "TIME")
  for _, r in ipairs(rows) do
    local created = (r.created_at or ""):gsub("T", " "):sub(1, 16)
    if r.error then
      out[#out + 1] = string.format("%-8s %-17s %s", r.reference, created, "ERROR: " .. r.error:gsub("\n.*", ""))
    else
      out[#out + 1] = string.format("%-8s %-17s %-8d %s %-6s %s %.2f s", r.reference, created, r.suspects,
        pad(r.top or "-", 44), string.format("%.2f", r.confidence),
        pad(#r.failed_sources > 0 and table.concat(r.failed_sources, ",") or "-", 16), r.seconds)
    end
  end
  out[#out + 1] = ""
  out[#out + 1] = string.format("incidents %d (skipped %d) | with suspects %d (%d%%) | mean confidence %.2f | "
    .. "time per investigation %.2f s (max %.2f s)%s", totals.incidents, totals.skipped, with_suspects,
    #rows > 0 and math.floor(100 * with_suspects / #rows + 0.5) or 0, totals.mean_confidence, totals.mean_seconds,
    totals.max_seconds, errors > 0 and (" | errors " .. errors) or "")
  io.write(table.concat(out, "\n"), "\n")
  return 0
end
