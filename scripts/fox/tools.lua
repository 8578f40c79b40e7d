-- The tool registry: each tool has a name, a description, a JSON Schema of its input
-- and a handler returning plain data (or nil, err in the fox.incidentio convention).
-- Input is validated against the schema (messages name the bad field) and defaults
-- are applied before the handler runs. Used by `fox tool(s)` and the MCP server.
local json = require("fox.json")
local incidentio = require("fox.incidentio")

local M = {}

-- Built-in tools, loaded on first use (modules under scripts/fox/tools/).
M.builtin = { "get_incident_details", "list_recent_incidents", "correlate_incidents" }

local registry, order

local function check_tool(tool)
  assert(type(tool) == "table", "a tool is a table")
  assert(type(tool.name) == "string" and tool.name:match("^[%w_]+$"), "a tool needs a name of [A-Za-z0-9_]")
  assert(type(tool.description) == "string", "tool " .. tool.name .. " needs a description")
  assert(type(tool.input_schema) == "table" and tool.input_schema.type == "object",
    "tool " .. tool.name .. " needs an object input_schema")
  assert(type(tool.handler) == "function", "tool " .. tool.name .. " needs a handler")
end

-- Adds (or replaces) a tool.
function M.register(tool)
  check_tool(tool)
  if not registry then M.load() end
  if not registry[tool.name] then order[#order + 1] = tool.name end
  registry[tool.name] = tool
  return tool
end

function M.load()
  if registry then return end
  registry, order = {}, {}
  for _, name in ipairs(M.builtin) do
    local tool = require("fox.tools." .. name)
    check_tool(tool)
    registry[tool.name] = tool
    order[#order + 1] = tool.name
  end
end

function M.get(name)
  M.load()
  return registry[name]
end

-- Tools in registration order: {name, description, input_schema} (+ handler).
function M.list()
  M.load()
  local out = {}
  for _, name in ipairs(order) do out[#out + 1] = registry[name] end
  return out
end

-- What `fox tools` and MCP's tools/list show: no handler, no Lua-only fields.
function M.describe(tool)
  return { name = tool.name, description = tool.description, input_schema = tool.input_schema }
end

---------------------------------------------------------------------------
-- validation (the subset of JSON Schema the tools use: type, properties, required,
-- additionalProperties=false, default, enum, minimum, maximum, minLength, maxLength,
-- items)
---------------------------------------------------------------------------
local function show(v)
  if type(v) == "string" then return string.format("%q", #v > 60 and (v:sub(1, 57) .. "...") or v) end
  if v == json.null then return "null" end
  if type(v) == "table" then return next(v) == nil and "an empty object" or "an object or array" end
  return tostring(v)
end

local function is_array(t)
  if type(t) ~= "table" then return false end
  if t == json.empty_array then return true end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

local function type_ok(expected, v)
  if expected == "string" then return type(v) == "string" end
  if expected == "boolean" then return type(v) == "boolean" end
  if expected == "number" then return type(v) == "number" end
  if expected == "integer" then
    return math.type(v) == "integer" or (type(v) == "number" and v == math.floor(v) and v == v)
  end
  if expected == "object" then return type(v) == "table" and (next(v) == nil or not is_array(v)) end
  if expected == "array" then return is_array(v) end
  if expected == "null" then return v == json.null end
  return true
end

local function expected_label(schema)
  local t = schema.type
  if t == "integer" then
    if schema.minimum and schema.maximum then
      return "an integer from " .. schema.minimum .. " to " .. schema.maximum
    end
    return "an integer"
  end
  if t == "number" then
    if schema.minimum and schema.maximum then
      return "a number from " .. schema.minimum .. " to " .. schema.maximum
    end
    return "a number"
  end
  if t == "boolean" then return "true or false" end
  if t == "string" then return "a string" end
  if t == "array" then return "an array" end
  if t == "object" then return "an object" end
  return tostring(t)
end

local validate

local function validate_value(schema, v, path)
  if schema.type and not type_ok(schema.type, v) then
    return nil, path .. " must be " .. expected_label(schema) .. " (got " .. show(v) .. ")"
  end
  if schema.type == "integer" then v = math.tointeger(v) or v end
  if schema.enum then
    local ok = false
    for _, e in ipairs(schema.enum) do
      if e == v or (type(e) == "string" and type(v) == "string" and e:lower() == v:lower()) then
        ok, v = true, e
        break
      end
    end
    if not ok then
      local names = {}
      for _, e in ipairs(schema.enum) do names[#names + 1] = tostring(e) end
      return nil, path .. " must be one of " .. table.concat(names, ", ") .. " (got " .. show(v) .. ")"
    end
  end
  if type(v) == "number" then
    if schema.minimum and v < schema.minimum then
      return nil, path .. " must be at least " .. schema.minimum .. " (got " .. show(v) .. ")"
    end
    if schema.maximum and v > schema.maximum then
      return nil, path .. " must be at most " .. schema.maximum .. " (got " .. show(v) .. ")"
    end
  end
  if type(v) == "string" then
    if schema.minLength and utf8.len(v) and utf8.len(v) < schema.minLength then
      return nil, path .. (schema.minLength == 1 and " must not be empty"
        or (" must be at least " .. schema.minLength .. " characters"))
    end
    if schema.maxLength and #v > schema.maxLength then
      return nil, path .. " must be at most " .. schema.maxLength .. " characters (got " .. #v .. ")"
    end
  end
  if schema.type == "object" then return validate(schema, v, path) end
  if schema.type == "array" and schema.items then
    local out = {}
    for i, item in ipairs(v) do
      local cv, err = validate_value(schema.items, item, path .. "[" .. (i - 1) .. "]")
      if err then return nil, err end
      out[i] = cv
    end
    return out
  end
  return v
end

validate = function(schema, input, path)
  local prefix = path and (path .. ".") or ""
  if input == nil or input == json.null then input = {} end
  if type(input) ~= "table" or (next(input) ~= nil and is_array(input)) then
    return nil, (path or "input") .. " must be an object (got " .. show(input) .. ")"
  end
  local props = schema.properties or {}
  local out = {}
  if schema.additionalProperties == false then
    local names = {}
    for k in pairs(props) do names[#names + 1] = k end
    table.sort(names)
    local unknown = {}
    for k in pairs(input) do
      if props[k] == nil then unknown[#unknown + 1] = tostring(k) end
    end
    if #unknown > 0 then
      table.sort(unknown)
      return nil, "unknown field " .. prefix .. unknown[1] .. " (expected "
        .. (#names > 0 and table.concat(names, ", ") or "no fields") .. ")"
    end
  end
  for _, req in ipairs(schema.required or {}) do
    local v = input[req]
    if v == nil or v == json.null or v == "" then
      return nil, prefix .. req .. " is required"
        .. (props[req] and props[req].description and (": " .. props[req].description) or "")
    end
  end
  local keys = {}
  for k in pairs(props) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local p = props[k]
    local v = input[k]
    if v == json.null then v = nil end
    if v == nil then
      if p.default ~= nil then out[k] = p.default end
    else
      local cv, err = validate_value(p, v, prefix .. k)
      if err then return nil, err end
      out[k] = cv
    end
  end
  return out
end

-- Validates input against a tool's schema: returns the input with defaults applied,
-- or nil and a message naming the bad field.
function M.validate(schema, input)
  return validate(schema, input, nil)
end

-- Runs a tool: validation, then the tool's own checks (tool.check(input) -> nil or a
-- message), then the handler. Returns the result, or nil and an error table
-- (kind "invalid_input" for bad input; see fox.incidentio for the others).
function M.call(name, input, ctx)
  local tool = M.get(name)
  if not tool then
    local names = {}
    for _, t in ipairs(M.list()) do names[#names + 1] = t.name end
    return nil, incidentio.error("invalid_input", "unknown tool " .. show(name) .. " (tools: "
      .. table.concat(names, ", ") .. ")")
  end
  local args, verr = M.validate(tool.input_schema, input)
  if not args then return nil, incidentio.error("invalid_input", verr) end
  if tool.check then
    local msg = tool.check(args)
    if msg then return nil, incidentio.error("invalid_input", msg) end
  end
  local ok, res, err = pcall(tool.handler, args, ctx or {})
  if not ok then
    return nil, incidentio.error("internal", "tool " .. name .. " failed: " .. tostring(res))
  end
  if res == nil then
    if type(err) == "string" then err = incidentio.error("internal", err) end
    return nil, err or incidentio.error("internal", "tool " .. name .. " returned nothing")
  end
  return res
end

return M
