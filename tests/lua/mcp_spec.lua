-- fox.mcp (the MCP server) and fox.stdio (its non-blocking stdio binding).
-- In-process: the protocol dispatcher with adversarial messages, concurrent calls and
-- cancellation. Out of process: `fox mcp` over real pipes (garbage, a huge line,
-- concurrency, cancellation, shutdown) and fox.stdio's line reading and back-pressure.
local mcp = require("fox.mcp")
local json = require("fox.json")
local task = require("fox.task")
local tools = require("fox.tools")
local http = require("fox.http")
local incidentio = require("fox.incidentio")
local proc = require("helpers.proc")

local FOX = proc.FOX
local wait_for = proc.wait_for
local tmpname, write_file, shell_quote = proc.tmpname, proc.write_file, proc.quote
require("fox.log").set_level("warn") -- the calls below log one line each

-- Test tools, registered in this process only.
local finished = {}
tools.register({
  name = "test_slow",
  description = "Sleeps, then answers with its tag.",
  input_schema = {
    type = "object",
    properties = { ms = { type = "integer", minimum = 0, maximum = 10000 }, tag = { type = "string" } },
    required = { "ms", "tag" },
    additionalProperties = false,
  },
  handler = function(args)
    task.sleep(args.ms / 1000)
    finished[args.tag] = true
    return { tag = args.tag, slept_ms = args.ms }
  end,
})
tools.register({
  name = "test_api_failure",
  description = "Fails like an API call that was rate limited.",
  input_schema = { type = "object", properties = {} },
  handler = function()
    return nil, incidentio.error("rate_limited", "incident.io rate limit exceeded: retry after 30 s")
  end,
})
tools.register({
  name = "test_raises",
  description = "Raises a Lua error.",
  input_schema = { type = "object", properties = {} },
  handler = function() error("boom in the handler") end,
})

-- A session and a `send(line)` that collects what it answers.
local function new_session(opts)
  local s = mcp.session(opts)
  local out = {}
  local function send(line)
    s:handle_text(line, function(resp) out[#out + 1] = resp end)
  end
  return s, out, send
end

local function req(id, method, params)
  return json.encode({ jsonrpc = "2.0", id = id, method = method, params = params })
end

local function initialized_session(opts)
  local s, out, send = new_session(opts)
  send(req(0, "initialize", { protocolVersion = "2025-11-25", capabilities = {},
    clientInfo = { name = "spec", version = "1" } }))
  send(json.encode({ jsonrpc = "2.0", method = "notifications/initialized" }))
  assert.equals(1, #out)
  assert.is_table(out[1].result)
  table.remove(out, 1)
  return s, out, send
end

local function by_id(out)
  local m = {}
  for _, r in ipairs(out) do m[r.id] = r end
  return m
end

describe("fox.mcp protocol", function()
  it("answers garbage with a parse error (id null) and keeps serving", function()
    local _, out, send = initialized_session()
    for _, garbage in ipairs({ "garbage", "{", '{"jsonrpc":"2.0",', "\1\2\3", "[1,2", '{"a":1}}' }) do
      send(garbage)
    end
    assert.equals(6, #out)
    for _, r in ipairs(out) do
      assert.equals(-32700, r.error.code)
      assert.equals(json.null, r.id)
      assert.matches("^Parse error", r.error.message)
    end
    send(req(5, "ping"))
    assert.same({}, out[7].result)
    assert.equals(5, out[7].id)
  end)

  it("ignores blank lines", function()
    local _, out, send = initialized_session()
    send("")
    send("   \r")
    assert.equals(0, #out)
  end)

  it("rejects messages that are not requests with invalid request", function()
    local _, out, send = initialized_session()
    send("42")
    send('"ping"')
    send("null")
    send("{}")
    send('{"id":1,"method":"ping"}')                      -- no jsonrpc
    send('{"jsonrpc":"1.0","id":2,"method":"ping"}')      -- wrong version
    send('{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}') -- id must be string or number
    send('{"jsonrpc":"2.0","id":true,"method":"ping"}')
    send('{"jsonrpc":"2.0","id":3,"method":42}')
    send('{"jsonrpc":"2.0","id":4,"method":"ping","params":"x"}')
    assert.equals(10, #out)
    for _, r in ipairs(out) do assert.equals(-32600, r.error.code) end
    assert.equals(1, out[5].id)
    assert.equals(2, out[6].id)
    assert.equals(json.null, out[7].id)
    assert.equals(3, out[9].id)
    assert.equals(4, out[10].id)
    send(req("after", "ping"))
    assert.equals("after", out[11].id)
  end)

  it("answers unknown methods with method not found, and ignores unknown notifications", function()
    local _, out, send = initialized_session()
    send(req(1, "resources/list"))
    send(req(2, "prompts/get", { name = "x" }))
    send(req(3, "no/such/method"))
    send(json.encode({ jsonrpc = "2.0", method = "notifications/whatever" }))
    send(json.encode({ jsonrpc = "2.0", method = "notifications/cancelled", params = { requestId = 99 } }))
    assert.equals(3, #out)
    for i, r in ipairs(out) do
      assert.equals(i, r.id)
      assert.equals(-32601, r.error.code)
    end
  end)

  it("ignores responses sent by the client", function()
    local _, out, send = initialized_session()
    send('{"jsonrpc":"2.0","id":7,"result":{}}')
    send('{"jsonrpc":"2.0","id":8,"error":{"code":-1,"message":"x"}}')
    assert.equals(0, #out)
  end)

  it("refuses requests before initialize but answers ping", function()
    local _, out, send = new_session()
    send(req(1, "tools/list"))
    send(req(2, "tools/call", { name = "test_slow", arguments = { ms = 0, tag = "early" } }))
    send(req(3, "ping"))
    assert.equals(3, #out)
    assert.equals(-32600, out[1].error.code)
    assert.matches("initialize", out[1].error.message)
    assert.equals(-32600, out[2].error.code)
    assert.same({}, out[3].result)
    assert.is_nil(finished.early)
  end)

  it("negotiates the protocol version", function()
    for _, v in ipairs({ "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05" }) do
      local _, out, send = new_session()
      send(req(1, "initialize", { protocolVersion = v, capabilities = {}, clientInfo = { name = "c", version = "1" } }))
      assert.equals(v, out[1].result.protocolVersion)
    end
    local _, out, send = new_session()
    send(req(1, "initialize", { protocolVersion = "1999-01-01", capabilities = {} }))
    local r = out[1].result
    assert.equals("2025-11-25", r.protocolVersion)
    assert.equals("fox", r.serverInfo.name)
    assert.is_string(r.serverInfo.version)
    assert.same({ tools = { listChanged = false } }, r.capabilities)
  end)

  it("answers a bad initialize with invalid params, and a second one with invalid request", function()
    local _, out, send = new_session()
    send(req(1, "initialize", { protocolVersion = 20251125 }))
    send(req(2, "initialize", {}))
    send(req(3, "initialize", { protocolVersion = "2025-06-18", capabilities = "all" }))
    assert.equals(-32602, out[1].error.code)
    assert.equals(-32602, out[2].error.code)
    assert.equals(-32602, out[3].error.code)
    send(req(4, "tools/list"))
    assert.equals(-32600, out[4].error.code) -- still not initialized
    send(req(5, "initialize", { protocolVersion = "2025-06-18" }))
    assert.equals("2025-06-18", out[5].result.protocolVersion)
    send(req(6, "initialize", { protocolVersion = "2025-06-18" }))
    assert.equals(-32600, out[6].error.code)
  end)

  it("lists the registry tools and investigate_incident with schemas and annotations", function()
    local _, out, send = initialized_session()
    send(req(1, "tools/list", {}))
    local listed = {}
    for _, t in ipairs(out[1].result.tools) do listed[t.name] = t end
    for _, t in ipairs(tools.list()) do
      assert.is_table(listed[t.name], t.name)
      assert.equals(t.description, listed[t.name].description)
      assert.same(t.input_schema, listed[t.name].inputSchema)
      assert.is_true(listed[t.name].annotations.readOnlyHint)
    end
    local inv = listed.investigate_incident
    assert.is_table(inv)
    assert.equals("object", inv.inputSchema.type)
    assert.same({ "incident_id" }, inv.inputSchema.required)
    assert.is_true(inv.annotations.readOnlyHint)
    -- the JSON form: tools is an array, required an array
    local text = json.encode(out[1])
    assert.matches('"tools":%[', text)
    assert.matches('"required":%["incident_id"%]', text)
  end)

  it("answers wrong param types with invalid params", function()
    local _, out, send = initialized_session()
    send(req(1, "tools/call", { name = 42 }))
    send(req(2, "tools/call", {}))
    send(req(3, "tools/call", { name = "test_slow", arguments = "ms=1" }))
    send(req(4, "tools/call", { name = "test_slow", arguments = { 1, 2 } }))
    send(req(5, "tools/call", { name = "no_such_tool", arguments = {} }))
    send(req(6, "tools/list", { cursor = 5 }))
    send(req(7, "tools/list", { cursor = "page2" }))
    send('{"jsonrpc":"2.0","id":8,"method":"tools/list","params":[1]}')
    assert.equals(8, #out)
    for i, r in ipairs(out) do
      assert.equals(i, r.id)
      assert.equals(-32602, r.error.code, r.error.message)
    end
    assert.matches("Unknown tool", out[5].error.message)
    assert.matches("test_slow", out[5].error.message) -- the known tools are named
  end)

  it("returns a failing tool as a result with isError and the actionable message", function()
    local _, out, send = initialized_session()
    send(req(1, "tools/call", { name = "test_slow", arguments = { ms = "soon", tag = "x" } }))
    send(req(2, "tools/call", { name = "test_slow", arguments = { tag = "x" } }))
    send(req(3, "tools/call", { name = "test_api_failure", arguments = {} }))
    send(req(4, "tools/call", { name = "test_raises" }))
    send(req(5, "tools/call", { name = "test_slow", arguments = { ms = 0, tag = "x", extra = 1 } }))
    assert.is_true(wait_for(function() return #out == 5 end))
    local r = by_id(out)
    for i = 1, 5 do
      assert.is_true(r[i].result.isError, "call " .. i)
      assert.equals("text", r[i].result.content[1].type)
      assert.is_nil(r[i].error)
    end
    assert.matches("ms must be an integer", r[1].result.content[1].text)
    assert.matches("ms is required", r[2].result.content[1].text)
    assert.matches("rate limit exceeded: retry after 30 s", r[3].result.content[1].text)
    assert.matches("boom in the handler", r[4].result.content[1].text)
    assert.matches("unknown field extra", r[5].result.content[1].text)
  end)

  it("returns a tool's data as text and structuredContent", function()
    local _, out, send = initialized_session()
    send(req("a", "tools/call", { name = "test_slow", arguments = { ms = 0, tag = "data" } }))
    assert.is_true(wait_for(function() return #out == 1 end))
    local result = out[1].result
    assert.equals("a", out[1].id)
    assert.is_false(result.isError)
    assert.same({ tag = "data", slept_ms = 0 }, result.structuredContent)
    assert.same(result.structuredContent, json.decode(result.content[1].text))
  end)

  it("runs several calls at once, each answering when it is done", function()
    local _, out, send = initialized_session()
    local t0 = task.now()
    send(req(1, "tools/call", { name = "test_slow", arguments = { ms = 300, tag = "c1" } }))
    send(req(2, "tools/call", { name = "test_slow", arguments = { ms = 300, tag = "c2" } }))
    send(req(3, "tools/call", { name = "test_slow", arguments = { ms = 300, tag = "c3" } }))
    send(req(4, "tools/call", { name = "test_slow", arguments = { ms = 50, tag = "c4" } }))
    send(req(5, "ping"))
    assert.equals(5, out[1].id) -- ping does not wait for the calls
    assert.is_true(wait_for(function() return #out == 5 end))
    local dt = task.now() - t0
    assert.is_true(dt < 0.8, "four calls took " .. dt .. " s")
    assert.equals(4, out[2].id) -- the short call answered first
    for i = 1, 4 do assert.equals("c" .. i, by_id(out)[i].result.structuredContent.tag) end
  end)

  it("cancels a call on notifications/cancelled and sends no response for it", function()
    local s, out, send = initialized_session()
    send(req(1, "tools/call", { name = "test_slow", arguments = { ms = 300, tag = "cancel-me" } }))
    send(req(2, "tools/call", { name = "test_slow", arguments = { ms = 100, tag = "keep-me" } }))
    task.sleep(0.02)
    send(json.encode({ jsonrpc = "2.0", method = "notifications/cancelled",
      params = { requestId = 1, reason = "user pressed stop" } }))
    task.sleep(0.5)
    assert.equals(1, #out)
    assert.equals(2, out[1].id)
    assert.is_nil(finished["cancel-me"])
    assert.is_true(finished["keep-me"])
    assert.is_nil(next(s.in_flight))
    -- the id can be used again, and the server still serves
    send(req(1, "tools/call", { name = "test_slow", arguments = { ms = 0, tag = "again" } }))
    assert.is_true(wait_for(function() return #out == 2 end))
    assert.equals("again", out[2].result.structuredContent.tag)
  end)

  it("refuses an id already used by a call in flight", function()
    local _, out, send = initialized_session()
    send(req(9, "tools/call", { name = "test_slow", arguments = { ms = 100, tag = "first9" } }))
    send(req(9, "tools/call", { name = "test_slow", arguments = { ms = 0, tag = "second9" } }))
    assert.equals(1, #out)
    assert.equals(-32600, out[1].error.code)
    assert.is_true(wait_for(function() return #out == 2 end))
    assert.equals("first9", out[2].result.structuredContent.tag)
    -- 9 and "9" are different ids
    send(req(9, "tools/call", { name = "test_slow", arguments = { ms = 50, tag = "n" } }))
    send(req("9", "tools/call", { name = "test_slow", arguments = { ms = 50, tag = "s" } }))
    assert.is_true(wait_for(function() return #out == 4 end))
  end)

  it("ends a call that runs past its deadline with an isError result", function()
    local _, out, send = initialized_session({ call_timeout = 0.1 })
    send(req(1, "tools/call", { name = "test_slow", arguments = { ms = 2000, tag = "too-slow" } }))
    assert.is_true(wait_for(function() return #out == 1 end, 2))
    assert.is_true(out[1].result.isError)
    assert.matches("did not finish within 0.1 s", out[1].result.content[1].text)
  end)

  it("answers a batch with an array, and an empty batch with invalid request", function()
    local _, out, send = initialized_session()
    send('[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/x"},'
      .. '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_slow",'
      .. '"arguments":{"ms":20,"tag":"b"}}},{"jsonrpc":"2.0","id":3,"method":"nope"}]')
    assert.is_true(wait_for(function() return #out == 1 end))
    local batch = out[1]
    assert.equals(3, #batch)
    local r = by_id(batch)
    assert.same({}, r[1].result)
    assert.equals("b", r[2].result.structuredContent.tag)
    assert.equals(-32601, r[3].error.code)
    send("[]")
    assert.equals(-32600, out[2].error.code)
    send('[{"jsonrpc":"2.0","method":"notifications/initialized"}]')
    task.sleep(0.02)
    assert.equals(2, #out)
  end)

  it("investigate_incident validates its input before running the playbook", function()
    local _, out, send = initialized_session()
    send(req(1, "tools/call", { name = "investigate_incident", arguments = {} }))
    send(req(2, "tools/call", { name = "investigate_incident", arguments = { incident_id = "not an id!" } }))
    assert.is_true(wait_for(function() return #out == 2 end))
    local r = by_id(out)
    assert.is_true(r[1].result.isError)
    assert.matches("incident_id is required", r[1].result.content[1].text)
    assert.is_true(r[2].result.isError)
    assert.matches("incident_id", r[2].result.content[1].text)
  end)
end)

describe("fox.mcp over HTTP (handle_http)", function()
  local TOKEN = "spec-mcp-token-0123456789"
  local real_token = mcp.http_token

  local function post(body, headers)
    local h = { ["content-type"] = "application/json", accept = "application/json, text/event-stream",
                authorization = "Bearer " .. TOKEN }
    for k, v in pairs(headers or {}) do
      if v == false then h[k] = nil else h[k] = v end -- false: leave the header out
    end
    return mcp.handle_http({ method = "POST", path = "/mcp", headers = h, body = body })
  end

  local function open_session()
    local r = post(req(1, "initialize", { protocolVersion = "2025-06-18", capabilities = {},
      clientInfo = { name = "spec-http", version = "1" } }))
    assert.equals(200, r.status)
    local sid = r.headers["mcp-session-id"]
    assert.matches("^%x+$", sid)
    assert.equals(202, post(json.encode({ jsonrpc = "2.0", method = "notifications/initialized" }),
      { ["mcp-session-id"] = sid }).status)
    return sid
  end

  it("is off without FOX_MCP_TOKEN", function()
    if real_token() then return end
    local r = mcp.handle_http({ method = "POST", headers = {}, body = req(1, "ping") })
    assert.equals(404, r.status)
    assert.matches("FOX_MCP_TOKEN", r.body)
  end)

  describe("with a token", function()
    setup(function() mcp.http_token = function() return TOKEN end end)
    teardown(function() mcp.http_token = real_token end)

    it("needs the bearer token", function()
      assert.equals(401, post(req(1, "ping"), { authorization = false }).status)
      local r = post(req(1, "ping"), { authorization = "Bearer " .. TOKEN .. "x" })
      assert.equals(401, r.status)
      assert.matches("Bearer", r.headers["www-authenticate"])
      assert.equals(401, post(req(1, "ping"), { authorization = "Basic " .. TOKEN }).status)
      assert.equals(401, post(req(1, "ping"), { authorization = "Bearer" }).status)
    end)

    it("refuses foreign origins, other methods and other media types", function()
      assert.equals(403, post(req(1, "ping"), { origin = "http://evil.example" }).status)
      local get = mcp.handle_http({ method = "GET", headers = { authorization = "Bearer " .. TOKEN } })
      assert.equals(405, get.status)
      assert.matches("POST", get.headers.allow)
      assert.equals(415, post(req(1, "ping"), { ["content-type"] = "text/plain" }).status)
      assert.equals(406, post(req(1, "ping"), { accept = "text/html" }).status)
      assert.equals(400, post(req(1, "ping"), { ["mcp-protocol-version"] = "1999-01-01" }).status)
      local big = post(string.rep(" ", mcp.MAX_MESSAGE + 1))
      assert.equals(413, big.status)
    end)

    it("opens a session on initialize and needs it afterwards", function()
      local sid = open_session()
      assert.equals(400, post(req(2, "ping")).status)
      assert.equals(404, post(req(2, "ping"), { ["mcp-session-id"] = "abcdef" }).status)
      local r = post(req(2, "tools/list"), { ["mcp-session-id"] = sid, ["mcp-protocol-version"] = "2025-06-18" })
      assert.equals(200, r.status)
      assert.equals("application/json", r.headers["content-type"])
      assert.is_table(json.decode(r.body).result.tools)
      local bad = post("{nope", { ["mcp-session-id"] = sid })
      assert.equals(400, bad.status)
      assert.equals(-32700, json.decode(bad.body).error.code)
      local del = mcp.handle_http({ method = "DELETE", headers = { authorization = "Bearer " .. TOKEN,
        ["mcp-session-id"] = sid } })
      assert.equals(204, del.status)
      assert.equals(404, post(req(3, "ping"), { ["mcp-session-id"] = sid }).status)
    end)

    it("answers tools/call, several at once, and a cancelled one with an error", function()
      local sid = open_session()
      local h = { ["mcp-session-id"] = sid }
      local results = {}
      local t0 = task.now()
      local calls = {}
      for i = 1, 3 do
        calls[i] = task.spawn(function()
          results[i] = post(req(10 + i, "tools/call", { name = "test_slow",
            arguments = { ms = 200, tag = "h" .. i } }), h)
        end)
      end
      for i = 1, 3 do task.wait(calls[i]) end
      assert.is_true(task.now() - t0 < 0.5, "three HTTP calls at once")
      for i = 1, 3 do
        local body = json.decode(results[i].body)
        assert.equals(10 + i, body.id)
        assert.equals("h" .. i, body.result.structuredContent.tag)
      end
      local slow = task.spawn(function()
        return post(req(20, "tools/call", { name = "test_slow", arguments = { ms = 500, tag = "http-cancel" } }), h)
      end)
      task.sleep(0.05)
      local c = post(json.encode({ jsonrpc = "2.0", method = "notifications/cancelled",
        params = { requestId = 20 } }), h)
      assert.equals(202, c.status)
      local _, r = task.wait(slow)
      assert.equals(-32800, json.decode(r.body).error.code)
      assert.is_nil(finished["http-cancel"])
      local bad = post(req(21, "tools/call", { name = "test_slow", arguments = { ms = "x", tag = "t" } }), h)
      assert.is_true(json.decode(bad.body).result.isError)
    end)
  end)
end)

---------------------------------------------------------------------------
-- out of process: real pipes
---------------------------------------------------------------------------
local function read_file(path)
  return proc.read_file(path) or ""
end

local function lines_of(text)
  local out = {}
  for line in text:gmatch("([^\n]*)\n") do out[#out + 1] = line end
  return out
end

-- A slow stand-in for incident.io: every request waits `delay` seconds, then 404.
local function slow_api(delay)
  local seen = 0
  local srv = assert(http.listen({ host = "127.0.0.1", port = 0, handler = function()
    seen = seen + 1
    task.sleep(delay)
    return { status = 404, headers = { ["content-type"] = "application/json" },
             body = '{"type":"not_found","status":404,"request_id":"r1"}' }
  end }))
  return srv, function() return seen end
end

describe("fox mcp over stdio", function()
  it("serves through garbage, a huge line, concurrency and cancellation, then exits on EOF", function()
    local api, api_seen = slow_api(0.3)
    local out_path, err_path = tmpname(".out"), tmpname(".err")
    local cmd = "INCIDENT_IO_BASE_URL=http://127.0.0.1:" .. api.port .. " INCIDENT_IO_API_KEY=spec-key "
      .. "exec " .. shell_quote(FOX) .. " mcp > " .. out_path .. " 2> " .. err_path
    local child = assert(io.popen(cmd, "w"))
    local function put(line)
      child:write(line, "\n")
      child:flush()
    end
    local function responses()
      local r = {}
      for _, line in ipairs(lines_of(read_file(out_path))) do r[#r + 1] = json.decode(line) end
      return r
    end
    local function response(id)
      for _, r in ipairs(responses()) do
        if r.id == id then return r end
      end
    end

    put("this is not json")
    put(string.rep("x", 5 * 1024 * 1024))                          -- over 4 MiB: discarded
    put('{"jsonrpc":"2.0","id":"big","method":"ping","params":{"pad":"' .. string.rep("y", 5 * 1024 * 1024) .. '"}}')
    put(req(1, "tools/list"))                                        -- before initialize
    put(req(2, "initialize", { protocolVersion = "2025-06-18", capabilities = {},
      clientInfo = { name = "spec", version = "1" } }))
    put(json.encode({ jsonrpc = "2.0", method = "notifications/initialized" }))
    put(req(3, "tools/call", { name = "get_incident_details", arguments = { incident_id = "INC-1" } }))
    put(req(4, "tools/call", { name = "get_incident_details", arguments = { incident_id = "INC-2" } }))
    put(req(5, "tools/call", { name = "get_incident_details", arguments = { incident_id = "INC-3" } }))
    put(req(6, "tools/call", { name = "get_incident_details", arguments = { incident_id = "INC-4" } }))
    put(json.encode({ jsonrpc = "2.0", method = "notifications/cancelled", params = { requestId = 6 } }))
    put(req(7, "no/such/method"))
    put(req(8, "tools/call", { name = "get_incident_details", arguments = { incident_id = true } }))
    local t0 = task.now()
    put(req(9, "ping"))
    assert.is_true(wait_for(function() return response(9) ~= nil end, 10), "ping answered")
    assert.is_true(wait_for(function() return response(3) ~= nil and response(4) ~= nil and response(5) ~= nil end, 10),
      "the three calls answered")
    local dt = task.now() - t0
    -- three 0.3 s calls at once: well under the 0.9 s they would take one after the other
    assert.is_true(dt < 0.85, "three concurrent calls took " .. dt .. " s")

    local closed, how, code = child:close() -- EOF: fox answers what is in flight, then exits
    assert.is_true(closed, "fox mcp ended with " .. tostring(how) .. " " .. tostring(code) .. ": "
      .. read_file(err_path):sub(-2000))
    local rs = responses()
    local text = read_file(out_path)
    -- stdout holds only protocol messages, one per line
    assert.equals(#lines_of(text), #rs)
    assert.equals("\n", text:sub(-1))

    assert.equals(-32700, rs[1].error.code)
    assert.equals(json.null, rs[1].id)
    assert.equals(-32700, rs[2].error.code)
    assert.matches("over 4194304 bytes", rs[2].error.message)
    assert.equals(-32700, rs[3].error.code) -- the huge ping, too, is refused whole
    assert.equals(-32600, response(1).error.code)
    assert.equals("2025-06-18", response(2).result.protocolVersion)
    for id = 3, 5 do
      assert.is_true(response(id).result.isError)
      assert.matches("not found", response(id).result.content[1].text)
    end
    assert.is_nil(response(6)) -- cancelled: no response
    assert.equals(-32601, response(7).error.code)
    assert.is_true(response(8).result.isError)
    assert.matches("incident_id must be a string", response(8).result.content[1].text)
    assert.is_nil(response("big"))
    assert.is_true(api_seen() >= 3)
    -- logs went to stderr
    assert.matches("event=mcp_start", read_file(err_path))
    assert.matches("outcome=cancelled", read_file(err_path))
    api:close()
    os.remove(out_path)
    os.remove(err_path)
  end)

  it("prints its usage with --help and refuses other arguments", function()
    local p = io.popen(shell_quote(FOX) .. " mcp --help")
    local text = p:read("a")
    assert.is_true(p:close())
    assert.matches("usage: fox mcp", text)
    local _, _, code = os.execute(shell_quote(FOX) .. " mcp --bogus </dev/null >/dev/null 2>&1")
    assert.equals(2, code)
  end)

  it("answers requests read from a file and from /dev/null exits at once", function()
    local in_path, out_path = tmpname(".in"), tmpname(".out")
    write_file(in_path, req(1, "initialize", { protocolVersion = "2024-11-05" }) .. "\n"
      .. req(2, "tools/list") .. "\n" .. req(3, "ping")) -- the last line has no newline
    assert.is_true(os.execute(shell_quote(FOX) .. " mcp < " .. in_path .. " > " .. out_path .. " 2>/dev/null"))
    local ls = lines_of(read_file(out_path))
    assert.equals(3, #ls)
    assert.equals("2024-11-05", json.decode(ls[1]).result.protocolVersion)
    assert.is_table(json.decode(ls[2]).result.tools)
    assert.equals(3, json.decode(ls[3]).id)
    assert.is_true(os.execute(shell_quote(FOX) .. " mcp < /dev/null > " .. out_path .. " 2>/dev/null"))
    assert.equals("", read_file(out_path))
    os.remove(in_path)
    os.remove(out_path)
  end)
end)

describe("fox.stdio", function()
  -- Runs `fox run SCRIPT` with its stdin fed by feed(write) and stdout/stderr in files.
  local function run_script(source, feed)
    local script, out_path, err_path = tmpname(".lua"), tmpname(".out"), tmpname(".err")
    write_file(script, source)
    local child = assert(io.popen("exec " .. shell_quote(FOX) .. " run " .. script .. " > " .. out_path
      .. " 2> " .. err_path, "w"))
    feed(function(s) child:write(s); child:flush() end)
    local ok, how, code = child:close()
    local out, err = read_file(out_path), read_file(err_path)
    os.remove(script)
    os.remove(out_path)
    os.remove(err_path)
    return out, err, ok, how, code
  end

  it("yields while waiting for a line, discards over-long lines and reports eof", function()
    -- The child says when it has read the first line (a file appears), so the 0.2 s
    -- pause below is spent with the child waiting for the second, however slowly it
    -- started (ASan on a loaded machine).
    local marker = tmpname(".read")
    local out, err, ok = run_script([[
      local stdio = require("fox.stdio")
      local task = require("fox.task")
      local ticks = 0
      local ticker = task.spawn(function() while true do task.sleep(0.01); ticks = ticks + 1 end end)
      local got = {}
      for i = 1, 8 do
        local line, e = stdio.read_line(10)
        got[#got + 1] = line and ("[" .. line .. "]") or ("<" .. e .. ">")
        if i == 1 then assert(io.open("]] .. marker .. [[", "w")):close() end
      end
      task.cancel(ticker)
      assert(stdio.write(table.concat(got, " ") .. "\n"))
      assert(stdio.write("ticks>5=" .. tostring(ticks > 5) .. "\n"))
      assert(stdio.flush())
    ]], function(write)
      write("one\n")
      assert(wait_for(function()
        local f = io.open(marker)
        return f and f:close()
      end, 60), "the child never read its first line")
      task.sleep(0.2) -- the reader waits; the ticker must keep running
      write("two\r\n" .. string.rep("z", 25))
      task.sleep(0.05)
      write(string.rep("z", 25) .. "\n\nexactly10c\n01234567890\nlast")
    end)
    os.remove(marker)
    assert.is_true(ok, err)
    assert.equals("[one] [two\r] <line too long> [] [exactly10c] <line too long> [last] <eof>\n"
      .. "ticks>5=true\n", out)
  end)

  it("gives each line to one reader, in order, and survives a cancelled reader", function()
    local out, err, ok = run_script([[
      local stdio = require("fox.stdio")
      local task = require("fox.task")
      local got = {}
      local doomed = task.spawn(function() got.doomed = stdio.read_line() end)
      local a = task.spawn(function() got.a = stdio.read_line() end)
      local b = task.spawn(function() got.b = stdio.read_line() end)
      task.sleep(0.05)
      task.cancel(doomed)
      task.wait(a); task.wait(b)
      local c, e = stdio.read_line()
      stdio.write(tostring(got.doomed) .. " " .. got.a .. " " .. got.b .. " " .. tostring(c) .. " " .. e .. "\n")
      stdio.flush()
    ]], function(write)
      task.sleep(0.2)
      write("first\nsecond\n")
    end)
    assert.is_true(ok, err)
    assert.equals("nil first second nil eof\n", out)
  end)

  it("never interleaves writes and keeps the loop running under back-pressure", function()
    local script, out_path, err_path = tmpname(".lua"), tmpname(".out"), tmpname(".err")
    write_file(script, [[
      local stdio = require("fox.stdio")
      local task = require("fox.task")
      local ticks = 0
      local ticker = task.spawn(function() while true do task.sleep(0.01); ticks = ticks + 1 end end)
      local function writer(ch)
        return function()
          for i = 1, 40 do assert(stdio.write(string.rep(ch, 100000 + i) .. "\n")) end
        end
      end
      task.gather({ writer("a"), writer("b"), writer("c") })
      assert(stdio.flush())
      task.cancel(ticker)
      io.stderr:write("ticks=", ticks, "\n")
    ]])
    -- the reader starts late, so fd 1's pipe fills and writers must wait
    local ok = os.execute(shell_quote(FOX) .. " run " .. script .. " 2> " .. err_path
      .. " | (sleep 0.3; cat > " .. out_path .. ")")
    assert.is_true(ok)
    local text = read_file(out_path)
    local n = 0
    for line in text:gmatch("([^\n]*)\n") do
      n = n + 1
      local ch = line:sub(1, 1)
      assert.is_truthy(line:match("^" .. ch .. "+$"), "line " .. n .. " is mixed")
    end
    assert.equals(120, n)
    local ticks = tonumber(read_file(err_path):match("ticks=(%d+)"))
    assert.is_true(ticks and ticks >= 10, "the loop ran while writers waited: ticks=" .. tostring(ticks))
    os.remove(script)
    os.remove(out_path)
    os.remove(err_path)
  end)

  it("writes out what is still queued when the program ends without flush", function()
    local script, out_path = tmpname(".lua"), tmpname(".out")
    write_file(script, [[
      local stdio = require("fox.stdio")
      assert(stdio.write(string.rep("q", 3000000) .. "\n"))
      assert(stdio.write("end\n"))
      require("fox.sys").exit(0) -- at once, as `fox mcp` ends: the loop runs no more
    ]])
    assert.is_true(os.execute(shell_quote(FOX) .. " run " .. script .. " | (sleep 0.3; cat > " .. out_path .. ")"))
    local text = read_file(out_path)
    assert.equals(3000005, #text)
    assert.equals("end\n", text:sub(-4))
    os.remove(script)
    os.remove(out_path)
  end)

  it("reports a closed reader as an error from write", function()
    local script, err_path = tmpname(".lua"), tmpname(".err")
    write_file(script, [[
      local stdio = require("fox.stdio")
      local task = require("fox.task")
      task.sleep(0.2)
      local ok, err
      for _ = 1, 100 do
        ok, err = stdio.write(string.rep("x", 65536) .. "\n")
        if not ok then break end
        task.sleep(0)
      end
      io.stderr:write("result=", tostring(ok), " ", tostring(err), "\n")
    ]])
    os.execute(shell_quote(FOX) .. " run " .. script .. " 2> " .. err_path .. " | head -c 1 > /dev/null")
    assert.matches("result=nil stdout: Broken pipe", read_file(err_path))
    os.remove(script)
    os.remove(err_path)
  end)
end)
