-- fox.json: JSON for scripts, on Debian's lua-cjson 2.1.0, with fox's settings on
-- private cjson.new() instances (so nothing another module sets leaks in or out).
--
--   encode(v) -> string        (raises on unsupported values, cycles, depth > 128,
--                               NaN/inf, excessively sparse arrays)
--   decode(s) -> value         (raises on invalid JSON, depth > 128, NaN/Infinity/hex,
--                               numbers beyond a double such as 1e400)
--   safe.encode / safe.decode  -> value, or nil, err instead of raising
--   null                       the value JSON null decodes to / encodes from
--   empty_array                encodes as [] (a plain empty table encodes as {})
--   array(t) -> t              marks t as an array: encodes as [] when empty
--   pretty(v) -> string        indented, keys sorted: for terminals and diffs
--
-- What this adds to lua-cjson 2.1.0, which predates Lua 5.3 integers:
--   * decode returns integers for integral numbers up to 2^53 (cjson gives floats, so
--     "page " .. n would read "page 3.0");
--   * encode writes integers of any size exactly and floats with the fewest digits that
--     read back the same (cjson stops at 14 significant digits, corrupting ids and
--     epoch milliseconds past 1e14);
--   * empty_array / array(t), which 2.1.0 lacks;
--   * "/" is not escaped as "\/".
-- Sparse arrays: {1, nil, 3} encodes as [1,null,3]; a table whose largest index is over
-- 10 and more than twice its element count (e.g. {[1000] = true}) is an error rather
-- than a thousand nulls. Arrays with holes decode fine; tables mixing array and string
-- keys encode as objects with the numbers as string keys.
-- Decoding cannot tell [] from {}: both give an empty table (which encodes as {}).
local cjson = require("cjson")

local MAX_DEPTH = 128

local M = {}

local function configure(instance)
  instance.encode_max_depth(MAX_DEPTH)
  instance.decode_max_depth(MAX_DEPTH)
  instance.encode_sparse_array(false, 2, 10)
  instance.encode_invalid_numbers(false)
  instance.decode_invalid_numbers(false)
  instance.encode_number_precision(14)
  return instance
end

local codec = configure(cjson.new())

M.null = cjson.null

-- The array marker: a metatable shared by every table array() marked.
local array_mt = { __name = "fox.json.array" }
M.array_mt = array_mt

M.empty_array = setmetatable({}, {
  __name = "fox.json.empty_array",
  __newindex = function()
    error("fox.json.empty_array is a constant; use json.array({}) for a mutable array", 2)
  end,
  __tostring = function() return "fox.json.empty_array" end,
})

function M.array(t)
  if t == nil then
    t = {}
  end
  if type(t) ~= "table" then
    error("json.array: expected a table, got " .. type(t), 2)
  end
  return setmetatable(t, array_mt)
end

-- Placeholders stand in for values cjson cannot write the way we want; the encoded text
-- then has each "<placeholder>" replaced. The token is random per process, so input
-- strings cannot collide with it by accident, nor (unguessable) on purpose.
local function random_token()
  local ok, crypto = pcall(require, "fox.crypto")
  if ok and crypto.random_bytes then
    return crypto.hex(crypto.random_bytes(12))
  end
  local parts = {}
  for i = 1, 6 do
    parts[i] = string.format("%04x", math.random(0, 0xffff))
  end
  return table.concat(parts)
end

local TOKEN = "\1fox" .. random_token()
local PLACEHOLDER_PATTERN = '"\\u0001fox' .. TOKEN:sub(5) .. '(%d+)\\u0001"'

local math_type, tointeger, format = math.type, math.tointeger, string.format
local huge = math.huge

-- The shortest text that reads back as exactly f, or nil when %.14g already does
-- (then cjson's own output is right).
local function exact_float_text(f)
  if f ~= f or f == huge or f == -huge then
    return nil -- left to cjson, which rejects them
  end
  if tonumber(format("%.14g", f)) == f then
    return nil
  end
  for digits = 15, 17 do
    local s = format("%." .. digits .. "g", f)
    if tonumber(s) == f then
      return s
    end
  end
  return format("%.17g", f)
end

-- Integers cjson would print in exponent form or round: |i| >= 1e14.
local BIG_INTEGER = 100000000000000

-- Marks table v as being serialised at depth; raises for what cannot be: too deep, or
-- a table that contains itself.
local function enter(v, depth, seen)
  if depth > MAX_DEPTH then
    error("Cannot serialise, excessive nesting (" .. depth .. ")", 0)
  end
  if seen[v] then
    error("Cannot serialise table: it contains itself (a cycle)", 0)
  end
  seen[v] = true
end

-- Returns v itself when cjson can encode it as is, else a copy where the values that
-- need a placeholder have one (subs collects their final text).
local function prepare(v, subs, depth, seen)
  local tv = type(v)
  if tv == "number" then
    local text
    if math_type(v) == "integer" then
      if v >= BIG_INTEGER or v <= -BIG_INTEGER then
        text = format("%d", v)
      end
    else
      text = exact_float_text(v)
    end
    if text then
      subs[#subs + 1] = text
      return TOKEN .. #subs .. "\1"
    end
    return v
  end
  if tv ~= "table" then
    return v
  end
  if v == M.empty_array or (next(v) == nil and getmetatable(v) == array_mt) then
    subs[#subs + 1] = "[]"
    return TOKEN .. #subs .. "\1"
  end
  enter(v, depth, seen)
  local copy
  for k, item in pairs(v) do
    local ti = type(item)
    if ti == "table" or ti == "number" then
      local new = prepare(item, subs, depth + 1, seen)
      if new ~= item then
        if not copy then
          copy = {}
          for k2, v2 in pairs(v) do
            copy[k2] = v2
          end
        end
        copy[k] = new
      end
    end
  end
  seen[v] = nil
  return copy or v
end

local function restore(text, subs)
  if #subs > 0 then
    text = text:gsub(PLACEHOLDER_PATTERN, function(i)
      return subs[tonumber(i)]
    end)
  end
  -- cjson escapes every "/" as "\/"; it never writes "\" before "/" otherwise (an
  -- escaped backslash is "\\", and the "/" after it would be escaped too), so each
  -- "\/" is one escape and can go.
  return (text:gsub("\\/", "/"))
end

function M.encode(v)
  local subs = {}
  local prepared = prepare(v, subs, 1, {})
  return restore(codec.encode(prepared), subs)
end

-- Integral floats up to 2^53 become integers; larger ones were already rounded by the
-- decoder and stay floats rather than pretending to be exact.
local EXACT = 9007199254740992

-- A literal beyond the range of a double (1e400) reads as +-inf, which encode refuses:
-- refuse it here, so whatever decodes can be written back.
local OUT_OF_RANGE = "number out of range (beyond the largest double)"

-- The walk over the decoded table is C (fox.json.core, src/lapi_json.c): in Lua it cost
-- a third of an investigation's CPU (every value of every log line).
local integerize = require("fox.json.core").integerize

function M.decode(s)
  if type(s) ~= "string" then
    error("json.decode: expected a string, got " .. type(s), 2)
  end
  local v = codec.decode(s)
  local tv = type(v)
  if tv == "table" then
    return integerize(v, MAX_DEPTH + 1)
  elseif tv == "number" and math_type(v) == "float" then
    if v == huge or v == -huge then
      error(OUT_OF_RANGE, 0)
    end
    if v <= EXACT and v >= -EXACT then
      return tointeger(v) or v
    end
  end
  return v
end

local function clean_error(err)
  if type(err) == "string" then
    return (err:gsub("^.-:%d+: ", ""))
  end
  return tostring(err)
end

M.safe = {
  encode = function(v)
    local ok, res = pcall(M.encode, v)
    if ok then
      return res
    end
    return nil, clean_error(res)
  end,
  decode = function(s)
    if type(s) ~= "string" then
      return nil, "expected a string, got " .. type(s)
    end
    local ok, res = pcall(M.decode, s)
    if ok then
      return res
    end
    return nil, clean_error(res)
  end,
}

-- Pretty printer ------------------------------------------------------------------

local function is_array(t)
  if t == M.empty_array or getmetatable(t) == array_mt then
    return true
  end
  local n = #t
  if n == 0 then
    return false
  end
  local count = 0
  for _ in pairs(t) do
    count = count + 1
  end
  return count == n
end

local function key_order(a, b)
  local ta, tb = type(a), type(b)
  if ta == tb and (ta == "string" or ta == "number") then
    return a < b
  end
  return tostring(a) < tostring(b)
end

local function scalar_text(v)
  if v == M.null then
    return "null"
  end
  local tv = type(v)
  if tv == "string" then
    return M.encode(v)
  elseif tv == "number" or tv == "boolean" then
    return M.encode(v)
  end
  error("Cannot serialise " .. tv .. ": type not supported", 0)
end

local function pretty_value(v, indent, depth, out, seen)
  if type(v) ~= "table" then
    out[#out + 1] = scalar_text(v)
    return
  end
  enter(v, depth, seen)
  local inner = indent .. "  "
  if is_array(v) then
    local n = #v
    if n == 0 then
      out[#out + 1] = "[]"
    else
      out[#out + 1] = "[\n"
      for i = 1, n do
        out[#out + 1] = inner
        local item = v[i]
        if item == nil then
          item = M.null
        end
        pretty_value(item, inner, depth + 1, out, seen)
        out[#out + 1] = i < n and ",\n" or "\n"
      end
      out[#out + 1] = indent .. "]"
    end
  else
    local keys = {}
    for k in pairs(v) do
      local tk = type(k)
      if tk ~= "string" and tk ~= "number" then
        error("Cannot serialise table: key of type " .. tk, 0)
      end
      keys[#keys + 1] = k
    end
    table.sort(keys, key_order)
    if #keys == 0 then
      out[#out + 1] = "{}"
    else
      out[#out + 1] = "{\n"
      for i, k in ipairs(keys) do
        local name = type(k) == "string" and k or tostring(k)
        out[#out + 1] = inner .. M.encode(name) .. ": "
        pretty_value(v[k], inner, depth + 1, out, seen)
        out[#out + 1] = i < #keys and ",\n" or "\n"
      end
      out[#out + 1] = indent .. "}"
    end
  end
  seen[v] = nil
end

function M.pretty(v)
  local out = {}
  pretty_value(v, "", 1, out, {})
  return table.concat(out)
end

return M
