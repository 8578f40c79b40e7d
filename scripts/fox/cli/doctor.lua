-- `fox doctor`: checks the configuration against the real services, one line per
-- check, with a fix on failure. Exit 0 only when every check passes.
local http = require("fox.http")
local log = require("fox.log")
local json = require("fox.json")
local env = require("fox.env")
local task = require("fox.task")
local crypto = require("fox.crypto")
local incidentio = require("fox.incidentio")
local severity_policy = require("policies.severity")

local USAGE = [[
usage: fox doctor

Checks, one line each: the incident.io API key is present; the API host is reachable;
the key is accepted (GET /v1/identity) and which roles it has; every severity of the
account is named by scripts/policies/severity.lua; the Slack token is accepted
(auth.test) when SLACK_BOT_TOKEN is set; INCIDENT_IO_WEBHOOK_SECRET is well formed when
set. Exit status 0 only when all pass.
]]

-- Roles that only read. Anything else on the key is more than fox needs.
local READ_ROLES = {
  viewer = true, catalog_viewer = true, schedules_reader = true, workflows_viewer = true,
  on_call_viewer = true, incident_workload_viewer = true, incident_workload_private_viewer = true,
  call_transcripts_viewer = true, global_access = true, investigation_download = true,
}


local Report = {}
Report.__index = Report

function Report:line(state, name, detail, fix)
  local text = string.format("%-5s %s: %s", state, name, detail)
  if fix then text = text .. " -- fix: " .. fix end
  io.write(text, "\n")
  io.stdout:flush()
  self.total = self.total + 1
  if state == "FAIL" then self.failed = self.failed + 1 end
end

local function ms_since(t0)
  return math.floor((task.now() - t0) * 1000)
end

local function check_host(report, client)
  local t0 = task.now()
  local resp, err = http.request({ method = "GET", url = client.base_url .. "/v1/identity",
    headers = { Accept = "application/json" }, timeout = 10 })
  if resp then
    report:line("ok", "incident.io API host", client.base_url .. " reachable (HTTP " .. resp.status
      .. " in " .. ms_since(t0) .. " ms)")
    return true
  end
  local reason = type(err) == "table" and tostring(err.message or err.error) or tostring(err)
  report:line("FAIL", "incident.io API host", "unable to connect to " .. client.base_url .. " ("
    .. reason .. ")", "allow outbound HTTPS to " .. client.host .. " (firewall, proxy, DNS) or "
    .. "correct INCIDENT_IO_BASE_URL")
  return false
end

local function check_identity(report, client)
  local id, err = client:identity()
  if not id then
    local fix = err.kind == "auth" and "create a read-only key (\"View data\") in Settings > API "
      .. "keys and set INCIDENT_IO_API_KEY" or nil
    report:line("FAIL", "incident.io API key accepted", err.message, fix)
    return false
  end
  local roles = type(id.roles) == "table" and id.roles or {}
  local extra, has_viewer = {}, false
  for _, r in ipairs(roles) do
    if r == "viewer" then has_viewer = true end
    if not READ_ROLES[r] then extra[#extra + 1] = r end
  end
  -- The key's name as the server gives it; scrubbed, in case it is the key itself.
  local detail = string.format("%q with roles %s", log.scrub(tostring(id.name or "?")),
    #roles > 0 and table.concat(roles, ", ") or "(none)")
  if not has_viewer then
    report:line("FAIL", "incident.io API key accepted", detail .. ", but without \"viewer\"",
      "give the key the \"View data\" role in Settings > API keys")
    return false
  end
  if #extra > 0 then
    report:line("warn", "incident.io API key accepted", detail .. "; it has write roles fox does "
      .. "not need (" .. table.concat(extra, ", ") .. ")",
      "create a key with only \"View data\" for INCIDENT_IO_API_KEY")
  else
    report:line("ok", "incident.io API key accepted", detail)
  end
  return true
end

local function check_severities(report, client)
  local list, err = client:severities()
  if not list then
    report:line("FAIL", "severity policy", "cannot read the account's severities: " .. err.message)
    return
  end
  local missing, names = {}, {}
  for _, s in ipairs(list) do
    names[#names + 1] = tostring(s.name)
    if not severity_policy.covers(s.name) then
      missing[#missing + 1] = string.format("%q (by rank: %s)", tostring(s.name),
        tostring(severity_policy.to_priority(s, list) or "none"))
    end
  end
  if #missing > 0 then
    report:line("FAIL", "severity policy", "not named in scripts/policies/severity.lua: "
      .. table.concat(missing, ", "), "add them to M.priorities in scripts/policies/severity.lua")
  else
    local mapped = {}
    for _, s in ipairs(list) do mapped[#mapped + 1] = s.name .. "=" .. severity_policy.to_priority(s, list) end
    report:line("ok", "severity policy", "covers every severity (" .. table.concat(mapped, ", ") .. ")")
  end
end

-- The secret NAME for the check `label`, or nil once the report says why there is
-- none: FAIL for an unreadable NAME_FILE, else skip (`without` says what is lost).
local function secret_for(report, label, name, without)
  local value, source, err = env.secret(name)
  if value then return value, source end
  if err then
    report:line("FAIL", label, err, "make " .. source .. " name a readable file")
  else
    report:line("skip", label, name .. " not set (" .. without .. ")")
  end
end

local function check_slack(report)
  local token, source = secret_for(report, "Slack token", "SLACK_BOT_TOKEN", "findings are not posted to Slack")
  if not token then return end
  local base = (env.get("SLACK_API_URL") or "https://slack.com/api"):gsub("/+$", "")
  local resp, err = http.request({ method = "POST", url = base .. "/auth.test", timeout = 10,
    headers = { Authorization = "Bearer " .. token,
                ["Content-Type"] = "application/x-www-form-urlencoded" }, body = "" })
  if not resp then
    local reason = type(err) == "table" and tostring(err.message or err.error) or tostring(err)
    report:line("FAIL", "Slack token", "unable to connect to " .. base .. " (" .. reason .. ")",
      "allow outbound HTTPS to slack.com or correct SLACK_API_URL")
    return
  end
  local body = json.safe.decode(resp.body or "")
  if type(body) == "table" and body.ok == true then
    report:line("ok", "Slack token", "accepted (team " .. tostring(body.team or "?") .. ", bot user "
      .. tostring(body.user or "?") .. ")")
  else
    local e = type(body) == "table" and tostring(body.error or "not ok") or ("HTTP " .. resp.status)
    report:line("FAIL", "Slack token", "rejected by auth.test (" .. e .. ")",
      "use the Bot User OAuth Token (xoxb-...) of the installed Slack app in " .. source)
  end
end

local function check_webhook_secret(report)
  local s, source = secret_for(report, "webhook secret", "INCIDENT_IO_WEBHOOK_SECRET", "webhooks are not verified")
  if not s then return end
  local b64 = s:match("^whsec_(.+)$")
  local key = b64 and b64:match("^[A-Za-z0-9+/]+=*$") and crypto.base64_decode(b64)
  if not key or #key == 0 then
    report:line("FAIL", "webhook secret", source .. " is not whsec_ followed by base64",
      "copy the signing secret from the webhook endpoint in incident.io Settings > Webhooks")
    return
  end
  report:line("ok", "webhook secret", "well formed (" .. #key .. "-byte key)")
end

return function(argv)
  local a = (argv or {})[1]
  if a == "--help" or a == "-h" then
    io.write(USAGE)
    return 0
  elseif a ~= nil then
    io.stderr:write("fox doctor: unexpected argument ", a, "\n")
    return 2
  end
  local report = setmetatable({ total = 0, failed = 0 }, Report)
  local client = incidentio.new({ max_attempts = 2, connect_attempts = 1, max_retry_time = 15,
                                  max_429 = 2, timeout = 10 })
  if client:has_key() then
    report:line("ok", "incident.io API key", "present (" .. client:key_source() .. ")")
  else
    local cfg = incidentio.config()
    report:line("FAIL", "incident.io API key", cfg.key_error or "not set",
      "set INCIDENT_IO_API_KEY (or INCIDENT_IO_API_KEY_FILE) to a \"View data\" key from "
      .. "Settings > API keys")
  end
  local reachable = check_host(report, client)
  if client:has_key() and reachable then
    if check_identity(report, client) then
      check_severities(report, client)
    else
      report:line("FAIL", "severity policy", "not checked: the key was not accepted")
    end
  else
    local why = reachable and "no API key" or "the API host is unreachable"
    report:line("FAIL", "incident.io API key accepted", "not checked: " .. why)
    report:line("FAIL", "severity policy", "not checked: " .. why)
  end
  check_slack(report)
  check_webhook_secret(report)
  if report.failed == 0 then
    io.write("doctor: all ", report.total, " checks passed\n")
    return 0
  end
  io.write("doctor: ", report.failed, " of ", report.total, " checks failed\n")
  return 1
end
