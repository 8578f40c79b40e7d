-- `fox tools`: lists the tools with their input schemas (JSON; a readable listing on a
-- terminal unless --json).
local json = require("fox.json")
local sys = require("fox.sys")
local tools = require("fox.tools")

local USAGE = [[
usage: fox tools [--json]

Lists the tools `fox tool` (and the MCP server) can run, with the JSON Schema of each
tool's input. On a terminal the listing is readable text; otherwise, or with --json,
it is a JSON array of {name, description, input_schema}.
]]

local function human(list)
  local out = {}
  for _, t in ipairs(list) do
    out[#out + 1] = t.name
    out[#out + 1] = "  " .. t.description
    local schema = t.input_schema
    local req = {}
    for _, r in ipairs(schema.required or {}) do req[r] = true end
    local names = {}
    for k in pairs(schema.properties or {}) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do
      local p = schema.properties[k]
      local meta = p.type
      if req[k] then meta = meta .. ", required" end
      if p.default ~= nil then meta = meta .. ", default " .. tostring(p.default) end
      out[#out + 1] = string.format("    --%-22s %s", k:gsub("_", "-"), meta)
    end
    out[#out + 1] = ""
  end
  return table.concat(out, "\n")
end

return function(argv)
  argv = argv or {}
  local as_json = not sys.isatty(1)
  for _, a in ipairs(argv) do
    if a == "--help" or a == "-h" then
      io.write(USAGE)
      return 0
    elseif a == "--json" then
      as_json = true
    else
      io.stderr:write("fox tools: unexpected argument ", a, "\n")
      return 2
    end
  end
  local list = {}
  for _, t in ipairs(tools.list()) do list[#list + 1] = tools.describe(t) end
  if as_json then
    io.write((sys.isatty(1) and json.pretty or json.encode)(list), "\n")
  else
    io.write(human(list))
  end
  return 0
end
