-- fox's configuration: `fox.conf.lua`, a Lua table evaluated in a sandbox.
--
-- Where it comes from: `--config FILE`, else $FOX_CONFIG, else ./fox.conf.lua when it
-- exists, else nothing (every key takes its default). The file returns a table; its
-- only helper is env("NAME" [, default]): the environment variable NAME, else the
-- contents of the file named by NAME_FILE (trailing newlines stripped), else default.
-- Secrets are read that way and never written in the file.
--
--   config.resolve_path(explicit) -> path | nil
--   config.load(path [, opts])    -> cfg | nil, errors (array of "file:line: message")
--   config.check([path])          -> number of errors (printed on stderr); `fox check`
--   config.schema                 -> the schema (docs/configuration.md documents it)
--   config.register(key, spec)    -> adds a top-level key (for playbooks and sources)
--
-- Loading does no network I/O and no writes: it reads the file (and NAME_FILE files).
local sys = require("fox.sys")
local log = require("fox.log")

local M = {}

local unpack = table.unpack

-- Arrays of strings used by the default skip policy.
local function strings(default, doc)
  return { type = "array", of = "string", default = default, doc = doc }
end

-- The schema: every key fox knows, its type, default and bounds. `secret` values are
-- registered with the log redactor as soon as they are read. A `default` function is
-- called at load time (environment look-ups).
M.schema = {
  listen = { type = "string", default = "127.0.0.1:8080",
    doc = "HOST:PORT the HTTP listener binds (webhooks, /healthz, /metrics); --listen overrides" },
  state_dir = { type = "string", default = "./var",
    doc = "directory of the durable state (SQLite); --state-dir and FOX_STATE_DIR override" },
  playbook = { type = "string", default = "playbooks.investigate",
    doc = "the investigation playbook: a module name, or a path to a .lua file" },
  playbook_options = { type = "table", default = {}, doc = "free-form table handed to the playbook as ctx.options" },
  skip_policy = { type = "string", default = "policies.skip",
    doc = "module (or .lua file) deciding which incidents are not investigated" },
  skip = { type = "section", doc = "options of the default skip policy", fields = {
    modes = strings({ "test", "tutorial" }, "incident modes never investigated"),
    status_categories = strings({ "declined", "merged", "canceled" },
      "status categories never investigated (checked on the re-fetched incident)"),
    name_patterns = strings({}, "Lua patterns; an incident whose name matches one is skipped (case-insensitive)"),
  } },
  webhook_secret = { type = "string", secret = true,
    default = function()
      local v, err = sys.secret("INCIDENT_IO_WEBHOOK_SECRET")
      if err then error("INCIDENT_IO_WEBHOOK_SECRET: " .. tostring(err), 0) end
      return v
    end,
    check = function(v)
      local key = v:match("^whsec_([A-Za-z0-9+/=]+)$")
      if key and #key >= 8 then return true end
      return false, "must be the endpoint's signing secret as incident.io shows it: whsec_ followed by base64"
    end,
    doc = "Standard Webhooks signing secret (whsec_...); default $INCIDENT_IO_WEBHOOK_SECRET[_FILE]" },
  webhook_tolerance = { type = "number", default = 300, min = 1, max = 86400,
    doc = "seconds a webhook timestamp may be away from now" },
  max_body = { type = "integer", default = 1048576, min = 1024, max = 64 * 1048576,
    doc = "largest webhook body accepted, in bytes (larger: 413)" },
  request_timeout = { type = "number", default = 60, min = 0.1, max = 3600,
    doc = "seconds a client gets to send one whole request (a slower one is cut off); restart to change" },
  max_connections = { type = "integer", min = 1, max = 1000000,
    doc = "open connections to the listener; one more is closed at once. Default 4096, at most the "
      .. "open-files limit - 128; restart to change" },
  poll = { type = "boolean",
    doc = "poll incident.io for new incidents; default: on when no webhook secret is set" },
  poll_interval = { type = "number", default = 30, min = 0.05, max = 86400, doc = "seconds between polls" },
  poll_overlap = { type = "number", default = 120, min = 0, max = 86400,
    doc = "seconds each poll re-reads before the cursor (late or clock-skewed incidents)" },
  max_catch_up = { type = "number", default = 86400, min = 0, max = 90 * 86400,
    doc = "after downtime, catch up on incidents created at most this many seconds ago" },
  concurrency = { type = "integer", default = 8, min = 1, max = 1024,
    doc = "investigations running at once" },
  investigation_timeout = { type = "number", default = 120, min = 0.01, max = 86400,
    doc = "deadline of one investigation, in seconds" },
  max_attempts = { type = "integer", default = 3, min = 1, max = 100,
    doc = "runs of one incident (after failures or crashes) before it is given up" },
  retry_delay = { type = "number", default = 30, min = 0, max = 86400,
    doc = "seconds before an investigation that could not fetch its incident is retried" },
  drain_timeout = { type = "number", default = 30, min = 0, max = 3600,
    doc = "on SIGTERM/SIGINT, seconds to let running investigations finish" },
  record_ttl = { type = "number", default = 30 * 86400, min = 3600,
    doc = "seconds fox remembers an incident it handled (so it is never investigated twice)" },
  incidentio = { type = "section", doc = "the incident.io API", fields = {
    api_key = { type = "string", secret = true,
      doc = "read-only API key; default $INCIDENT_IO_API_KEY, else the file named by $INCIDENT_IO_API_KEY_FILE" },
    base_url = { type = "string", doc = "default $INCIDENT_IO_BASE_URL or https://api.incident.io" },
    timeout = { type = "number", min = 0.1, max = 600, doc = "seconds per HTTP request" },
  } },
  log_level = { type = "string", one_of = { "debug", "info", "warn", "error" }, doc = "default info" },
  log_format = { type = "string", one_of = { "logfmt", "json" }, doc = "default logfmt" },

  -- Settings of the default playbook (scripts/playbooks/investigate.lua), accepted at
  -- the top level as well as in playbook_options; no defaults here: the playbook's own
  -- apply (docs/playbooks.md).
  custom_context = { type = "string", group = "playbook", doc = "the team's notes: critical services, paging rules" },
  known_services = { type = "table", group = "playbook", doc = "service name -> {aliases = {...}}" },
  parse_rules = { type = "any", group = "playbook", doc = "extra description rules: a table, or a module/file" },
  sources = { type = "table", group = "playbook", doc = "evidence sources: name -> settings (false: off)" },
  lookback = { type = "number", min = 0, group = "playbook", doc = "seconds before the start to look for changes" },
  source_timeout = { type = "number", min = 0.1, group = "playbook", doc = "seconds each evidence source may take" },
  root_cause_threshold = { type = "number", min = 0, max = 1, group = "playbook",
    doc = "confidence needed for a \"Root cause identified\" timeline entry" },
  channel_retries = { type = "integer", min = 0, max = 100, group = "playbook",
    doc = "re-fetches of an incident whose Slack channel is not created yet" },
  channel_retry_delay = { type = "number", min = 0, group = "playbook", doc = "first delay of those re-fetches (s)" },
  slack = { type = "table", group = "playbook", doc = "posting: enabled, investigating_message, fallback_channel" },
  timeline = { type = "table", group = "playbook", doc = "timeline entries: mode = auto|api|pin|off" },
  ai = { type = "table", group = "playbook", doc = "optional AI summary: enabled (off by default)" },
}

--- Adds a top-level key to the schema (a playbook or source with its own settings).
function M.register(key, spec)
  assert(type(key) == "string" and key:match("^[%a_][%w_]*$"), "config.register: bad key")
  assert(type(spec) == "table" and type(spec.type) == "string", "config.register: spec needs a type")
  M.schema[key] = spec
end

---------------------------------------------------------------------------
-- helpers
---------------------------------------------------------------------------

-- Levenshtein distance, for "did you mean".
local function distance(a, b)
  local la, lb = #a, #b
  local prev = {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    local cur = { [0] = i }
    local ca = a:byte(i)
    for j = 1, lb do
      local cost = (ca == b:byte(j)) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[lb]
end

-- The valid key closest to `key` when it is close enough to be a typo.
local function closest(key, fields)
  local best, best_d
  local lk = key:lower()
  for name in pairs(fields) do
    local d = distance(lk, name:lower())
    if lk:gsub("[_-]", "") == name:lower():gsub("[_-]", "") then d = 0 end
    if not best_d or d < best_d or (d == best_d and name < best) then best, best_d = name, d end
  end
  if best and best_d <= math.max(2, #key // 3) then return best end
  return nil
end

local function describe(v)
  if type(v) == "string" then
    if #v > 30 then v = v:sub(1, 27) .. "..." end
    return string.format("string %q", v)
  end
  if type(v) == "number" or type(v) == "boolean" then return type(v) .. " " .. tostring(v) end
  return type(v)
end

-- Best-effort line number of `key = ...` in the source (0 when not found).
local function line_of(source, key)
  if not source then return 0 end
  local n = 0
  for line in (source .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    local code = line:gsub("%-%-.*$", "")
    local k = key:gsub("%p", "%%%0")
    if code:find("%f[%w_]" .. k .. "%s*=") or code:find("%[%s*[\"']" .. k .. "[\"']%s*%]%s*=") then
      return n
    end
  end
  return 0
end

local function trim_secret(s)
  return (s:gsub("[\r\n]+$", ""))
end

-- env("NAME" [, default]) inside the config: NAME, else the file named by NAME_FILE.
local function env_helper(name, default)
  if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") then
    error("env: expected a variable name, got " .. describe(name), 2)
  end
  local v = sys.getenv(name)
  if v ~= nil and v ~= "" then return v end
  local path = sys.getenv(name .. "_FILE")
  if path and path ~= "" then
    local f, err = io.open(path, "rb")
    if not f then error("env: cannot read the file named by " .. name .. "_FILE: " .. tostring(err), 2) end
    local s = f:read("a") or ""
    f:close()
    s = trim_secret(s)
    if s ~= "" then return s end
  end
  return default
end

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then
    f:close()
    return true
  end
  return false
end

--- Where the config comes from: explicit (--config), $FOX_CONFIG, ./fox.conf.lua.
function M.resolve_path(explicit)
  if explicit and explicit ~= "" then return explicit end
  local env = sys.getenv("FOX_CONFIG")
  if env and env ~= "" then return env end
  if file_exists("fox.conf.lua") then return "fox.conf.lua" end
  return nil
end

-- Evaluates the file in a sandbox. Returns the table and the source, or nil, err.
local function evaluate(path)
  local f, oerr = io.open(path, "rb")
  if not f then return nil, nil, "cannot read the config file: " .. tostring(oerr) end
  local source = f:read("a") or ""
  f:close()
  local sandbox = {
    env = env_helper,
    tostring = tostring, tonumber = tonumber, type = type, pairs = pairs, ipairs = ipairs,
    select = select, next = next, error = error, assert = assert,
    string = { format = string.format, rep = string.rep, lower = string.lower, upper = string.upper,
      sub = string.sub, gsub = string.gsub, match = string.match, find = string.find,
      gmatch = string.gmatch, len = string.len, byte = string.byte, char = string.char },
    table = { concat = table.concat, insert = table.insert, remove = table.remove,
      sort = table.sort, unpack = unpack },
    math = math,
    os = { time = os.time, date = os.date },
  }
  local chunk, lerr = load(source, "@" .. path, "t", sandbox)
  if not chunk then return nil, source, lerr end
  -- A config is a table, not a program: bound its work so a stray loop cannot hang
  -- start-up or a reload.
  local co = coroutine.create(chunk)
  debug.sethook(co, function() error("the config file ran too long (an endless loop?)", 2) end, "", 1e7)
  local ok, result = coroutine.resume(co)
  if not ok then return nil, source, tostring(result) end
  if coroutine.status(co) ~= "dead" then return nil, source, path .. ": the config file must not yield" end
  if type(result) ~= "table" then
    return nil, source, path .. ": the config file must return a table (got " .. type(result) .. ")"
  end
  return result, source
end

---------------------------------------------------------------------------
-- validation
---------------------------------------------------------------------------
local validate_fields

local function type_ok(spec, v)
  local t = spec.type
  if t == "section" then return type(v) == "table" end
  if t == "array" then return type(v) == "table" end
  if t == "integer" then return math.type(v) == "integer" or (type(v) == "number" and v == math.floor(v)) end
  if t == "any" then return true end
  return type(v) == t
end

local function type_name(spec)
  if spec.type == "section" then return "a table" end
  if spec.type == "array" then return "an array of " .. spec.of .. "s" end
  if spec.type == "integer" then return "an integer" end
  return "a " .. spec.type
end

-- Checks v against spec; appends messages to errs; returns the normalized value.
local function validate_value(spec, v, name, ctx)
  local function fail(msg)
    ctx.errs[#ctx.errs + 1] = { key = name:match("[^.]+$"), msg = msg }
  end
  if not type_ok(spec, v) then
    -- A secret's value is never repeated in a message, only its type.
    fail(name .. " must be " .. type_name(spec) .. " (got " .. (spec.secret and type(v) or describe(v)) .. ")")
    return nil
  end
  if spec.type == "section" then
    return validate_fields(spec.fields, v, name .. ".", ctx)
  end
  if spec.type == "array" then
    local out = {}
    for k in pairs(v) do
      if math.type(k) ~= "integer" or k < 1 or k > #v then
        fail(name .. " must be an array (a list in braces); found the key " .. tostring(k))
        return nil
      end
    end
    for i, item in ipairs(v) do
      if type(item) ~= spec.of then
        fail(name .. "[" .. i .. "] must be a " .. spec.of .. " (got " .. describe(item) .. ")")
        return nil
      end
      out[i] = item
    end
    return out
  end
  if spec.type == "number" or spec.type == "integer" then
    if v ~= v then
      fail(name .. " must be a number (got nan)")
      return nil
    end
    if spec.min and v < spec.min then
      fail(name .. " must be at least " .. spec.min .. " (got " .. tostring(v) .. ")")
      return nil
    end
    if spec.max and v > spec.max then
      fail(name .. " must be at most " .. spec.max .. " (got " .. tostring(v) .. ")")
      return nil
    end
    if spec.type == "integer" then v = math.tointeger(v) end
  end
  if spec.one_of then
    local found = false
    for _, o in ipairs(spec.one_of) do found = found or o == v end
    if not found then
      fail(name .. " must be one of " .. table.concat(spec.one_of, ", ") .. " (got " .. describe(v) .. ")")
      return nil
    end
  end
  if spec.check then
    local ok, why = spec.check(v)
    if not ok then
      fail(name .. " " .. why)
      return nil
    end
  end
  if spec.secret and type(v) == "string" then log.redact(v) end
  return v
end

local function default_of(spec)
  local d = spec.default
  if type(d) == "function" then return d() end
  if type(d) == "table" then
    local c = {}
    for k, x in pairs(d) do c[k] = x end
    return c
  end
  return d
end

validate_fields = function(fields, t, prefix, ctx)
  local out = {}
  for k, v in pairs(t) do
    if type(k) ~= "string" then
      ctx.errs[#ctx.errs + 1] = { key = tostring(k),
        msg = (prefix == "" and "the config" or prefix:sub(1, -2)) .. " has a key that is not a name: " .. describe(k) }
    elseif not fields[k] then
      local hint = closest(k, fields)
      ctx.errs[#ctx.errs + 1] = { key = k, msg = "unknown key '" .. prefix .. k .. "'"
        .. (hint and (" (did you mean '" .. prefix .. hint .. "'?)") or "") }
    else
      out[k] = validate_value(fields[k], v, prefix .. k, ctx)
    end
  end
  for k, spec in pairs(fields) do
    if out[k] == nil and t[k] == nil then
      if spec.type == "section" then
        out[k] = validate_fields(spec.fields, {}, prefix .. k .. ".", ctx)
      else
        local d = default_of(spec)
        if d ~= nil and (spec.check or spec.secret) then
          -- Defaults from the environment are checked like values from the file.
          d = validate_value(spec, d, prefix .. k .. " (from the environment)", ctx)
        end
        out[k] = d
      end
    end
  end
  return out
end

local function listen_check(v)
  local host, port = M.parse_listen(v)
  if not host then return false, port end
  return true
end
M.schema.listen.check = listen_check

--- "HOST:PORT", ":PORT" or "[v6]:PORT" -> host, port | nil, why.
function M.parse_listen(s)
  local host, port = s:match("^%[([^%]]+)%]:(%d+)$")
  if not host then host, port = s:match("^([^:]*):(%d+)$") end
  if not host then return nil, "must be HOST:PORT (got " .. describe(s) .. ")" end
  port = tonumber(port)
  if port > 65535 then return nil, "has a port above 65535 (got " .. describe(s) .. ")" end
  if host == "" then host = "127.0.0.1" end
  return host, port
end

--- Loads and validates the config at path (nil: defaults only). opts.overrides: a
-- table merged over the file's top-level keys (command-line flags).
-- Returns cfg, or nil and an array of "file:line: message" strings.
function M.load(path, opts)
  opts = opts or {}
  local raw, source = {}, nil
  if path then
    local t, src, err = evaluate(path)
    if not t then return nil, { err } end
    raw, source = t, src
  end
  local ctx = { errs = {} }
  local ok, cfg = pcall(validate_fields, M.schema, raw, "", ctx)
  if not ok then return nil, { (path or "config") .. ": " .. tostring(cfg) } end
  if #ctx.errs > 0 then
    for _, e in ipairs(ctx.errs) do e.line = line_of(source, e.key) end
    table.sort(ctx.errs, function(a, b)
      if a.line ~= b.line then return a.line < b.line end
      return a.msg < b.msg
    end)
    local msgs = {}
    for _, e in ipairs(ctx.errs) do
      msgs[#msgs + 1] = (path or "config") .. (e.line > 0 and (":" .. e.line) or "") .. ": " .. e.msg
    end
    return nil, msgs
  end
  for k, v in pairs(opts.overrides or {}) do cfg[k] = v end
  if cfg.poll == nil then cfg.poll = cfg.webhook_secret == nil end
  cfg.path = path
  cfg.dir = path and (path:match("^(.*)/[^/]*$") or ".") or "."
  return cfg
end

--- Resolves a module-or-file setting (playbook, skip_policy) to a loaded value.
-- A name containing "/" or ending in ".lua" is a file, relative to the config's
-- directory; anything else is a module name on the script path.
function M.load_code(spec, cfg)
  if spec:find("/", 1, true) or spec:match("%.lua$") then
    local path = spec
    if not path:match("^/") and cfg and cfg.dir and cfg.dir ~= "." then path = cfg.dir .. "/" .. path end
    local key = "file:" .. path
    if package.loaded[key] ~= nil then return package.loaded[key] end
    local chunk, err = loadfile(path, "t")
    if not chunk then error(err, 0) end
    local v = chunk()
    package.loaded[key] = v == nil and true or v
    return v
  end
  return require(spec)
end

--- `fox check`: loads the config (and its playbook and skip policy), prints every
-- error naming the key, returns how many there were.
function M.check(path)
  path = M.resolve_path(path)
  if not path then return 0 end
  local cfg, errs = M.load(path)
  if not cfg then
    for _, e in ipairs(errs) do io.stderr:write(e, "\n") end
    return #errs
  end
  local failures = 0
  for _, key in ipairs({ "playbook", "skip_policy" }) do
    local ok, err = pcall(M.load_code, cfg[key], cfg)
    if not ok then
      io.stderr:write(path, ": ", key, " '", cfg[key], "' cannot be loaded: ", tostring(err), "\n")
      failures = failures + 1
    end
  end
  if failures == 0 then io.stdout:write("fox check: config ", path, " ok\n") end
  return failures
end

return M
