-- `fox investigate INC-123 [--dry-run] [--format text|json|slack]`: runs the playbook
-- on one incident now and prints its findings.
local json = require("fox.json")
local sys = require("fox.sys")
local cli = require("fox.playbook_cli")

local USAGE = [[
usage: fox investigate INCIDENT [--dry-run] [--format text|json|slack]
                       [--config FILE] [--state-dir DIR] [--playbook FILE]

Runs the investigation playbook on one incident now (INC-123, 123 or its full ID) and
prints the findings. Without --dry-run it also does what `fox serve` would: posts the
"investigating" message and the findings to the incident's Slack channel and adds the
timeline entries, each at most once (a message already recorded as posted in the
state directory is not posted again).

options:
  --dry-run          post nothing, write nothing; only print the findings
  --format F         text (default), json (the findings), slack (the Block Kit message)
  --config FILE      fox.conf.lua (default $FOX_CONFIG, else ./fox.conf.lua)
  --state-dir DIR    durable state (default: the config's state_dir, else ./var)
  --playbook FILE    a playbook to run instead of the configured one

environment: INCIDENT_IO_API_KEY[_FILE], INCIDENT_IO_BASE_URL, INCIDENT_IO_WRITE_API_KEY
(timeline entries), SLACK_BOT_TOKEN[_FILE], SLACK_API_URL, FOX_AI_URL, FOX_AI_MODEL,
FOX_AI_API_KEY.
exit status: 0 ok, 1 the investigation or its posting failed, 2 usage or invalid input.
]]

local SPEC = { ["dry-run"] = "flag", format = "value", config = "value", ["state-dir"] = "value",
               playbook = "value" }

local FORMATS = { text = true, json = true, slack = true }

local function usage_error(msg)
  return cli.usage_error("fox investigate", msg)
end

local function render(f, format)
  if format == "json" then
    return require("fox.render.json").findings(f, { pretty = sys.isatty(1) }) .. "\n"
  elseif format == "slack" then
    local msg = require("fox.render.slack").findings(f)
    local s = sys.isatty(1) and json.pretty(msg) or json.encode(msg)
    return s .. "\n"
  end
  return require("fox.render.text").findings(f)
end

return function(argv)
  local opts, pos = cli.args("fox investigate", argv, SPEC, USAGE)
  if not opts then return pos end
  if #pos ~= 1 then return usage_error(#pos == 0 and "which incident? (INC-123)" or "one incident at a time") end
  local format = opts.format or "text"
  if not FORMATS[format] then return usage_error("--format must be text, json or slack (got " .. format .. ")") end
  local seg, msg = require("fox.incidentio").parse_reference(pos[1])
  if not seg then return usage_error(msg) end

  local cfg, run = cli.load("fox investigate", opts)
  if not cfg then return 2 end
  local ctx = cli.context(cfg, { dry_run = opts.dry_run == true })
  local ok, f, err = pcall(run, pos[1], ctx)
  if not ok then
    io.stderr:write("fox investigate: the playbook failed: ", tostring(f), "\n")
    return 1
  end
  if type(f) ~= "table" then
    io.stderr:write("fox investigate: ", tostring(err or "the playbook returned no findings"), "\n")
    return (type(err) == "table" and err.kind == "invalid_input") and 2 or 1
  end
  io.write(render(f, format))
  local d = f.delivery
  if d and not d.dry_run then
    if d.posted and d.posted.findings then
      io.stderr:write("posted the findings to Slack channel ", tostring(d.posted.findings.channel),
        " (ts ", tostring(d.posted.findings.ts), ")\n")
    end
    for _, e in ipairs(d.errors or {}) do io.stderr:write("fox investigate: ", e, "\n") end
    if #(d.errors or {}) > 0 and not (d.posted and d.posted.findings) then return 1 end
  end
  return 0
end
