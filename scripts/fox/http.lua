-- fox.http: HTTP client and server (from the C core) plus query-string helpers.
--
--   http.request{method=, url=, headers=, body=, timeout=, queue_timeout=, max_body=, redirects=}
--     -> {status=, headers= (lower-cased names; repeats joined with ", "), body=} | nil, err
--     Defaults: GET, timeout 30 s, queue_timeout 300 s, max_body 16 MiB, redirects 0
--     (3xx are returned). At most 32 requests per host:port and 256 in all are on the
--     wire at once; the rest wait in a FIFO per host. timeout counts from when the
--     request goes out ("timed out after N s"); queue_timeout bounds the wait before
--     that ("queued too long: waited N s for a free connection to host:port ...").
--     Any status is a response; nil, err is for failures (refused, timed out, TLS,
--     body over max_body...). A body sent without a Content-Type header goes out as
--     application/x-www-form-urlencoded (libcurl's default): set it for JSON.
--   http.listen{host=, port=, max_body=, max_header=, timeout=, handler_timeout=,
--               handler=function(req) return {status=, headers=, body=} end}
--     -> server (server.port, server.host, server:close()) | nil, err
--     req = {method, path (decoded), query (raw), uri, headers (lower-cased), body,
--            remote_addr, remote_port}; status defaults to 200. Defaults: host
--     127.0.0.1, max_body 1 MiB (413 beyond), max_header 16 KiB, timeout 30 s (idle
--     read/write), handler_timeout 300 s. A failing handler gets a 500 and is logged.
--     The server lives until server:close(), which lets requests in flight finish.
--   http.stats() -> {transfers=, queued=, active=, requests=}: client requests alive,
--     of which waiting for a slot and on the wire; server requests being handled.
--   http.encode(s), http.decode(s [, plus_as_space])
--   http.build_query(params), http.parse_query(s), http.url_join(base, path, params)
local core = require("fox.http.core")

local encode, decode = core.encode, core.decode
local concat, sort = table.concat, table.sort
local type, tostring, pairs, ipairs, error = type, tostring, pairs, ipairs, error
local math_type = math.type
local string_format = string.format

local http = {
  request = core.request,
  listen = core.listen,
  encode = encode,
  decode = decode,
  stats = core.stats,
}

-- A query value as text: strings as they are, integers without ".0", floats in full
-- precision, booleans as true/false.
local function scalar_to_string(key, v)
  local t = type(v)
  if t == "string" then
    return v
  elseif t == "number" then
    if math_type(v) == "integer" then
      return tostring(v)
    end
    if v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then
      return string_format("%d", v)
    end
    return string_format("%.17g", v)
  elseif t == "boolean" then
    return v and "true" or "false"
  end
  error(string_format("build_query: value of %q must be a string, number or boolean (got %s)",
    tostring(key), t), 3)
end

local function add_pair(out, key, value)
  if type(key) ~= "string" and type(key) ~= "number" then
    error("build_query: keys must be strings (got " .. type(key) .. ")", 3)
  end
  key = tostring(key)
  out[#out + 1] = encode(key) .. "=" .. encode(scalar_to_string(key, value))
end

local function is_pair_list(params)
  local first = params[1]
  return type(first) == "table" and first[1] ~= nil
end

--- Builds "k=v&k2=v2" from params, percent-encoding keys and values (brackets in keys
-- such as "status_category[one_of]" included; servers decode them).
-- params is either a map {key = value | {value1, value2, ...}} (keys sorted, a key
-- repeated once per value) or an array of {key, value} pairs (order kept).
-- nil or an empty table gives "".
function http.build_query(params)
  if params == nil then
    return ""
  end
  if type(params) ~= "table" then
    error("build_query: params must be a table (got " .. type(params) .. ")", 2)
  end
  local out = {}
  if is_pair_list(params) then
    for i, pair in ipairs(params) do
      if type(pair) ~= "table" then
        error("build_query: element " .. i .. " must be a {key, value} pair", 2)
      end
      add_pair(out, pair[1], pair[2])
    end
    return concat(out, "&")
  end
  local keys = {}
  for k in pairs(params) do
    if type(k) ~= "string" then
      error("build_query: keys must be strings (got " .. type(k) .. ")", 2)
    end
    keys[#keys + 1] = k
  end
  sort(keys)
  for _, k in ipairs(keys) do
    local v = params[k]
    if type(v) == "table" then
      for _, item in ipairs(v) do
        add_pair(out, k, item)
      end
    else
      add_pair(out, k, v)
    end
  end
  return concat(out, "&")
end

--- Parses a query string ("a=1&b=2&b=3", with or without a leading "?") into
-- {a = "1", b = {"2", "3"}}: values are strings, a repeated key gives an array in
-- order. '+' decodes to a space; a key without '=' has the value "".
function http.parse_query(s)
  local result = {}
  if s == nil or s == "" then
    return result
  end
  if type(s) ~= "string" then
    error("parse_query: expected a string (got " .. type(s) .. ")", 2)
  end
  s = s:gsub("^%?", "")
  for part in s:gmatch("[^&;]+") do
    local k, v = part:match("^([^=]*)=(.*)$")
    if not k then
      k, v = part, ""
    end
    k, v = decode(k, true), decode(v, true)
    local prev = result[k]
    if prev == nil then
      result[k] = v
    elseif type(prev) == "table" then
      prev[#prev + 1] = v
    else
      result[k] = { prev, v }
    end
  end
  return result
end

--- Joins base and path with exactly one "/" between them and appends params as a
-- query string (with "?" or "&" as the path already needs). path and params are
-- optional.
function http.url_join(base, path, params)
  if type(base) ~= "string" then
    error("url_join: base must be a string (got " .. type(base) .. ")", 2)
  end
  local url = base
  if path ~= nil and path ~= "" then
    if type(path) ~= "string" then
      error("url_join: path must be a string (got " .. type(path) .. ")", 2)
    end
    url = url:gsub("/+$", "") .. "/" .. path:gsub("^/+", "")
  end
  local query = http.build_query(params)
  if query ~= "" then
    url = url .. (url:find("?", 1, true) and "&" or "?") .. query
  end
  return url
end

return http
