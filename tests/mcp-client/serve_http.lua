-- A minimal host for fox's Streamable HTTP MCP transport, mounted the way `fox serve`
-- mounts it: POST/GET/DELETE /mcp -> require("fox.mcp").handle_http(req).
-- usage: FOX_MCP_TOKEN=... fox run tests/mcp-client/serve_http.lua PORT_FILE
-- Listens on 127.0.0.1 (any free port, written to PORT_FILE) until SIGTERM or SIGINT.
local http = require("fox.http")
local mcp = require("fox.mcp")
local signal = require("fox.signal")

local port_file = ...
assert(port_file, "usage: fox run serve_http.lua PORT_FILE")
assert(mcp.http_enabled(), "set FOX_MCP_TOKEN")

local server = assert(http.listen({
  host = "127.0.0.1",
  port = 0,
  max_body = mcp.MAX_MESSAGE,
  handler = function(req)
    if req.path == "/mcp" then return mcp.handle_http(req) end
    return { status = 404, headers = { ["content-type"] = "text/plain" }, body = "not found\n" }
  end,
}))
local f = assert(io.open(port_file .. ".tmp", "w"))
f:write(tostring(server.port), "\n")
f:close()
assert(os.rename(port_file .. ".tmp", port_file))
signal.wait("TERM", "INT")
server:close()
