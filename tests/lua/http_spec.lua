-- fox.http inside the real host: a server started with listen and the client talking
-- to it over 127.0.0.1.
local http = require("fox.http")
local task = require("fox.task")

-- Starts a server whose handler is fn; returns it and its base URL.
local function serve(fn, opts)
  opts = opts or {}
  opts.handler = fn
  local srv = assert(http.listen(opts))
  return srv, "http://127.0.0.1:" .. srv.port
end

local function echo(req)
  return {
    status = 200,
    headers = { ["Content-Type"] = "application/json", ["X-Method"] = req.method },
    body = req.method .. " " .. req.path .. " " .. req.query .. " " .. req.body,
  }
end

-- A port nothing listens on: bind an ephemeral one, then close it.
local function closed_port()
  local srv = serve(echo)
  local port = srv.port
  srv:close()
  task.sleep(0.05)
  return port
end

describe("fox.http client and server", function()
  it("round-trips a GET and a POST", function()
    local srv, base = serve(echo)
    local r = assert(http.request({ url = base .. "/hello" }))
    assert.equals(200, r.status)
    assert.equals("GET /hello  ", r.body)

    r = assert(http.request({ method = "POST", url = base .. "/items", body = "a\0b payload" }))
    assert.equals(200, r.status)
    assert.equals("POST /items  a\0b payload", r.body)
    srv:close()
  end)

  it("supports PUT, PATCH, DELETE and HEAD", function()
    local srv, base = serve(echo)
    for _, m in ipairs({ "PUT", "PATCH", "DELETE" }) do
      local r = assert(http.request({ method = m, url = base .. "/x", body = m == "DELETE" and nil or "b" }))
      assert.equals(m, r.headers["x-method"])
    end
    local r = assert(http.request({ method = "HEAD", url = base .. "/x" }))
    assert.equals(200, r.status)
    assert.equals("", r.body)
    srv:close()
  end)

  it("lower-cases header names both ways and joins repeated headers", function()
    local seen
    local srv, base = serve(function(req)
      seen = req.headers
      return { headers = { ["X-Multi"] = { "one", "two" }, ["X-Number"] = 42 }, body = "ok" }
    end)
    local r = assert(http.request({
      url = base .. "/h",
      headers = { ["X-Api-Key"] = "k1", Accept = "application/json", ["X-Empty"] = "" },
    }))
    assert.equals("k1", seen["x-api-key"])
    assert.equals("application/json", seen["accept"])
    assert.equals("", seen["x-empty"])
    assert.is_nil(seen["X-Api-Key"])
    assert.equals("one, two", r.headers["x-multi"])
    assert.equals("42", r.headers["x-number"])
    assert.equals("2", r.headers["content-length"])
    assert.matches("^text/plain", r.headers["content-type"])
    srv:close()
  end)

  it("passes query strings through and decodes them with parse_query", function()
    local got
    local srv, base = serve(function(req)
      got = req
      return { body = "" }
    end)
    local q = http.build_query({
      ["status_category[one_of]"] = { "live", "triage" },
      ["custom_field[01ABC][one_of]"] = "x y",
      page_size = 25,
    })
    assert(http.request({ url = base .. "/v2/incidents?" .. q }))
    assert.equals("/v2/incidents", got.path)
    assert.equals(q, got.query)
    assert.same({
      ["status_category[one_of]"] = { "live", "triage" },
      ["custom_field[01ABC][one_of]"] = "x y",
      page_size = "25",
    }, http.parse_query(got.query))
    assert.equals("127.0.0.1", got.remote_addr)
    srv:close()
  end)

  it("returns every status code as a response, not an error", function()
    local srv, base = serve(function(req)
      return { status = tonumber(req.path:sub(2)), body = "s" }
    end)
    for _, code in ipairs({ 201, 204, 301, 400, 404, 429, 503 }) do
      local r, err = http.request({ url = base .. "/" .. code })
      assert.is_nil(err)
      assert.equals(code, r.status)
    end
    -- redirects are returned as they are unless asked for
    srv:close()
  end)

  it("follows redirects only when asked", function()
    local srv, base
    srv, base = serve(function(req)
      if req.path == "/old" then
        return { status = 302, headers = { Location = base .. "/new" } }
      end
      return { body = "new place" }
    end)
    local r = assert(http.request({ url = base .. "/old" }))
    assert.equals(302, r.status)
    r = assert(http.request({ url = base .. "/old", redirects = 3 }))
    assert.equals(200, r.status)
    assert.equals("new place", r.body)
    srv:close()
  end)

  it("times out on a server that sleeps", function()
    local srv, base = serve(function()
      task.sleep(1)
      return { body = "late" }
    end)
    local t0 = task.now()
    local r, err = http.request({ url = base .. "/slow", timeout = 0.2 })
    local dt = task.now() - t0
    assert.is_nil(r)
    assert.equals("timed out after 0.2 s", err)
    assert.is_true(dt < 0.6, "took " .. dt)
    srv:close()
  end)

  it("reports a refused connection with the address", function()
    local port = closed_port()
    local r, err = http.request({ url = "http://127.0.0.1:" .. port .. "/" })
    assert.is_nil(r)
    assert.equals("connection refused (127.0.0.1:" .. port .. ")", err)
  end)

  it("fails a response larger than max_body", function()
    local big = string.rep("x", 100000)
    local srv, base = serve(function() return { body = big } end)
    local r, err = http.request({ url = base .. "/big", max_body = 1000 })
    assert.is_nil(r)
    assert.equals("response body exceeds max_body (1000 bytes)", err)
    r = assert(http.request({ url = base .. "/big", max_body = 100000 }))
    assert.equals(100000, #r.body)
    srv:close()
  end)

  it("answers 413 to a request body over the server's max_body", function()
    local called = false
    local srv, base = serve(function()
      called = true
      return { body = "no" }
    end, { max_body = 1024 })
    local r = assert(http.request({ method = "POST", url = base .. "/", body = string.rep("y", 5000) }))
    assert.equals(413, r.status)
    assert.is_false(called)
    r = assert(http.request({ method = "POST", url = base .. "/", body = string.rep("y", 1000) }))
    assert.equals(200, r.status)
    srv:close()
  end)

  it("answers 500 when the handler fails or returns something else than a table", function()
    local srv, base = serve(function(req)
      if req.path == "/error" then
        error("handler exploded")
      elseif req.path == "/string" then
        return "not a table"
      elseif req.path == "/badstatus" then
        return { status = 42 }
      end
      return { body = "fine" }
    end)
    for _, path in ipairs({ "/error", "/string", "/badstatus" }) do
      local r = assert(http.request({ url = base .. path }))
      assert.equals(500, r.status)
      assert.not_matches("exploded", r.body)
    end
    assert.equals("fine", assert(http.request({ url = base .. "/ok" })).body)
    srv:close()
  end)

  it("runs requests concurrently: three 300 ms requests gathered take well under 600 ms", function()
    local srv, base = serve(function()
      task.sleep(0.3)
      return { body = "done" }
    end)
    local function get()
      return assert(http.request({ url = base .. "/" })).body
    end
    local t0 = task.now()
    local values, errors = task.gather({ get, get, get })
    local dt = task.now() - t0
    assert.same({ "done", "done", "done" }, values)
    assert.same({}, errors)
    assert.is_true(dt < 0.5, "took " .. dt)
    srv:close()
  end)

  it("completes 1000 concurrent requests", function()
    local srv, base = serve(function(req)
      return { body = req.query }
    end)
    local fns = {}
    for i = 1, 1000 do
      fns[i] = function()
        local r, err = http.request({ url = base .. "/n?i=" .. i, timeout = 20 })
        if not r then
          error(err, 0)
        end
        return r.status == 200 and r.body == "i=" .. i
      end
    end
    local values, errors = task.gather(fns)
    local ok = 0
    for i = 1, 1000 do
      if values[i] == true then
        ok = ok + 1
      end
    end
    assert.equals(1000, ok, "first error: " .. tostring(next(errors) and errors[next(errors)]))
    srv:close()
  end)

  it("cancels a task waiting on a request without leaking the transfer", function()
    local before = http.stats().transfers
    local srv, base = serve(function()
      task.sleep(0.3)
      return { body = "too late" }
    end)
    local t = task.spawn(function()
      return http.request({ url = base .. "/" })
    end)
    task.sleep(0.05)
    assert.equals(before + 1, http.stats().transfers)
    task.cancel(t)
    local ok, err = task.wait(t)
    assert.is_false(ok)
    assert.matches("cancelled", err)
    assert.equals(before, http.stats().transfers)
    -- the server's handler still finishes and the server keeps working
    assert.equals("too late", assert(http.request({ url = base .. "/" })).body)
    srv:close()
  end)

  -- A server whose handler holds every request under /hold until release() is called
  -- (and answers those arriving later at once).
  local function holding_server()
    local gate, open = "http-spec-hold-" .. tostring({}), false
    local srv, base = serve(function(req)
      if req.path:sub(1, 5) == "/hold" and not open then
        task.wait_for(gate, 20)
      end
      return { body = req.path }
    end)
    return srv, base, function()
      open = true
      task.notify(gate)
    end
  end

  local function wait_until(cond)
    for _ = 1, 500 do
      if cond() then
        return true
      end
      task.sleep(0.02)
    end
    return false
  end

  it("queues requests beyond 32 per host; a task cancelled while queued leaves the queue", function()
    local srv, base, release = holding_server()
    local tasks = {}
    for i = 1, 40 do
      tasks[i] = task.spawn(function()
        return assert(http.request({ url = base .. "/hold/" .. i, timeout = 20 })).body
      end)
    end
    assert.is_true(wait_until(function()
      return http.stats().active == 32 and http.stats().queued == 8
    end), "stats: active " .. http.stats().active .. ", queued " .. http.stats().queued)
    task.cancel(tasks[40], "no longer needed")
    assert.equals(7, http.stats().queued)
    release()
    for i = 1, 39 do
      local ok, body = task.wait(tasks[i])
      assert.is_true(ok, body)
      assert.equals("/hold/" .. i, body)
    end
    assert.is_false((task.wait(tasks[40])))
    assert.equals(0, http.stats().queued)
    assert.equals(0, http.stats().active)
    srv:close()
  end)

  it("times a request from when it goes out, and bounds its wait in the queue apart", function()
    local srv, base, release = holding_server()
    local held = {}
    for i = 1, 32 do
      held[i] = task.spawn(function()
        return http.request({ url = base .. "/hold/" .. i, timeout = 20 })
      end)
    end
    assert.is_true(wait_until(function()
      return http.stats().active == 32
    end))
    local gave_up = task.spawn(function()
      return http.request({ url = base .. "/quick", queue_timeout = 0.2 })
    end)
    local patient = task.spawn(function()
      return http.request({ url = base .. "/quick", timeout = 0.3 })
    end)
    local ok, r, err = task.wait(gave_up)
    assert.is_true(ok)
    assert.is_nil(r)
    assert.matches("^queued too long: waited 0%.%d s for a free connection to 127%.0%.0%.1:%d+", err)
    task.sleep(0.5) -- patient has now waited longer than its timeout, all of it queued
    assert.equals("suspended", patient.status)
    release()
    local ok2, r2, err2 = task.wait(patient)
    assert.is_true(ok2)
    assert.is_table(r2, err2)
    assert.equals("/quick", r2.body)
    for i = 1, 32 do
      assert.is_true((task.wait(held[i])))
    end
    srv:close()
  end)

  it("does not keep the request's options alive while it waits for the response", function()
    local srv, base, release = holding_server()
    local weak = setmetatable({}, { __mode = "v" })
    local t = task.spawn(function()
      local opts = { url = base .. "/hold/1", headers = { ["X-Big"] = string.rep("x", 4096) } }
      weak.opts = opts
      weak.header = opts.headers
      opts = nil -- luacheck: ignore
      return http.request(weak.opts)
    end)
    assert.is_true(wait_until(function()
      return http.stats().active >= 1
    end))
    collectgarbage()
    collectgarbage()
    assert.is_nil(weak.opts)
    assert.is_nil(weak.header)
    release()
    local ok, r = task.wait(t)
    assert.is_true(ok)
    assert.equals("/hold/1", r.body)
    srv:close()
  end)

  it("raises on a queue_timeout that is not a positive number", function()
    assert.has_error(function()
      http.request({ url = "http://127.0.0.1:1/", queue_timeout = 0 })
    end, "fox.http: queue_timeout must be a number > 0 (got number)")
  end)

  it("serves others while a client sends half a request, then drops that client", function()
    local srv, base = serve(function(req)
      return { body = "hi " .. req.path }
    end, { timeout = 0.5 })
    -- The body announces 1000 bytes and sends 5: the server waits for the rest.
    local slow = task.spawn(function()
      return http.request({
        method = "POST",
        url = base .. "/slow",
        headers = { ["Content-Length"] = "1000" },
        body = "short",
        timeout = 5,
      })
    end)
    task.sleep(0.05)
    local t0 = task.now()
    for i = 1, 5 do
      assert.equals("hi /" .. i, assert(http.request({ url = base .. "/" .. i })).body)
    end
    assert.is_true(task.now() - t0 < 0.3)
    local ok, r, err = task.wait(slow)
    assert.is_true(ok)
    assert.is_nil(r)
    assert.is_string(err)
    assert.not_matches("timed out", err) -- the server dropped it, not the client timeout
    assert.is_true(task.now() - t0 < 2, "slow client kept for " .. (task.now() - t0))
    srv:close()
  end)

  it("answers requests in flight when the server is closed meanwhile", function()
    local srv, base = serve(function()
      task.sleep(0.2)
      return { body = "finished" }
    end)
    local t = task.spawn(function()
      return http.request({ url = base .. "/" })
    end)
    task.sleep(0.05)
    srv:close()
    local ok, r = task.wait(t)
    assert.is_true(ok)
    assert.equals("finished", r.body)
  end)

  it("ends a handler that runs past handler_timeout with a 500", function()
    local srv, base = serve(function()
      task.sleep(2)
      return { body = "never" }
    end, { handler_timeout = 0.1 })
    local t0 = task.now()
    local r = assert(http.request({ url = base .. "/" }))
    assert.equals(500, r.status)
    assert.is_true(task.now() - t0 < 1)
    srv:close()
  end)

  it("works from inside a script's own coroutine", function()
    local srv, base = serve(echo)
    local get = coroutine.wrap(function()
      return assert(http.request({ url = base .. "/co" })).body
    end)
    assert.equals("GET /co  ", get())
    srv:close()
  end)

  it("stops accepting after close", function()
    local srv, base = serve(echo)
    assert(http.request({ url = base .. "/" }))
    srv:close()
    assert.is_true(srv.closed)
    task.sleep(0.05)
    local r, err = http.request({ url = base .. "/" })
    assert.is_nil(r)
    assert.matches("connection refused", err)
  end)

  it("reports a port in use as an error", function()
    local srv = serve(echo)
    local other, err = http.listen({ port = srv.port, handler = echo })
    assert.is_nil(other)
    assert.matches("could not listen on 127.0.0.1:" .. srv.port, err)
    srv:close()
  end)

  it("raises on API misuse", function()
    assert.has_error(function() http.request({}) end)
    assert.has_error(function() http.request({ url = "ftp://example.com/" }) end)
    assert.has_error(function() http.request({ url = "not a url" }) end)
    assert.has_error(function() http.request({ url = "http://x/", timeout = -1 }) end)
    assert.has_error(function() http.request({ url = "http://x/", headers = { ["X-A"] = "a\r\nb" } }) end)
    assert.has_error(function() http.request({ url = "http://x/", headers = { ["Bad Name"] = "v" } }) end)
    assert.has_error(function() http.listen({ port = 0 }) end)
  end)
end)

describe("fox.http helpers", function()
  it("percent-encodes per RFC 3986", function()
    assert.equals("a-b_c.d~e", http.encode("a-b_c.d~e"))
    assert.equals("a%20b%2Bc%26d%3De%5B0%5D%2F%C3%A9", http.encode("a b+c&d=e[0]/é"))
    assert.equals("a b+c&d=e[0]/é", http.decode("a%20b%2Bc%26d%3De%5B0%5D%2F%C3%A9"))
    assert.equals("a b", http.decode("a+b", true))
    assert.equals("100%", http.decode("100%"))
  end)

  it("builds queries: sorted keys, repeated keys, scalars, pair lists", function()
    assert.equals("", http.build_query({}))
    assert.equals("a=1&b=true&c=x%20y", http.build_query({ c = "x y", a = 1, b = true }))
    assert.equals("f=1.5&n=3", http.build_query({ n = 3.0, f = 1.5 }))
    assert.equals("status_category%5Bone_of%5D=live&status_category%5Bone_of%5D=closed",
      http.build_query({ ["status_category[one_of]"] = { "live", "closed" } }))
    assert.equals("z=1&a=2&z=3", http.build_query({ { "z", 1 }, { "a", 2 }, { "z", 3 } }))
    assert.has_error(function() http.build_query({ a = {} , b = function() end }) end)
  end)

  it("parses queries", function()
    assert.same({}, http.parse_query(""))
    assert.same({ a = "1", b = { "2", "3" }, c = "", d = "x y" },
      http.parse_query("?a=1&b=2&b=3&c&d=x+y"))
  end)

  it("joins URLs", function()
    assert.equals("https://api.incident.io/v2/incidents",
      http.url_join("https://api.incident.io/", "/v2/incidents"))
    assert.equals("https://h/v2/x?page_size=5", http.url_join("https://h", "v2/x", { page_size = 5 }))
    assert.equals("https://h/x?a=1&b=2", http.url_join("https://h", "/x?a=1", { b = 2 }))
    assert.equals("https://h", http.url_join("https://h"))
  end)
end)
