-- The environment as fox's clients read it: a variable set to "" counts as unset, and a
-- secret comes from NAME or the file named by NAME_FILE (fox.sys.secret).
local sys = require("fox.sys")
local log = require("fox.log")

local M = {}

--- NAME's value; nil when it is unset or empty.
function M.get(name)
  local v = sys.getenv(name)
  if v == nil or v == "" then return nil end
  return v
end

--- The secret NAME without surrounding white space, registered for log redaction, and
-- the variable it came from ("NAME" or "NAME_FILE"). Returns value, source; or nil,
-- source when that holds nothing but white space (an empty file); or nil, source, err
-- when NAME_FILE cannot be read; or nil when neither is set.
function M.secret(name)
  local raw, err = sys.secret(name)
  if raw == nil and err == nil then return nil end
  local source = M.get(name) and name or (name .. "_FILE")
  if raw == nil then return nil, source, err end
  local v = raw:gsub("^%s+", ""):gsub("%s+$", "")
  if v == "" then return nil, source end
  log.redact(v)
  return v, source
end

return M
