-- Shared by the hardening specs (issue 8): `fox serve` with the REAL default playbook
-- (playbooks.investigate) against the fake incident.io and the fake Slack, with canary
-- secrets, plus what the specs check afterwards (what Slack received, per incident).
-- Built on serve_helper (processes, signed webhooks, bounded waits).
local H = require("serve_helper")
local json = require("fox.json")
local sys = require("fox.sys")

local M = {}

-- Canary secrets: distinctive, so a leak anywhere is found by a plain search.
M.API_KEY = "canary-hardening-iio-key-4f7b19c2d8"
M.SLACK_TOKEN = "xoxb-canary-hardening-slack-8e2d44a1"

-- Whether this is the long run (`make soak`).
M.SOAK = sys.getenv("FOX_SOAK") ~= nil
-- How much slower things may be: under ASan or valgrind (FOX_SANITIZED) time limits
-- that a user would notice are checked loosely.
M.SLOW = sys.getenv("FOX_SANITIZED") and 6 or 1

--- The fakes, started once per spec file. The incident.io fake accepts M.API_KEY and
-- enforces its documented rate limit (1200 per minute per key) unless rate_limit is
-- false; the Slack fake accepts M.SLACK_TOKEN in any channel.
function M.start_fakes(opts)
  opts = opts or {}
  local fakes = H.start_fakes({
    io_args = "--api-key " .. M.API_KEY .. " --fault-seed " .. (opts.fault_seed or 8) .. " " .. (opts.io_args or ""),
    slack_args = "--token " .. M.SLACK_TOKEN .. " " .. (opts.slack_args or ""),
  })
  M.reset(fakes, opts)
  return fakes
end

--- Clears faults, requests, counters and messages; turns the rate limit back on.
function M.reset(fakes, opts)
  opts = opts or {}
  H.reset_fakes(fakes)
  H.request("DELETE", fakes.slack .. "/_fake/faults")
  H.request("POST", fakes.slack .. "/_fake/config", { latency_ms = 0 })
  H.request("POST", fakes.io .. "/_fake/config", { rate_limit = opts.rate_limit ~= false })
end

--- Replaces the incident.io fake's fault rules.
function M.faults(fakes, rules, which)
  local res = H.request("POST", (which or fakes.io) .. "/_fake/faults", { rules = rules })
  assert(res.status == 200, "the fake refused the fault rules: " .. res.body)
end

function M.stats(fakes)
  local _, body = H.request("GET", fakes.io .. "/_fake/stats")
  return body
end

--- A fox serve (not started) running the default playbook. opts.config is merged in;
-- opts.options into playbook_options.
function M.new_fox(fakes, opts)
  opts = opts or {}
  local fox = H.new_fox({
    fakes = fakes, api_key = M.API_KEY,
    env = { SLACK_API_URL = fakes.slack .. "/api", SLACK_BOT_TOKEN = M.SLACK_TOKEN,
            FOX_TASK_CPU_LIMIT = opts.cpu_limit },
  })
  local options = {
    timeline = { mode = "off" }, channel_retries = 0, source_timeout = 3,
    slack = { enabled = true, investigating_message = true },
  }
  for k, v in pairs(opts.options or {}) do options[k] = v end
  local cfg = {
    playbook = "playbooks.investigate", playbook_options = options, log_level = "info",
    incidentio = { timeout = 2 }, retry_delay = 0.2, max_attempts = 10,
  }
  for k, v in pairs(opts.config or {}) do cfg[k] = v end
  fox:set_config(cfg)
  return fox
end

--- Creates n incidents in the fake (each has its own Slack channel). Returns them.
function M.create_incidents(fakes, n, prefix)
  local out = {}
  for i = 1, n do
    out[i] = H.create_incident(fakes, { name = (prefix or "Storm") .. " " .. i .. ": payments-api returns 502s",
      severity = "High", services = { "payments-api" } })
  end
  return out
end

--- What the fake Slack holds, per channel: {investigating = n, findings = n, texts = {...}}.
function M.slack_by_channel(fakes)
  local out = {}
  for _, m in ipairs(H.messages(fakes)) do
    local c = out[m.channel] or { investigating = 0, findings = 0, other = 0, texts = {} }
    out[m.channel] = c
    local text = tostring(m.text)
    if text:find("^:mag: fox is investigating") then
      c.investigating = c.investigating + 1
    elseif text:find("^fox findings for ") then
      c.findings = c.findings + 1
    else
      c.other = c.other + 1
    end
    c.texts[#c.texts + 1] = text
    c.blocks = c.blocks or {}
    c.blocks[#c.blocks + 1] = json.encode(m.blocks or json.null)
  end
  return out
end

--- Waits until every incident has its findings in Slack (or timeout). Returns the
-- per-channel view and how many had them.
function M.wait_findings(fakes, incidents, timeout)
  local by, have
  H.wait_for(function()
    by = M.slack_by_channel(fakes)
    have = 0
    for _, inc in ipairs(incidents) do
      local c = by[inc.slack_channel_id]
      if c and c.findings > 0 then have = have + 1 end
    end
    return have == #incidents
  end, timeout or 30, 0.1)
  return by, have
end

--- Asserts every incident got its findings exactly once and the "investigating"
-- message at most once (Slack posts are durable records: see docs/reliability.md).
function M.assert_posted_once(fakes, incidents, timeout)
  local by, have = M.wait_findings(fakes, incidents, timeout)
  assert(have == #incidents, ("findings posted for %d of %d incidents"):format(have, #incidents))
  for _, inc in ipairs(incidents) do
    local c = by[inc.slack_channel_id]
    assert(c.findings == 1, inc.reference .. ": findings posted " .. c.findings .. " times")
    assert(c.investigating <= 1, inc.reference .. ": 'investigating' posted " .. c.investigating .. " times")
    assert(c.other == 0, inc.reference .. ": unexpected message " .. tostring(c.texts[1]))
  end
  return by
end

--- Delivers the created-incident webhook of each incident; returns the statuses.
function M.deliver_all(fox, incidents)
  local statuses = {}
  for i, inc in ipairs(incidents) do
    local res = H.deliver(fox, H.created_event(inc))
    statuses[i] = res and res.status
  end
  return statuses
end

--- Fails when a fox log shows a sanitizer report (under `make asan` the fox processes
-- the specs start are instrumented too, and report on their stderr, the log) or a
-- canary secret.
function M.assert_clean_log(fox, extra_secret)
  local text = fox:log_text()
  local first
  for _, marker in ipairs({ "AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:" }) do
    local at = text:find(marker, 1, true)
    if at and (not first or at < first) then first = at end
  end
  assert(not first, "a sanitizer report in the log of " .. fox.dir .. ":\n"
    .. text:sub(math.max(1, (first or 1) - 300), (first or 1) + 4000))
  M.assert_no_canary(text, "the fox log", extra_secret)
end

--- Fails when any canary appears in the text.
function M.assert_no_canary(text, where, extra)
  for _, c in ipairs({ M.API_KEY, M.SLACK_TOKEN, extra }) do
    if c then assert(not text:find(c, 1, true), "a secret appears in " .. where) end
  end
end

return M
