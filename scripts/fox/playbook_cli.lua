-- What `fox investigate` and `fox replay` share: option parsing, loading the config and
-- the playbook, and the ctx a playbook gets outside the daemon.
local config = require("fox.config")
local incidentio = require("fox.incidentio")

local M = {}

--- Parses argv against spec {name = "value" | "flag"} (names with "-"). Accepts
-- --name value, --name=value, bare flags, and positional arguments.
-- Returns opts (keys with "_"), positional, or nil, message; help = true on -h/--help.
function M.parse(argv, spec)
  local opts, positional = {}, {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "-h" or a == "--help" then
      opts.help = true
    elseif a:match("^%-%-") then
      local name, value = a:match("^%-%-([%w-]+)=(.*)$")
      name = name or a:match("^%-%-([%w-]+)$")
      local kind = name and spec[name]
      if not kind then return nil, "unknown option " .. a end
      if kind == "flag" then
        if value ~= nil then return nil, "--" .. name .. " takes no value" end
        opts[name:gsub("-", "_")] = true
      else
        if value == nil then
          i = i + 1
          value = argv[i]
          if value == nil then return nil, "--" .. name .. " needs a value" end
        end
        opts[name:gsub("-", "_")] = value
      end
    else
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  return opts, positional
end

--- Writes a usage error of command ("fox replay") to stderr; returns exit status 2.
function M.usage_error(command, msg)
  io.stderr:write(command, ": ", msg, "\n", "run '", command, " --help' for usage\n")
  return 2
end

--- The command line of command: M.parse, and -h/--help prints usage. Returns opts,
-- positional — or nil and the exit status when that is all (0 after help, 2 after a
-- usage error).
function M.args(command, argv, spec, usage)
  local opts, positional = M.parse(argv or {}, spec)
  if not opts then return nil, M.usage_error(command, positional) end
  if opts.help then
    io.write(usage)
    return nil, 0
  end
  return opts, positional
end

--- Loads the config (--config, $FOX_CONFIG, ./fox.conf.lua or defaults).
-- Returns cfg or nil, message.
function M.load_config(opts)
  local overrides = {}
  if opts.state_dir then overrides.state_dir = opts.state_dir end
  local path = config.resolve_path(opts.config)
  local cfg, errs = config.load(path, { overrides = overrides })
  if not cfg then return nil, table.concat(errs, "\n") end
  return cfg
end

--- The playbook: --playbook FILE (or module), else the config's.
-- Returns the run function or nil, message.
function M.load_playbook(spec, cfg)
  spec = spec or cfg.playbook or "playbooks.investigate"
  local ok, pb = pcall(config.load_code, spec, cfg)
  if not ok then return nil, "cannot load the playbook " .. spec .. ": " .. tostring(pb) end
  if type(pb) == "function" then return pb end
  if type(pb) == "table" and type(pb.run) == "function" then
    return function(incident, ctx) return pb.run(incident, ctx) end
  end
  return nil, "the playbook " .. spec .. " must return a function or a table with run(incident, ctx)"
end

--- The config and the playbook of command's run (M.load_config, M.load_playbook).
-- Returns cfg, run — or nil once why is written to stderr (the command exits 2).
function M.load(command, opts)
  local cfg, cerr = M.load_config(opts)
  if not cfg then
    io.stderr:write(cerr, "\n")
    return nil
  end
  local run, perr = M.load_playbook(opts.playbook, cfg)
  if not run then
    io.stderr:write(command, ": ", perr, "\n")
    return nil
  end
  return cfg, run
end

--- The ctx of a run outside the daemon.
function M.context(cfg, fields)
  local ctx = { config = cfg, options = cfg.playbook_options or {}, client = incidentio.new(cfg.incidentio) }
  for k, v in pairs(fields or {}) do ctx[k] = v end
  return ctx
end

return M
