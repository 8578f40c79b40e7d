-- Severity policy: maps incident.io severities to priorities. Teams edit the table
-- below (names are matched case-insensitively) and send SIGHUP.
local M = {}

-- The named mapping. Add the account's own severity names here; `fox doctor` reports
-- every severity of the account that is not listed.
M.priorities = {
  critical = "P0",
  high = "P1",
  medium = "P2",
  low = "P3",
}

-- Priorities from most to least urgent, used for the by-rank fallback.
M.ladder = { "P0", "P1", "P2", "P3" }

local warned = {}

local function warn_once(name, priority, how)
  if warned[name] then return end
  warned[name] = true
  local ok, log = pcall(require, "fox.log")
  if ok and log and log.warn then
    log.warn("severity_unmapped", {
      severity = name, priority = priority or "none", how = how,
      hint = "add it to scripts/policies/severity.lua",
    })
  end
end

-- True when the policy names this severity explicitly.
function M.covers(name)
  return type(name) == "string" and M.priorities[name:lower()] ~= nil
end

-- severity: {name=, rank=} (rank: higher is more severe). account: optional array of
-- the account's severities ({name, rank}) so an unknown name can be placed by rank.
-- Returns the priority string, or nil when there is no severity at all.
function M.to_priority(severity, account)
  if type(severity) ~= "table" or type(severity.name) ~= "string" then return nil end
  local p = M.priorities[severity.name:lower()]
  if p then return p end
  local rank = tonumber(severity.rank)
  if not rank then
    warn_once(severity.name, nil, "no rank")
    return nil
  end
  -- Place the unknown severity by rank among the account's severities: the most
  -- severe is P0, the next P1, and so on (capped at the last rung of the ladder).
  local ranks = {}
  if type(account) == "table" then
    for _, s in ipairs(account) do
      if tonumber(s.rank) then ranks[#ranks + 1] = tonumber(s.rank) end
    end
  end
  if #ranks == 0 then
    warn_once(severity.name, nil, "no account severities to rank against")
    return nil
  end
  table.sort(ranks, function(a, b) return a > b end)
  local position = #ranks + 1
  for i, r in ipairs(ranks) do
    if rank >= r then position = i; break end
  end
  local pr = M.ladder[math.min(position, #M.ladder)]
  warn_once(severity.name, pr, "by rank")
  return pr
end

-- A team's overrides from the config (the `severity` setting of the playbook): a table
-- {priorities = {name = "P0", ...}, ladder = {...}, replace = bool} or such a policy
-- loaded from a file (examples/policies/severity.lua). Names are added to the mapping
-- (case-insensitively) unless replace is true. Returns the policy.
function M.configure(overrides)
  if type(overrides) ~= "table" then return M end
  if type(overrides.priorities) == "table" then
    local map = {}
    if not overrides.replace then
      for k, v in pairs(M.priorities) do map[k] = v end
    end
    for name, priority in pairs(overrides.priorities) do
      if type(name) == "string" and type(priority) == "string" then map[name:lower()] = priority:upper() end
    end
    M.priorities = map
  end
  if type(overrides.ladder) == "table" and #overrides.ladder > 0 then M.ladder = overrides.ladder end
  warned = {}
  return M
end

-- The account severity (from a list of {id, name, rank}) a priority such as "P1"
-- stands for, so tools can take `severity=P1`.
function M.from_priority(priority, account)
  if type(priority) ~= "string" or type(account) ~= "table" then return nil end
  priority = priority:upper()
  for _, s in ipairs(account) do
    if M.to_priority(s, account) == priority and M.covers(s.name) then return s end
  end
  for _, s in ipairs(account) do
    if M.to_priority(s, account) == priority then return s end
  end
  return nil
end

return M
