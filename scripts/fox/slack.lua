-- Slack Web API client: the few methods fox uses to post findings.
--
--   local slack = require("fox.slack")
--   local s = slack.new([opts])     -- opts: base_url, token (false: none), timeout,
--                                   -- max_retry_time, max_attempts, max_429
--   s:configured()                  -> true when a token is set
--   s:post_message{channel=, text=, blocks=?, thread_ts=?} -> {channel=, ts=, ...} | nil, err
--   s:update{channel=, ts=, text=, blocks=?}              -> body | nil, err
--   s:pin(channel, ts)              -> true | nil, err     (already pinned counts as done)
--   s:react(channel, ts, name)      -> true | nil, err     (already reacted counts as done)
--   s:auth_test()                   -> {team=, user=, ...} | nil, err
--   s:call(method, args)            -> body | nil, err     (any method, `ok` checked)
--
-- Base URL from SLACK_API_URL (default https://slack.com/api); token from
-- SLACK_BOT_TOKEN, else the file named by SLACK_BOT_TOKEN_FILE; registered for log
-- redaction. Errors follow fox.incidentio's convention: a table {kind=, message=,
-- error= (Slack's code), needed=?} whose tostring is a message a person can act on.
--
-- Retries: a 429 is waited out (Retry-After) and retried, since Slack did not process
-- the call. Server errors and timeouts are retried only for calls that are safe to
-- repeat; chat.postMessage is not (the message may have been posted before the answer
-- was lost), except when the connection was refused outright.
local http = require("fox.http")
local json = require("fox.json")
local log = require("fox.log")
local env = require("fox.env")
local task = require("fox.task")
local incidentio = require("fox.incidentio")

local M = {}

M.DEFAULT_BASE_URL = "https://slack.com/api"

local DEFAULTS = {
  timeout = 15,          -- seconds per HTTP request
  max_retry_time = 60,   -- seconds one call may spend waiting on 429s and retries
  max_attempts = 4,      -- attempts for server errors and timeouts (safe methods)
  max_429 = 5,
  backoff_base = 0.5,
}

-- Methods that change nothing when repeated (or whose repeat Slack rejects harmlessly).
local SAFE_TO_REPEAT = {
  ["auth.test"] = true, ["chat.update"] = true, ["pins.add"] = true, ["reactions.add"] = true,
  ["conversations.info"] = true,
}

local function err(kind, message, fields)
  return incidentio.error(kind, message, fields)
end

--- Resolves base URL and token: explicit opts win, then the environment.
function M.config(opts)
  opts = opts or {}
  local cfg = {}
  for k, v in pairs(DEFAULTS) do cfg[k] = v end
  for k, v in pairs(opts) do cfg[k] = v end
  cfg.base_url = (opts.base_url or env.get("SLACK_API_URL") or M.DEFAULT_BASE_URL):gsub("/+$", "")
  if opts.token == false then
    cfg.token = nil   -- explicitly none (tests, or Slack turned off)
  elseif opts.token then
    cfg.token, cfg.token_source = opts.token, "config"
  else
    local token, source, terr = env.secret("SLACK_BOT_TOKEN")
    cfg.token, cfg.token_source, cfg.token_error = token, token and source, terr
  end
  return cfg
end

local Client = {}
Client.__index = Client

function M.new(opts)
  local cfg = M.config(opts)
  if cfg.token then log.redact(cfg.token) end
  return setmetatable({ cfg = cfg, base_url = cfg.base_url }, Client)
end

function Client:configured()
  return self.cfg.token ~= nil
end

---------------------------------------------------------------------------
-- errors a person can act on
---------------------------------------------------------------------------
local AUTH_ERRORS = { invalid_auth = true, not_authed = true, token_revoked = true,
                      token_expired = true, account_inactive = true, no_permission = false }

local function token_hint(self)
  local src = self.cfg.token_source == "SLACK_BOT_TOKEN_FILE" and "the file named by SLACK_BOT_TOKEN_FILE"
    or self.cfg.token_source == "config" and "the configured Slack token"
    or "SLACK_BOT_TOKEN (or the file named by SLACK_BOT_TOKEN_FILE)"
  return src
end

function Client:slack_error(method, args, body)
  local code = tostring(body.error or "unknown_error")
  local channel = type(args) == "table" and args.channel or nil
  local where = channel and (" " .. tostring(channel)) or ""
  local fields = { error = code, method = method, channel = channel }
  if AUTH_ERRORS[code] then
    return err("auth", "Slack rejected the bot token (" .. code .. " on " .. method .. "): check that "
      .. token_hint(self) .. " holds the Bot User OAuth Token (xoxb-...) of an app installed in "
      .. "the workspace, and reinstall the app if the token was revoked.", fields)
  elseif code == "missing_scope" then
    local needed = type(body.needed) == "string" and body.needed or nil
    fields.needed = needed
    return err("forbidden", "the Slack bot token lacks the scope " .. (needed or "required by " .. method)
      .. " needed for " .. method .. (body.provided and (" (it has: " .. tostring(body.provided) .. ")") or "")
      .. ": add " .. (needed or "it") .. " under OAuth & Permissions > Bot Token Scopes in the Slack app "
      .. "settings, then reinstall the app and update " .. token_hint(self) .. ".", fields)
  elseif code == "not_in_channel" then
    return err("forbidden", "the Slack bot is not a member of channel" .. where .. " (not_in_channel on "
      .. method .. "): invite it to the channel (/invite @your-fox-bot), or give the app the "
      .. "chat:write.public scope to post without joining.", fields)
  elseif code == "channel_not_found" then
    return err("not_found", "Slack channel" .. where .. " not found (channel_not_found on " .. method
      .. "): check the channel ID; a private channel is only visible once the bot is invited.", fields)
  elseif code == "is_archived" then
    return err("invalid_request", "Slack channel" .. where .. " is archived (is_archived on " .. method
      .. "): fox cannot post there; unarchive it or use another channel.", fields)
  elseif code == "msg_too_long" then
    return err("invalid_request", "the Slack message is too long (msg_too_long on " .. method
      .. "): shorten the findings text.", fields)
  elseif code == "invalid_blocks" or code == "invalid_blocks_format" then
    local detail = type(body.response_metadata) == "table" and type(body.response_metadata.messages) == "table"
      and table.concat(body.response_metadata.messages, "; ") or nil
    return err("invalid_request", "Slack rejected the message blocks (" .. code .. " on " .. method
      .. (detail and (": " .. detail) or "") .. "); please report it, this is fox's mistake.", fields)
  elseif code == "ratelimited" then
    return err("rate_limited", "Slack rate limit exceeded on " .. method .. where
      .. ": fox waited and retried; try again later.", fields)
  elseif code == "message_not_found" then
    return err("not_found", "Slack message not found (message_not_found on " .. method .. where .. ").", fields)
  end
  return err("invalid_request", "Slack answered " .. method .. " with ok:false (" .. code .. ").", fields)
end

---------------------------------------------------------------------------
-- the request loop
---------------------------------------------------------------------------
local function retry_after(headers)
  local v = headers and tonumber(headers["retry-after"])
  if v and v >= 0 then return v end
  return nil
end

local function backoff(cfg, attempt)
  return math.min(8, cfg.backoff_base * 2 ^ (attempt - 1)) * (0.5 + math.random() * 0.5)
end

local function refused(reason)
  local r = tostring(reason):lower()
  return r:find("refused", 1, true) or r:find("resolve", 1, true) or r:find("couldn't connect", 1, true)
    or r:find("could not connect", 1, true)
end

--- Calls a Web API method with a JSON body. Returns the decoded body (ok == true) or
-- nil and an error.
function Client:call(method, args)
  local cfg = self.cfg
  if not cfg.token then
    return nil, err("config", "no Slack bot token: set SLACK_BOT_TOKEN (or SLACK_BOT_TOKEN_FILE) to the "
      .. "Bot User OAuth Token (xoxb-...) of the Slack app"
      .. (cfg.token_error and (" (" .. cfg.token_error .. ")") or "") .. ".")
  end
  local url = self.base_url .. "/" .. method
  local body = json.encode(args or {})
  local headers = {
    ["Authorization"] = "Bearer " .. cfg.token,
    ["Content-Type"] = "application/json; charset=utf-8",
    ["Accept"] = "application/json",
    ["User-Agent"] = "fox-incidentfox",
  }
  local deadline = task.now() + cfg.max_retry_time
  local attempts, n429 = 0, 0
  local safe = SAFE_TO_REPEAT[method]
  while true do
    attempts = attempts + 1
    local resp, nerr = http.request({ method = "POST", url = url, headers = headers, body = body,
                                      timeout = cfg.timeout })
    local wait, failure
    if not resp then
      local reason = type(nerr) == "table" and tostring(nerr.message or nerr.error) or tostring(nerr)
      failure = err("network", "unable to reach the Slack API at " .. self.base_url .. " (" .. reason
        .. ") calling " .. method .. ": outbound HTTPS to slack.com must be allowed (check the firewall, "
        .. "proxy and DNS, and SLACK_API_URL).", { reason = reason, method = method })
      if (safe or refused(reason)) and attempts < cfg.max_attempts then wait = backoff(cfg, attempts) end
    elseif resp.status == 429 then
      n429 = n429 + 1
      local ra = retry_after(resp.headers) or backoff(cfg, n429)
      log.warn("slack_rate_limited", { method = method, retry_after = ra })
      failure = err("rate_limited", "Slack rate limit exceeded on " .. method
        .. (args and args.channel and (" in " .. tostring(args.channel)) or "") .. " (429 " .. n429
        .. " time" .. (n429 == 1 and "" or "s") .. ", Retry-After " .. ra .. "s): try again later.",
        { status = 429, retry_after = ra, method = method })
      if n429 < cfg.max_429 then wait = ra end
    else
      local decoded = json.safe.decode(resp.body or "")
      if resp.status >= 200 and resp.status < 300 and type(decoded) == "table" then
        if decoded.ok == true then return decoded end
        return nil, self:slack_error(method, args, decoded)
      end
      if type(decoded) == "table" and decoded.ok == false and resp.status < 500 then
        return nil, self:slack_error(method, args, decoded)
      end
      local code = type(decoded) == "table" and decoded.error and (" (" .. tostring(decoded.error) .. ")") or ""
      failure = err(resp.status >= 500 and "server" or "bad_response", "the Slack API answered " .. method
        .. " with HTTP " .. resp.status .. code
        .. ": Slack may be having trouble (https://status.slack.com); fox will not repeat a post that "
        .. "may have gone through.", { status = resp.status, method = method })
      if safe and resp.status >= 500 and attempts < cfg.max_attempts then
        wait = retry_after(resp.headers) or backoff(cfg, attempts)
      end
    end
    if not wait or task.now() + wait > deadline then return nil, failure end
    task.sleep(wait)
  end
end

---------------------------------------------------------------------------
-- methods
---------------------------------------------------------------------------
function Client:post_message(msg)
  assert(type(msg) == "table" and type(msg.channel) == "string", "post_message needs a channel")
  local args = { channel = msg.channel, text = msg.text, blocks = msg.blocks, thread_ts = msg.thread_ts,
                 unfurl_links = msg.unfurl_links == true, unfurl_media = msg.unfurl_media == true }
  local body, e = self:call("chat.postMessage", args)
  if not body then return nil, e end
  return body
end

function Client:update(msg)
  assert(type(msg) == "table" and type(msg.channel) == "string" and type(msg.ts) == "string",
    "update needs a channel and a ts")
  return self:call("chat.update", { channel = msg.channel, ts = msg.ts, text = msg.text, blocks = msg.blocks })
end

function Client:pin(channel, ts)
  local body, e = self:call("pins.add", { channel = channel, timestamp = ts })
  if body then return true end
  if e.error == "already_pinned" then return true, "already_pinned" end
  return nil, e
end

function Client:react(channel, ts, name)
  local body, e = self:call("reactions.add", { channel = channel, timestamp = ts, name = name })
  if body then return true end
  if e.error == "already_reacted" then return true, "already_reacted" end
  return nil, e
end

function Client:auth_test()
  return self:call("auth.test", {})
end

return M
