-- `fox check`, after every script compiled: loads each module (running its top level,
-- which does no I/O by convention) and reports load errors as file:line: message.
-- Returns the number of failures.
return function(script_dir)
  local failures = 0
  local handle = io.popen("cd '" .. script_dir:gsub("'", "'\\''") .. "' && find . -name '*.lua' | sort")
  local modules = {}
  for path in handle:lines() do
    local mod = path:gsub("^%./", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
    modules[#modules + 1] = { name = mod, path = script_dir .. "/" .. path:gsub("^%./", "") }
  end
  handle:close()
  for _, m in ipairs(modules) do
    if m.name ~= "fox.runtime" then
      local ok, err = pcall(require, m.name)
      if not ok then
        io.stderr:write(m.path, ": cannot load module ", m.name, ": ", tostring(err), "\n")
        failures = failures + 1
      end
    end
  end
  local ok_cfg, config = pcall(require, "fox.config")
  if ok_cfg and type(config) == "table" and config.check then
    failures = failures + config.check()
  end
  return failures
end
