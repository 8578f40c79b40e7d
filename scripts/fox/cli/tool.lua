-- `fox tool NAME [--param value ...] [--json '{...}']`: runs one tool and prints its
-- JSON result on stdout. Exit 0 on success, 1 when the data could not be fetched
-- (actionable message on stderr), 2 on invalid input or usage.
local json = require("fox.json")
local sys = require("fox.sys")
local tools = require("fox.tools")

local USAGE = [[
usage: fox tool NAME [--param value ...] [--json '{"param": value}']
       fox tool NAME --help

Runs one tool and prints its JSON result. Parameters may be written --incident-id or
--incident_id, as --name value or --name=value; a boolean may be a bare flag
(--include-timeline) or --no-include-timeline. --json gives the whole input as a JSON
object; flags given as well override its fields. `fox tools` lists the tools.
Exit status: 0 ok, 1 the API call failed, 2 invalid input.
]]

local function encode(v)
  if sys.isatty(1) and json.pretty then return json.pretty(v) end
  return json.encode(v)
end

local function flag_name(name)
  return "--" .. name:gsub("_", "-")
end

local function tool_help(tool)
  local lines = { "usage: fox tool " .. tool.name .. " [options]", "", tool.description, "", "options:" }
  local schema = tool.input_schema
  local required = {}
  for _, r in ipairs(schema.required or {}) do required[r] = true end
  local names = {}
  for k in pairs(schema.properties or {}) do names[#names + 1] = k end
  table.sort(names, function(a, b)
    if required[a] ~= required[b] then return required[a] == true end
    return a < b
  end)
  for _, k in ipairs(names) do
    local p = schema.properties[k]
    local meta = { p.type }
    if required[k] then meta[#meta + 1] = "required" end
    if p.default ~= nil then meta[#meta + 1] = "default " .. tostring(p.default) end
    if p.minimum and p.maximum then meta[#meta + 1] = p.minimum .. ".." .. p.maximum end
    if p.enum then
      local e = {}
      for _, v in ipairs(p.enum) do e[#e + 1] = tostring(v) end
      meta[#meta + 1] = "one of " .. table.concat(e, "|")
    end
    lines[#lines + 1] = string.format("  %-26s %s (%s)", flag_name(k) .. (p.type == "boolean" and "" or " VALUE"),
      p.description or "", table.concat(meta, ", "))
  end
  lines[#lines + 1] = string.format("  %-26s %s", "--json OBJECT", "the whole input as a JSON object")
  return table.concat(lines, "\n") .. "\n"
end

local BOOL_WORDS = { ["true"] = true, ["false"] = false, yes = true, no = false,
                     ["1"] = true, ["0"] = false, on = true, off = false }

-- Converts a flag's text to the schema's type where it can; a value that does not
-- convert is passed on as text so the validator names the field and the value.
local function convert(prop, text)
  local t = prop and prop.type
  if t == "integer" or t == "number" then
    local n = tonumber(text)
    if n then return n end
  elseif t == "boolean" then
    local b = BOOL_WORDS[text:lower()]
    if b ~= nil then return b end
  end
  return text
end

local function usage_error(msg)
  io.stderr:write("fox tool: ", msg, "\n")
  return 2
end

-- Parses argv into the tool's input. Returns input or nil, message.
local function parse_args(tool, argv, first)
  local props = tool.input_schema.properties or {}
  local input = {}
  local from_flags = {}
  local i = first
  local known = {}
  for k in pairs(props) do known[#known + 1] = flag_name(k) end
  table.sort(known)
  while i <= #argv do
    local a = argv[i]
    if a == "--json" or a:match("^%-%-json=") then
      local text = a:match("^%-%-json=(.*)$")
      if not text then
        i = i + 1
        text = argv[i]
        if not text then return nil, "--json needs a JSON object" end
      end
      local obj, err = json.safe.decode(text)
      if type(obj) ~= "table" then
        return nil, "--json: not a JSON object (" .. tostring(err or text) .. ")"
      end
      for k, v in pairs(obj) do input[k] = v end
    elseif a:match("^%-%-") then
      local name, value = a:match("^%-%-([^=]+)=(.*)$")
      name = name or a:sub(3)
      local key = name:gsub("%-", "_")
      local negated = false
      if not props[key] and key:match("^no_") and props[key:sub(4)]
        and props[key:sub(4)].type == "boolean" and value == nil then
        key, negated = key:sub(4), true
      end
      local prop = props[key]
      if not prop then
        return nil, "unknown option --" .. name .. " for tool " .. tool.name
          .. (#known > 0 and (" (options: " .. table.concat(known, ", ") .. ")") or "")
      end
      if negated then
        from_flags[key] = false
      elseif prop.type == "boolean" and value == nil then
        local nxt = argv[i + 1]
        if nxt and BOOL_WORDS[nxt:lower()] ~= nil then
          from_flags[key] = BOOL_WORDS[nxt:lower()]
          i = i + 1
        else
          from_flags[key] = true
        end
      else
        if value == nil then
          i = i + 1
          value = argv[i]
          if value == nil then return nil, "option --" .. name .. " needs a value" end
        end
        from_flags[key] = convert(prop, value)
      end
    else
      return nil, "unexpected argument " .. string.format("%q", a)
        .. " (parameters are given as --name value)"
    end
    i = i + 1
  end
  for k, v in pairs(from_flags) do input[k] = v end
  return input
end

return function(argv)
  argv = argv or {}
  local name = argv[1]
  if name == nil or name == "--help" or name == "-h" or name == "help" then
    io.write(USAGE)
    return name == nil and 2 or 0
  end
  local tool = tools.get(name)
  if not tool then
    local names = {}
    for _, t in ipairs(tools.list()) do names[#names + 1] = t.name end
    return usage_error("unknown tool \"" .. name .. "\" (tools: " .. table.concat(names, ", ") .. ")")
  end
  for i = 2, #argv do
    if argv[i] == "--help" or argv[i] == "-h" then
      io.write(tool_help(tool))
      return 0
    end
  end
  local input, perr = parse_args(tool, argv, 2)
  if not input then return usage_error(perr) end
  local result, err = tools.call(name, input, {})
  if not result then
    io.stderr:write("fox tool ", name, ": ", tostring(err and err.message or err), "\n")
    return (err and err.kind == "invalid_input") and 2 or 1
  end
  io.write(encode(result), "\n")
  return 0
end
