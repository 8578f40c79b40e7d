-- `fox mcp`: serves the incident tools to an AI assistant over the Model Context
-- Protocol on stdio (scripts/fox/mcp.lua). Exits when the client closes stdin.
local mcp = require("fox.mcp")

local USAGE = [[
usage: fox mcp [--help]

Serves fox's incident tools to an MCP client (Claude Desktop, Cursor, IDE agents) over
stdio: JSON-RPC 2.0, one message per line. The client starts `fox mcp` itself; stdout
carries only protocol messages and logs go to stderr. Exits when stdin closes.

Tools: get_incident_details, list_recent_incidents, correlate_incidents (`fox tools`
shows their inputs) and investigate_incident (the playbook in dry run).

Environment: INCIDENT_IO_API_KEY (or INCIDENT_IO_API_KEY_FILE), INCIDENT_IO_BASE_URL,
FOX_CONFIG (the fox.conf.lua investigate_incident runs with),
FOX_LOG_LEVEL, FOX_LOG_FORMAT. See docs/mcp.md for client configuration.
]]

return function(argv)
  argv = argv or {}
  local a = argv[1]
  if a == "--help" or a == "-h" then
    io.write(USAGE)
    return 0
  elseif a ~= nil then
    io.stderr:write("fox mcp: unexpected argument ", a, "\n\n", USAGE)
    return 2
  end
  return mcp.serve_stdio()
end
