-- The listener's own limits (issue 8, item 3), on a fox.http server in this process:
-- a total deadline for reading a request (slow-loris clients that drip their headers or
-- body are cut off, while valid requests keep being answered), a cap on concurrent
-- connections (one more is closed at once, thousands tried), and the replies the
-- listener sends itself (413 over max_body) counted. The hostile clients are
-- tests/integration/hostile_clients.js (loopback only, bounded in count and time).
local http = require("fox.http")
local json = require("fox.json")
local proc = require("helpers.proc")
local sys = require("fox.sys")
local task = require("fox.task")

-- Slower machines (ASan, valgrind, a loaded CI box) only stretch the waits below.
local SLOW = sys.getenv("FOX_SANITIZED") and 4 or 1

-- Starts hostile_clients.js against port; returns a function that waits for its summary.
local function hostile(port, mode, n, seconds)
  local out = proc.tmpdir("listener") .. "/out"
  local cmd = ("node %s --port %d --mode %s --connections %d --seconds %d --parent-pid %d > %s 2>&1 &"):format(
    proc.quote(proc.ROOT .. "/tests/integration/hostile_clients.js"), port, mode, n, seconds, sys.pid(),
    proc.quote(out))
  assert(os.execute(cmd))
  return function()
    local line = proc.wait_for(function()
      local s = proc.read_file(out)
      return s and s:match("(%b{})%s*$")
    end, seconds + 20, 0.1)
    assert(line, "hostile_clients.js did not finish: " .. tostring(proc.read_file(out)))
    return json.decode(line)
  end
end

local function serve(opts)
  local calls = 0
  opts.host = "127.0.0.1"
  opts.port = 0
  opts.handler = function(req)
    calls = calls + 1
    return { status = 200, body = "ok " .. req.method .. "\n" }
  end
  local server = assert(http.listen(opts))
  return server, function() return calls end
end

local function get(server)
  return http.request({ url = ("http://127.0.0.1:%d/"):format(server.port), timeout = 5 * SLOW })
end

describe("listener limits", function()
  teardown(function() proc.cleanup() end)

  for _, mode in ipairs({ "slowloris", "slowbody" }) do
    it(("cuts clients that drip their %s at request_timeout; valid requests keep flowing"):format(
      mode == "slowloris" and "headers" or "body"), function()
      local server, calls = serve({ request_timeout = 1, timeout = 20 })
      local before = http.stats()
      local n = 40
      local done = hostile(server.port, mode, n, 4 * SLOW)
      -- The drips (a byte every 500 ms) never let the idle timeout (20 s) fire: only the
      -- total deadline can end them. Meanwhile valid requests are answered.
      for _ = 1, 8 do
        local res, err = get(server)
        assert.equals(200, res and res.status, tostring(err))
        task.sleep(0.25)
      end
      local r = done()
      assert.equals(n, r.opened)
      assert.equals(n, r.closed_by_server, "cut by the server: " .. json.encode(r))
      local after = http.stats()
      assert.equals(n, after.requests_timed_out - before.requests_timed_out)
      assert.equals(8, calls())
      server:close()
    end)
  end

  it("closes connections over max_connections at once, with 3000 tried", function()
    local cap = 100
    local server = serve({ max_connections = cap, request_timeout = 30 * SLOW, timeout = 30 * SLOW })
    local before = http.stats()
    local n = 3000
    local done = hostile(server.port, "idle", n, 3 * SLOW)
    local peak = 0
    local full = proc.wait_for(function()
      local open = http.stats().connections - before.connections
      if open > peak then peak = open end
      return http.stats().connections_rejected - before.connections_rejected >= n - cap
    end, 20 * SLOW, 0.05)
    assert.truthy(full, "rejected: " .. (http.stats().connections_rejected - before.connections_rejected))
    -- Full: a new client's connection is closed without a reply, not served.
    local res, err = get(server)
    assert.is_nil(res, "served over the cap")
    assert.is_string(err)
    local r = done()
    assert.equals(n, r.opened)
    assert.equals(n - cap, r.closed_by_server, json.encode(r))
    assert.is_true(peak <= cap, "open connections peaked at " .. peak)
    local after = http.stats()
    assert.equals(n - cap + 1, after.connections_rejected - before.connections_rejected)
    assert.equals(cap, after.connections_accepted - before.connections_accepted)
    -- Once the clients are gone, so are their connections (the gauge comes back), and a
    -- valid request is served again.
    assert.truthy(proc.wait_for(function() return http.stats().connections == before.connections end, 10 * SLOW),
      "connections open: " .. http.stats().connections)
    local ok = get(server)
    assert.equals(200, ok and ok.status)
    server:close()
  end)

  it("counts the 413 it sends itself for a body over max_body, on a new or a kept-alive connection", function()
    local server, calls = serve({ max_body = 1000 })
    local url = ("http://127.0.0.1:%d/"):format(server.port)
    local function post(n)
      return http.request({ method = "POST", url = url, body = ("x"):rep(n), timeout = 5 * SLOW })
    end
    local before = http.stats()
    local res = post(5000)
    assert.equals(413, res and res.status)
    assert.equals(0, calls(), "the handler saw the oversized request")
    local after = http.stats()
    assert.equals(1, (after.listener_replies[413] or 0) - (before.listener_replies[413] or 0))
    -- The application's own answers are not counted there; then an oversized body on
    -- the connection kept alive after it (over 1 MiB: curl asks "Expect: 100-continue",
    -- whose interim answer is no reply either).
    assert.equals(200, post(10).status)
    assert.same(after.listener_replies, http.stats().listener_replies)
    assert.equals(413, post(2 * 1024 * 1024).status)
    local last = http.stats()
    assert.equals(2, (last.listener_replies[413] or 0) - (before.listener_replies[413] or 0))
    assert.is_nil(last.listener_replies[100])
    assert.equals(1, calls())
    server:close()
  end)

  it("rejects bad limits", function()
    assert.has_error(function() http.listen({ port = 0, max_connections = 0, handler = function() end }) end)
    assert.has_error(function() http.listen({ port = 0, request_timeout = -1, handler = function() end }) end)
  end)
end)
