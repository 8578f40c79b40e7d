-- The Model Context Protocol server: fox's tools for AI assistants.
--
-- JSON-RPC 2.0, one message per line on stdio (`fox mcp`, M.serve_stdio), or one POST
-- per message on `fox serve` (M.handle_http, the Streamable HTTP transport in JSON
-- response mode). Both share one dispatcher (Session) that knows:
--   initialize (version negotiation), notifications/initialized, ping, tools/list,
--   tools/call, notifications/cancelled.
-- Every tools/call runs in its own task, so several are in flight at once; a
-- notifications/cancelled for one cancels its task and no response is sent for it.
-- A tool that fails (input that fails its schema, an API error) answers with a result
-- whose isError is true and whose text is the actionable message, so the model can
-- correct itself; JSON-RPC errors are for protocol mistakes only.
-- Tool arguments are untrusted input: size-capped (M.MAX_MESSAGE), validated against
-- the tool's schema, never evaluated.
local json = require("fox.json")
local task = require("fox.task")
local log = require("fox.log")
local sys = require("fox.sys")
local crypto = require("fox.crypto")
local tools = require("fox.tools")
local incidentio = require("fox.incidentio")

local M = {}

-- Newest first; the first is what a client asking for an unknown version gets.
M.PROTOCOL_VERSIONS = { "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05" }
M.MAX_MESSAGE = 4 * 1024 * 1024    -- bytes in one message (a line, or an HTTP body)
M.CALL_TIMEOUT = 300               -- seconds one tools/call may take
M.HTTP_CALL_TIMEOUT = 120          -- over HTTP: inside the listener's 300 s handler deadline
M.MAX_IN_FLIGHT = 64               -- tools/call running at once per session
M.HTTP_SESSION_TTL = 24 * 3600     -- an idle HTTP session is forgotten after this
M.SERVER_NAME = "fox"
M.SERVER_TITLE = "IncidentFox"
M.INSTRUCTIONS = "Tools over the team's incident.io account (read-only): look up one "
  .. "incident, list recent ones, find similar past incidents and how they were resolved, "
  .. "and run the investigation playbook in dry run. Incident ids may be written INC-123, "
  .. "123 or as the full ID."

-- JSON-RPC error codes.
M.PARSE_ERROR = -32700
M.INVALID_REQUEST = -32600
M.METHOD_NOT_FOUND = -32601
M.INVALID_PARAMS = -32602
M.INTERNAL_ERROR = -32603
M.REQUEST_CANCELLED = -32800 -- HTTP only: a POST must be answered even when cancelled

local SUPPORTED = {}
for _, v in ipairs(M.PROTOCOL_VERSIONS) do SUPPORTED[v] = true end

---------------------------------------------------------------------------
-- helpers
---------------------------------------------------------------------------
local function is_array(t)
  if t == json.empty_array or getmetatable(t) == json.array_mt then return true end
  if type(t) ~= "table" or next(t) == nil then return false end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

-- A JSON object (an empty table counts: JSON {} and [] decode alike).
local function is_object(t)
  return type(t) == "table" and t ~= json.null and not is_array(t)
end

local function valid_id(id)
  return type(id) == "string" or type(id) == "number"
end

-- A key for an id that keeps 1 and "1" apart.
local function id_key(id)
  return type(id) .. ":" .. tostring(id)
end

local function error_response(id, code, message, data)
  local err = { code = code, message = message }
  if data ~= nil then err.data = data end
  return { jsonrpc = "2.0", id = id == nil and json.null or id, error = err }
end

local function result_response(id, result)
  return { jsonrpc = "2.0", id = id, result = result }
end

local function show(v)
  if type(v) == "string" then
    return string.format("%q", #v > 60 and (v:sub(1, 57) .. "...") or v)
  end
  if v == json.null then return "null" end
  if type(v) == "table" then return is_array(v) and "an array" or "an object" end
  return tostring(v)
end

-- fox's version, as built into the binary.
local function fox_version()
  return require("fox.sys").version
end

---------------------------------------------------------------------------
-- the tools: the registry's, plus investigate_incident (the playbook in dry run)
---------------------------------------------------------------------------
-- The configured playbook and the config it runs with, loaded the way `fox investigate`
-- loads them (FOX_CONFIG or ./fox.conf.lua; the config's playbook), once per
-- generation. ctx.config (the daemon's loaded config) is used when given.
local playbook_cache
local function load_playbook(ctx)
  local cli = require("fox.playbook_cli")
  if type(ctx.config) == "table" then
    local run, perr = cli.load_playbook(nil, ctx.config)
    if not run then return nil, perr end
    return run, ctx.config
  end
  if not playbook_cache then
    local cfg, cerr = cli.load_config({})
    if not cfg then return nil, "cannot load the configuration: " .. tostring(cerr) end
    local run, perr = cli.load_playbook(nil, cfg)
    if not run then return nil, perr end
    playbook_cache = { run = run, cfg = cfg }
  end
  return playbook_cache.run, playbook_cache.cfg
end

M.investigate_tool = {
  name = "investigate_incident",
  title = "Investigate an incident (dry run)",
  description = "Run the team's investigation playbook on one incident in dry run (nothing is "
    .. "posted to Slack or the incident timeline) and return its findings: summary, priority, "
    .. "affected services, suspected changes ranked with confidence and reason, evidence from "
    .. "metrics and logs, similar past incidents and how they were resolved, next steps, and "
    .. "the evidence sources that failed. Takes seconds: it queries every source at once.",
  input_schema = {
    type = "object",
    properties = {
      incident_id = {
        type = "string", minLength = 1, maxLength = 128,
        description = "The incident to investigate: INC-123, 123 or its full ID.",
      },
    },
    required = { "incident_id" },
    additionalProperties = false,
  },
  read_only = true,
  check = function(args)
    local seg, msg = incidentio.parse_reference(args.incident_id)
    if not seg then return "incident_id: " .. msg end
    return nil
  end,
  handler = function(args, ctx)
    local run, cfg = load_playbook(ctx)
    if not run then return nil, incidentio.error("config", "the investigation playbook cannot run: " .. cfg) end
    local pctx = require("fox.playbook_cli").context(cfg, { dry_run = true })
    if ctx.client then pctx.client = ctx.client end
    local findings, err = run(args.incident_id, pctx)
    if type(findings) ~= "table" then
      if type(err) == "string" then err = incidentio.error("internal", err) end
      return nil, err or incidentio.error("internal", "the playbook returned no findings")
    end
    -- The findings as `fox investigate --dry-run --format json` prints them.
    return require("fox.render.json").prepare(findings)
  end,
}

-- The tools MCP offers, in order: the registry's, then investigate_incident.
function M.tool_list()
  local list = {}
  for _, t in ipairs(tools.list()) do list[#list + 1] = t end
  if not tools.get(M.investigate_tool.name) then list[#list + 1] = M.investigate_tool end
  return list
end

function M.find_tool(name)
  if name == M.investigate_tool.name and not tools.get(name) then return M.investigate_tool end
  return tools.get(name)
end

-- A tool as tools/list shows it.
function M.describe_tool(tool)
  local annotations = tool.annotations and {} or nil
  if annotations then
    for k, v in pairs(tool.annotations) do annotations[k] = v end
  else
    annotations = {}
  end
  if tool.read_only ~= false and annotations.readOnlyHint == nil then
    -- fox reads incident.io with a read-only client; every built-in tool only reads.
    annotations.readOnlyHint = true
  end
  if annotations.openWorldHint == nil then annotations.openWorldHint = true end
  if annotations.title == nil and tool.title then annotations.title = tool.title end
  return {
    name = tool.name,
    title = tool.title,
    description = tool.description,
    inputSchema = tool.input_schema,
    annotations = annotations,
  }
end

-- Runs a tool like fox.tools.call does (validation, the tool's own checks, the handler).
-- Returns the result, or nil and an error table {kind=, message=}.
function M.call_tool(tool, input, ctx)
  if tool ~= M.investigate_tool then return tools.call(tool.name, input, ctx) end
  local args, verr = tools.validate(tool.input_schema, input)
  if not args then return nil, incidentio.error("invalid_input", verr) end
  local msg = tool.check(args)
  if msg then return nil, incidentio.error("invalid_input", msg) end
  local ok, res, err = pcall(tool.handler, args, ctx or {})
  if not ok then return nil, incidentio.error("internal", "tool " .. tool.name .. " failed: " .. tostring(res)) end
  if res == nil then return nil, err end
  return res
end

local function tool_error_result(message)
  return { content = { { type = "text", text = message } }, isError = true }
end

-- The tools/call result for a tool's outcome.
local function call_result(tool, result, err)
  if result == nil then
    local msg = type(err) == "table" and err.message or tostring(err or "the tool failed")
    if type(err) == "table" and err.kind == "invalid_input" then
      msg = "Invalid arguments for " .. tool.name .. ": " .. msg
    end
    return tool_error_result(msg)
  end
  local text, eerr = json.safe.encode(result)
  if not text then
    return tool_error_result("tool " .. tool.name .. " returned data that cannot be written as JSON: "
      .. tostring(eerr))
  end
  local structured = result
  if not is_object(result) then structured = { result = result } end
  return { content = { { type = "text", text = text } }, structuredContent = structured, isError = false }
end

---------------------------------------------------------------------------
-- Session: one client's protocol state
---------------------------------------------------------------------------
local Session = {}
Session.__index = Session

-- opts: ctx (passed to tool handlers, e.g. {client = incidentio.new{...}}),
-- call_timeout, max_in_flight, transport ("stdio" | "http", for logs).
function M.session(opts)
  opts = opts or {}
  return setmetatable({
    initialized = false,
    version = nil,
    client_info = nil,
    ctx = opts.ctx or {},
    call_timeout = opts.call_timeout or M.CALL_TIMEOUT,
    max_in_flight = opts.max_in_flight or M.MAX_IN_FLIGHT,
    transport = opts.transport or "stdio",
    in_flight = {}, -- id_key -> {id=, worker=, supervisor=, cancelled=}
    in_flight_count = 0,
  }, Session)
end

-- The client's version when fox speaks it, else the newest fox speaks (the client then
-- decides whether it can go on).
function M.negotiate(requested)
  if SUPPORTED[requested] then return requested end
  return M.PROTOCOL_VERSIONS[1]
end

function Session:initialize(id, params)
  if self.initialized then
    return error_response(id, M.INVALID_REQUEST, "Invalid Request: already initialized")
  end
  if type(params.protocolVersion) ~= "string" then
    return error_response(id, M.INVALID_PARAMS,
      "Invalid params: initialize needs protocolVersion (a string such as \"" .. M.PROTOCOL_VERSIONS[1]
      .. "\"), got " .. show(params.protocolVersion))
  end
  if params.capabilities ~= nil and not is_object(params.capabilities) then
    return error_response(id, M.INVALID_PARAMS, "Invalid params: capabilities must be an object")
  end
  if params.clientInfo ~= nil and not is_object(params.clientInfo) then
    return error_response(id, M.INVALID_PARAMS, "Invalid params: clientInfo must be an object")
  end
  self.version = M.negotiate(params.protocolVersion)
  self.initialized = true
  local client = params.clientInfo or {}
  self.client_info = { name = type(client.name) == "string" and client.name:sub(1, 100) or nil,
                       version = type(client.version) == "string" and client.version:sub(1, 50) or nil }
  log.info("mcp_initialize", { transport = self.transport, client = self.client_info.name,
    client_version = self.client_info.version, requested = params.protocolVersion:sub(1, 40),
    protocol = self.version })
  return result_response(id, {
    protocolVersion = self.version,
    capabilities = { tools = { listChanged = false } },
    serverInfo = { name = M.SERVER_NAME, title = M.SERVER_TITLE, version = fox_version() },
    instructions = M.INSTRUCTIONS,
  })
end

local function list_tools(id, params)
  if params.cursor ~= nil and params.cursor ~= json.null then
    if type(params.cursor) ~= "string" then
      return error_response(id, M.INVALID_PARAMS, "Invalid params: cursor must be a string")
    end
    -- Every tool fits in one page, so no cursor was ever handed out.
    return error_response(id, M.INVALID_PARAMS, "Invalid params: unknown cursor " .. show(params.cursor))
  end
  local list = json.array({})
  for _, tool in ipairs(M.tool_list()) do list[#list + 1] = M.describe_tool(tool) end
  return result_response(id, { tools = list })
end

-- Starts a tools/call in its own task. reply(response) is called once, from the
-- supervisor task, unless the call is cancelled. Returns the error response when the
-- call cannot start, else nil and the supervisor's handle.
function Session:call_tool(id, params, reply)
  local name = params.name
  if type(name) ~= "string" then
    return error_response(id, M.INVALID_PARAMS, "Invalid params: tools/call needs name (a string), got "
      .. show(name))
  end
  local args = params.arguments
  if args == json.null then args = nil end
  if args ~= nil and not is_object(args) then
    return error_response(id, M.INVALID_PARAMS, "Invalid params: arguments must be an object, got "
      .. show(args))
  end
  local tool = M.find_tool(name)
  if not tool then
    local names = {}
    for _, t in ipairs(M.tool_list()) do names[#names + 1] = t.name end
    return error_response(id, M.INVALID_PARAMS, "Unknown tool: " .. show(name) .. " (tools: "
      .. table.concat(names, ", ") .. ")")
  end
  local key = id_key(id)
  if self.in_flight[key] then
    return error_response(id, M.INVALID_REQUEST, "Invalid Request: request id " .. show(id)
      .. " is already in use by a call in flight")
  end
  if self.in_flight_count >= self.max_in_flight then
    reply(result_response(id, tool_error_result("fox is already running " .. self.max_in_flight
      .. " tool calls for this client; retry when some have finished")))
    return nil
  end
  local entry = { id = id, tool = name }
  self.in_flight[key] = entry
  self.in_flight_count = self.in_flight_count + 1
  local ctx = self.ctx
  local started = task.now()
  entry.worker = task.spawn({ name = "mcp " .. name, timeout = self.call_timeout }, function()
    return call_result(tool, M.call_tool(tool, args or {}, ctx))
  end)
  entry.supervisor = task.spawn({ name = "mcp call " .. tostring(id):sub(1, 40) }, function()
    local ok, result = task.wait(entry.worker)
    self.in_flight[key] = nil
    self.in_flight_count = self.in_flight_count - 1
    local fields = { transport = self.transport, tool = name,
                     ms = math.floor((task.now() - started) * 1000 + 0.5) }
    if entry.cancelled then
      fields.outcome = "cancelled"
      fields.reason = entry.reason
      log.info("mcp_call", fields)
      reply(nil)
      return
    end
    if not ok then
      local msg = tostring(result)
      if msg:match("exceeded its deadline") then
        msg = "tool " .. name .. " did not finish within " .. self.call_timeout .. " s"
      else
        msg = "tool " .. name .. " failed: " .. msg:match("^[^\n]*")
      end
      result = tool_error_result(msg)
    end
    fields.outcome = result.isError and "error" or "ok"
    if result.isError then fields.error = result.content[1].text end
    log.info("mcp_call", fields)
    reply(result_response(id, result))
  end)
  return nil, entry.supervisor
end

-- notifications/cancelled: stops the matching call; no response is sent for it.
function Session:cancel(params)
  if not valid_id(params.requestId) then return end
  local entry = self.in_flight[id_key(params.requestId)]
  if not entry or entry.cancelled then return end
  entry.cancelled = true
  entry.reason = type(params.reason) == "string" and params.reason:sub(1, 200) or nil
  task.cancel(entry.worker, "cancelled by the client" .. (entry.reason and (": " .. entry.reason) or ""))
end

-- Cancels every call in flight (the client went away).
function Session:cancel_all(reason)
  for _, entry in pairs(self.in_flight) do
    if not entry.cancelled then
      entry.cancelled, entry.reason = true, reason
      task.cancel(entry.worker, reason)
    end
  end
end

-- Waits until no call is in flight (each call ends by its deadline at the latest).
function Session:drain()
  while true do
    local key, entry = next(self.in_flight)
    if not entry then return end
    task.wait(entry.supervisor)
    if self.in_flight[key] == entry then -- the supervisor itself died
      self.in_flight[key] = nil
      self.in_flight_count = self.in_flight_count - 1
    end
  end
end

-- Handles one decoded message (not a batch). reply(response or nil) is called exactly
-- once: nil for notifications, responses and cancelled calls. Returns the handle of
-- the task that will reply, when that happens later.
function Session:dispatch(msg, reply)
  if not is_object(msg) then
    reply(error_response(nil, M.INVALID_REQUEST, "Invalid Request: a message must be a JSON object, got "
      .. show(msg)))
    return nil
  end
  local id, method = msg.id, msg.method
  local has_id = id ~= nil
  if has_id and not valid_id(id) then
    reply(error_response(nil, M.INVALID_REQUEST, "Invalid Request: id must be a string or a number, got "
      .. show(id)))
    return nil
  end
  if msg.jsonrpc ~= "2.0" then
    reply(error_response(id, M.INVALID_REQUEST, "Invalid Request: jsonrpc must be \"2.0\", got "
      .. show(msg.jsonrpc)))
    return nil
  end
  if method == nil and (msg.result ~= nil or msg.error ~= nil) then
    reply(nil) -- a response to a request fox never sends: nothing to do
    return nil
  end
  if type(method) ~= "string" then
    reply(has_id and error_response(id, M.INVALID_REQUEST, "Invalid Request: method must be a string, got "
      .. show(method)) or nil)
    return nil
  end
  local params = msg.params
  if params == nil or params == json.null then
    params = {}
  elseif type(params) ~= "table" then
    reply(has_id and error_response(id, M.INVALID_REQUEST, "Invalid Request: params must be an object, got "
      .. show(params)) or nil)
    return nil
  end

  if not has_id then
    -- A notification: never answered, even when wrong.
    if method == "notifications/cancelled" and is_object(params) then
      self:cancel(params)
    elseif method == "notifications/initialized" then
      self.client_ready = true
    end
    reply(nil)
    return nil
  end

  if is_array(params) then
    reply(error_response(id, M.INVALID_PARAMS, "Invalid params: " .. method .. " takes an object, got an array"))
    return nil
  end
  if method == "ping" then
    reply(result_response(id, {}))
    return nil
  end
  if method == "initialize" then
    reply(self:initialize(id, params))
    return nil
  end
  if not self.initialized then
    reply(error_response(id, M.INVALID_REQUEST, "Invalid Request: the session is not initialized; send "
      .. "initialize first (method " .. show(method) .. ")"))
    return nil
  end
  if method == "tools/list" then
    reply(list_tools(id, params))
    return nil
  end
  if method == "tools/call" then
    local err, handle = self:call_tool(id, params, reply)
    if err then reply(err) end
    return handle
  end
  reply(error_response(id, M.METHOD_NOT_FOUND, "Method not found: " .. show(method)))
  return nil
end

-- Handles one decoded message or a batch (an array, as JSON-RPC 2.0 and MCP 2025-03-26
-- allow). reply(response) is called at most once with the response or the array of
-- responses; never when there is nothing to answer. Returns the handles of the tasks
-- that will still reply.
function Session:handle(msg, reply)
  if type(msg) == "table" and is_array(msg) then
    local n, pending, out, handles = #msg, #msg, json.array({}), {}
    local function one_done(resp)
      if resp then out[#out + 1] = resp end
      pending = pending - 1
      if pending == 0 and #out > 0 then reply(out) end
    end
    for i = 1, n do
      local h = self:dispatch(msg[i], one_done)
      if h then handles[#handles + 1] = h end
    end
    return handles
  end
  local h = self:dispatch(msg, function(resp) if resp then reply(resp) end end)
  return { h }
end

-- Decodes one line and handles it. Blank lines are skipped. Returns handles as handle.
function Session:handle_text(text, reply)
  if text:match("^%s*$") then return {} end
  local msg, err = json.safe.decode(text)
  if msg == nil then
    reply(error_response(nil, M.PARSE_ERROR, "Parse error: " .. tostring(err)))
    return {}
  end
  if msg == json.empty_array or (type(msg) == "table" and next(msg) == nil) then
    -- [] and {} decode alike: both are invalid requests.
    reply(error_response(nil, M.INVALID_REQUEST, "Invalid Request: an empty message"))
    return {}
  end
  return self:handle(msg, reply)
end

---------------------------------------------------------------------------
-- stdio transport
---------------------------------------------------------------------------

-- Serves one client on stdin/stdout until stdin ends. stdout carries only protocol
-- messages; logs go to stderr. Returns the exit status.
function M.serve_stdio(opts)
  opts = opts or {}
  local stdio = opts.stdio or require("fox.stdio")
  local session = M.session({ ctx = opts.ctx, transport = "stdio", call_timeout = opts.call_timeout })
  local broken
  local function send(resp)
    if broken then return end
    local text, err = json.safe.encode(resp)
    if not text then
      log.error("mcp_encode_failed", { error = err })
      text = json.encode(error_response(resp.id, M.INTERNAL_ERROR, "Internal error: the response cannot "
        .. "be written as JSON: " .. tostring(err)))
    end
    local ok, werr = stdio.write(text .. "\n")
    if not ok then
      broken = werr
      log.warn("mcp_output_closed", { error = werr })
      session:cancel_all("the client stopped reading")
    end
  end
  log.info("mcp_start", { transport = "stdio", pid = sys.pid() })
  local status = 0
  while not broken do
    local line, err = stdio.read_line(M.MAX_MESSAGE)
    if line then
      session:handle_text(line, send)
    elseif err == "line too long" then
      send(error_response(nil, M.PARSE_ERROR, "Parse error: message over " .. M.MAX_MESSAGE
        .. " bytes (discarded)"))
    elseif err == "eof" then
      break
    else
      log.error("mcp_input_failed", { error = err })
      status = 1
      break
    end
  end
  -- Input ended: answer the calls still running, then go.
  if not broken then session:drain() end
  if not broken then stdio.flush() end
  log.info("mcp_stop", { transport = "stdio", reason = broken and "output closed" or "input closed" })
  return status
end

---------------------------------------------------------------------------
-- Streamable HTTP transport (POST /mcp on `fox serve`)
---------------------------------------------------------------------------
local http_sessions = {} -- session id -> Session (this generation's view)

-- The bearer token that turns the endpoint on: FOX_MCP_TOKEN or the file named by
-- FOX_MCP_TOKEN_FILE, read once per generation (SIGHUP reads it again). nil when unset
-- (the endpoint is off).
local token_cache
function M.http_token()
  if token_cache == nil then
    local token, err = sys.secret("FOX_MCP_TOKEN")
    if err then log.error("mcp_http_token_unreadable", { error = err }) end
    token_cache = (token ~= nil and token ~= "") and token or false
  end
  return token_cache or nil
end

-- True when POST /mcp should be mounted.
function M.http_enabled()
  return M.http_token() ~= nil
end

-- Origins browsers may call from (FOX_MCP_ALLOWED_ORIGINS, comma-separated). Any other
-- Origin is refused (DNS rebinding); requests without Origin (non-browser clients) pass.
local function origin_allowed(origin)
  local list = sys.getenv("FOX_MCP_ALLOWED_ORIGINS") or ""
  for item in list:gmatch("[^,%s]+") do
    if item == "*" or item:lower() == origin:lower() then return true end
  end
  return false
end

local function http_reply(status, body, extra)
  local headers = { ["cache-control"] = "no-store" }
  if body ~= nil then
    headers["content-type"] = "application/json"
    if type(body) ~= "string" then body = json.encode(body) end
  end
  for k, v in pairs(extra or {}) do headers[k] = v end
  return { status = status, headers = headers, body = body or "" }
end

local function http_error(status, code, message, extra)
  return http_reply(status, error_response(nil, code, message), extra)
end

local function shared_dict()
  local ok, shared = pcall(require, "fox.shared")
  return ok and shared or nil
end

-- The session named by the Mcp-Session-Id header: from this generation's table, or
-- rebuilt from the shared dictionary after a hot reload.
local function find_http_session(sid)
  if type(sid) ~= "string" or not sid:match("^[%x]+$") or #sid > 64 then return nil end
  local s = http_sessions[sid]
  local shared = shared_dict()
  local version = shared and shared.get("mcp:session:" .. sid)
  if not version then
    http_sessions[sid] = nil
    return nil
  end
  if not s then
    s = M.session({ transport = "http", call_timeout = M.HTTP_CALL_TIMEOUT })
    s.initialized, s.version = true, version
    http_sessions[sid] = s
  end
  shared.set("mcp:session:" .. sid, version, M.HTTP_SESSION_TTL)
  return s
end

local function forget_stale_sessions()
  local shared = shared_dict()
  for sid, s in pairs(http_sessions) do
    if next(s.in_flight) == nil and not (shared and shared.get("mcp:session:" .. sid)) then
      http_sessions[sid] = nil
    end
  end
end

local function header(req, name)
  local v = req.headers and req.headers[name]
  if type(v) == "table" then v = v[1] end
  return v
end

local function accepts_json(accept)
  if accept == nil or accept == "" then return true end
  accept = accept:lower()
  return accept:find("application/json", 1, true) or accept:find("*/*", 1, true)
    or accept:find("application/*", 1, true)
end

-- Handles one request to /mcp: req = {method=, headers= (lower-cased names), body=}.
-- opts.ctx is what tool handlers get (the daemon passes {config = its loaded config}).
-- Returns {status=, headers=, body=}. POST carries one JSON-RPC message (or a batch)
-- and is answered with JSON; GET (no server-initiated stream) gets 405; DELETE ends the
-- session. Every request needs `Authorization: Bearer $FOX_MCP_TOKEN`.
function M.handle_http(req, opts)
  opts = opts or {}
  local token = M.http_token()
  if not token then
    return http_error(404, M.INVALID_REQUEST, "the MCP endpoint is off: set FOX_MCP_TOKEN to turn it on")
  end
  local origin = header(req, "origin")
  if origin and not origin_allowed(origin) then
    log.warn("mcp_http_origin_refused", { origin = origin:sub(1, 200) })
    return http_error(403, M.INVALID_REQUEST, "Origin not allowed (FOX_MCP_ALLOWED_ORIGINS lists the "
      .. "origins browsers may call from)")
  end
  local auth = header(req, "authorization") or ""
  local given = auth:match("^[Bb][Ee][Aa][Rr][Ee][Rr]%s+(%S+)%s*$")
  -- Compare digests so neither the length nor the content of the token leaks by timing.
  if not given or not crypto.equal(crypto.sha256(given), crypto.sha256(token)) then
    return http_error(401, M.INVALID_REQUEST, "Unauthorized: send Authorization: Bearer <FOX_MCP_TOKEN>",
      { ["www-authenticate"] = 'Bearer realm="fox"' })
  end
  local method = (req.method or ""):upper()
  local sid = header(req, "mcp-session-id")
  if method == "DELETE" then
    local s = sid and find_http_session(sid)
    if not s then return http_error(404, M.INVALID_REQUEST, "Session not found") end
    s:cancel_all("session ended by the client")
    http_sessions[sid] = nil
    local shared = shared_dict()
    if shared then shared.delete("mcp:session:" .. sid) end
    return http_reply(204)
  end
  if method ~= "POST" then
    return http_error(405, M.INVALID_REQUEST, "Method not allowed: POST JSON-RPC messages to this endpoint "
      .. "(no server-sent event stream is offered)", { allow = "POST, DELETE" })
  end
  local ctype = (header(req, "content-type") or ""):lower()
  if not ctype:match("^application/json") then
    return http_error(415, M.INVALID_REQUEST, "Unsupported Media Type: send Content-Type: application/json")
  end
  if not accepts_json(header(req, "accept")) then
    return http_error(406, M.INVALID_REQUEST, "Not Acceptable: this endpoint answers with application/json")
  end
  local body = req.body or ""
  if #body > M.MAX_MESSAGE then
    return http_error(413, M.INVALID_REQUEST, "Payload Too Large: a message may have at most "
      .. M.MAX_MESSAGE .. " bytes")
  end
  local pversion = header(req, "mcp-protocol-version")
  if pversion and not SUPPORTED[pversion] then
    return http_error(400, M.INVALID_REQUEST, "Bad Request: unsupported MCP-Protocol-Version " .. show(pversion)
      .. " (supported: " .. table.concat(M.PROTOCOL_VERSIONS, ", ") .. ")")
  end
  local msg, derr = json.safe.decode(body)
  if msg == nil then
    return http_error(400, M.PARSE_ERROR, "Parse error: " .. tostring(derr))
  end

  forget_stale_sessions()
  local session, new_sid
  local is_initialize = is_object(msg) and msg.method == "initialize"
  if is_initialize then
    session = M.session({ transport = "http", ctx = opts.ctx, call_timeout = M.HTTP_CALL_TIMEOUT })
  else
    if not sid then
      return http_error(400, M.INVALID_REQUEST, "Bad Request: Mcp-Session-Id header required (send "
        .. "initialize first)")
    end
    session = find_http_session(sid)
    if not session then
      return http_error(404, M.INVALID_REQUEST, "Session not found: initialize a new session")
    end
    session.ctx = opts.ctx or session.ctx
  end

  local responses = {}
  local handles = session:handle(msg, function(resp) responses[#responses + 1] = resp end)
  for _, h in ipairs(handles) do task.wait(h) end

  if is_initialize and session.initialized then
    new_sid = crypto.hex(crypto.random_bytes(16))
    local shared = shared_dict()
    if shared then shared.set("mcp:session:" .. new_sid, session.version, M.HTTP_SESSION_TTL) end
    http_sessions[new_sid] = session
  end
  local extra = new_sid and { ["mcp-session-id"] = new_sid } or nil
  local out = responses[1]
  if out == nil then
    local expects_answer = is_object(msg) and msg.id ~= nil and msg.method ~= nil
    if expects_answer then
      -- A request whose call was cancelled: HTTP still needs an answer.
      return http_reply(200, error_response(msg.id, M.REQUEST_CANCELLED, "Request cancelled"), extra)
    end
    return http_reply(202, nil, extra)
  end
  local text, eerr = json.safe.encode(out)
  if not text then
    return http_error(500, M.INTERNAL_ERROR, "Internal error: the response cannot be written as JSON: "
      .. tostring(eerr))
  end
  return http_reply(200, text, extra)
end

return M
