-- How the REPL shows values: scalars as Lua would, tables as readable Lua-ish text,
-- with registered secrets scrubbed.
local repl = {}

local function is_identifier(s)
  return type(s) == "string" and s:match("^[%a_][%w_]*$") ~= nil
end

local function format_value(v, indent, seen)
  local t = type(v)
  if t == "string" then
    return string.format("%q", v)
  elseif t ~= "table" then
    return tostring(v)
  end
  if seen[v] then
    return "<cycle>"
  end
  local mt = getmetatable(v)
  if mt and mt.__tostring then
    return tostring(v)
  end
  seen[v] = true
  local keys = {}
  for k in pairs(v) do
    keys[#keys + 1] = k
  end
  if #keys == 0 then
    seen[v] = nil
    return "{}"
  end
  table.sort(keys, function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then
      return ta < tb
    end
    if ta == "number" or ta == "string" then
      return a < b
    end
    return tostring(a) < tostring(b)
  end)
  local pad = string.rep("  ", indent + 1)
  local parts = {}
  local n = #v
  for _, k in ipairs(keys) do
    local shown
    if math.type(k) == "integer" and k >= 1 and k <= n then
      shown = format_value(v[k], indent + 1, seen)
    elseif is_identifier(k) then
      shown = k .. " = " .. format_value(v[k], indent + 1, seen)
    else
      shown = "[" .. format_value(k, indent + 1, seen) .. "] = " .. format_value(v[k], indent + 1, seen)
    end
    parts[#parts + 1] = pad .. shown
  end
  seen[v] = nil
  return "{\n" .. table.concat(parts, ",\n") .. "\n" .. string.rep("  ", indent) .. "}"
end

--- Formats the results of a chunk, tab-separated, secrets scrubbed.
function repl.format(...)
  local out = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    out[i] = type(v) == "string" and v or format_value(v, 0, {})
  end
  local text = table.concat(out, "\t")
  local ok, log = pcall(require, "fox.log")
  if ok and log.scrub then
    text = log.scrub(text)
  end
  return text
end

return repl
