-- The optional AI summary: sends the team's custom context and the evidence fox
-- gathered to an OpenAI-compatible chat-completions endpoint and returns a short
-- summary. Off by default; any failure is returned as nil, err and the caller keeps
-- the rest of the findings.
--
--   local ai = require("fox.ai")
--   local cfg = ai.config(config.ai)      -- {enabled, url, model, key, timeout, max_tokens}
--   local text, model_or_err = ai.summarize(cfg, findings, context_text)
--
-- Settings (config key `ai`, each defaulting to the environment):
--   enabled     false unless set (or FOX_AI_ENABLED=1)
--   url         FOX_AI_URL: the endpoint (https://api.openai.com/v1/chat/completions);
--               a base URL ending in /v1 gets /chat/completions appended
--   model       FOX_AI_MODEL (default gpt-4o-mini)
--   key         FOX_AI_API_KEY, else the file named by FOX_AI_API_KEY_FILE (registered
--               for log redaction); an endpoint without auth may have none
--   timeout     seconds (default 20); max_tokens (default 400)
local http = require("fox.http")
local json = require("fox.json")
local log = require("fox.log")
local env = require("fox.env")
local sys = require("fox.sys")

local M = {}

M.DEFAULT_MODEL = "gpt-4o-mini"
M.MAX_EVIDENCE_BYTES = 12000
M.MAX_SUMMARY_CHARS = 1500

M.SYSTEM_PROMPT = table.concat({
  "You are fox, an incident investigation assistant for an SRE team.",
  "You get the team's own notes about its systems and the evidence an automated investigation",
  "gathered (suspected changes ranked by confidence, metric shifts, error log signatures, similar",
  "past incidents and how they were resolved). Write at most five sentences for the responders:",
  "the most likely cause and why, what the evidence does not explain, and the first thing to try.",
  "Only use the evidence given; say so when it is thin. Plain text, no markdown headings.",
}, " ")

function M.config(opts)
  opts = type(opts) == "table" and opts or {}
  local enabled = opts.enabled
  if enabled == nil then
    local e = env.get("FOX_AI_ENABLED")
    enabled = e == "1" or e == "true" or e == "yes"
  end
  local url = opts.url or env.get("FOX_AI_URL")
  if url then
    url = url:gsub("/+$", "")
    if not url:find("/chat/completions$") then url = url .. "/chat/completions" end
  end
  local key = opts.key
  if not key then key = sys.secret("FOX_AI_API_KEY") end
  if key then log.redact(key) end
  return {
    enabled = enabled == true,
    url = url,
    model = opts.model or env.get("FOX_AI_MODEL") or M.DEFAULT_MODEL,
    key = key,
    timeout = tonumber(opts.timeout) or 20,
    max_tokens = tonumber(opts.max_tokens) or 400,
  }
end

-- The evidence as compact JSON, within the size cap (least important parts dropped
-- first).
function M.evidence(f)
  local e = {
    incident = f.incident, priority = f.priority, services = f.services,
    critical_services = f.critical_services, summary = f.summary, errors = f.errors,
    suspects = f.suspects, metrics = f.metrics, logs = f.logs, similar = f.similar,
    failed_sources = f.failed_sources, confidence = f.confidence,
  }
  local text = json.encode(e)
  local drop = { "errors", "failed_sources", "similar", "logs", "metrics" }
  local i = 1
  while #text > M.MAX_EVIDENCE_BYTES and i <= #drop do
    e[drop[i]] = nil
    text = json.encode(e)
    i = i + 1
  end
  if #text > M.MAX_EVIDENCE_BYTES then text = text:sub(1, M.MAX_EVIDENCE_BYTES) end
  return text
end

function M.messages(f, context_text)
  local user = {}
  if type(context_text) == "string" and context_text ~= "" then
    user[#user + 1] = "About our systems (from the team):\n" .. context_text
  end
  user[#user + 1] = "Evidence (JSON):\n" .. M.evidence(f)
  return {
    { role = "system", content = M.SYSTEM_PROMPT },
    { role = "user", content = table.concat(user, "\n\n") },
  }
end

local function api_message(body)
  local d = json.safe.decode(body or "")
  if type(d) == "table" and type(d.error) == "table" and type(d.error.message) == "string" then
    return d.error.message:sub(1, 200)
  end
  return nil
end

--- Asks the endpoint for a summary. Returns text, model — or nil, err (a string).
function M.summarize(cfg, f, context_text)
  if not cfg or not cfg.enabled then return nil, "AI summary is off" end
  if not cfg.url then
    return nil, "AI summary is on but no endpoint is set: set FOX_AI_URL (or ai.url in the config)"
  end
  local headers = { ["Content-Type"] = "application/json", ["Accept"] = "application/json" }
  if cfg.key then headers["Authorization"] = "Bearer " .. cfg.key end
  local body = json.encode({
    model = cfg.model, messages = M.messages(f, context_text), temperature = 0.2,
    max_tokens = cfg.max_tokens,
  })
  local resp, err = http.request({ method = "POST", url = cfg.url, headers = headers, body = body,
                                   timeout = cfg.timeout, max_body = 1048576 })
  local host = cfg.url:match("^%a[%w+.-]*://([^/]+)") or cfg.url
  if not resp then
    return nil, "AI endpoint " .. host .. " unreachable: " .. tostring(type(err) == "table" and err.message or err)
  end
  if resp.status == 401 or resp.status == 403 then
    return nil, "AI endpoint " .. host .. " rejected the key (HTTP " .. resp.status .. "): check FOX_AI_API_KEY"
  end
  if resp.status < 200 or resp.status >= 300 then
    local msg = api_message(resp.body)
    return nil, "AI endpoint " .. host .. " answered HTTP " .. resp.status .. (msg and (": " .. msg) or "")
  end
  local d = json.safe.decode(resp.body or "")
  local choice = type(d) == "table" and type(d.choices) == "table" and d.choices[1]
  local content = type(choice) == "table" and type(choice.message) == "table" and choice.message.content
  if type(content) ~= "string" or content:match("^%s*$") then
    return nil, "AI endpoint " .. host .. " answered without a summary (no choices[1].message.content)"
  end
  content = content:gsub("^%s+", ""):gsub("%s+$", "")
  if not utf8.len(content) then content = content:gsub("[\128-\255]", "?") end
  local chars = utf8.len(content)
  if chars and chars > M.MAX_SUMMARY_CHARS then
    content = content:sub(1, utf8.offset(content, M.MAX_SUMMARY_CHARS + 1) - 1) .. "…"
  end
  return content, (type(d.model) == "string" and d.model) or cfg.model
end

return M
