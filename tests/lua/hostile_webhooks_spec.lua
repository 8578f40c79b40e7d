-- Hostile webhooks (issue 8, item 3): forged signatures, a wrong secret, replays,
-- timestamps from the past and the future, missing headers, several signatures, an
-- oversized body, invalid JSON, a wrong content type, thousands of concurrent
-- connections and slow-loris clients (tests/integration/hostile_clients.js, loopback
-- only, bounded in count and time). Each is answered the right way, nothing of it is
-- investigated, and valid webhooks keep flowing meanwhile.
-- FOX_SOAK=1 (make soak) uses more connections for longer.
local H = require("serve_helper")
local X = require("helpers.hardening")
local json = require("fox.json")
local http = require("fox.http")
local sys = require("fox.sys")
local task = require("fox.task")

local CONNECTIONS = X.SOAK and 4000 or 1500
local HOLD = X.SOAK and 30 or 6
local REQUEST_TIMEOUT = 3

-- The soft limit of open files of a process (fox holds one descriptor per connection:
-- beyond its limit a new connection cannot be accepted at all; see docs/reliability.md).
local function fd_limit(pid)
  local limits = io.open("/proc/" .. pid .. "/limits")
  if not limits then return math.huge end
  local text = limits:read("a")
  limits:close()
  return tonumber(text:match("Max open files%s+(%d+)")) or math.huge
end

-- Starts hostile_clients.js in the background; returns a function that waits for its
-- JSON summary.
local function hostile(fox, mode, n, seconds)
  local out = H.tmpdir("hostile") .. "/out"
  local cmd = ("node %s --port %s --mode %s --connections %d --seconds %d --parent-pid %d > %s 2>&1 &"):format(
    H.sh_quote(H.ROOT .. "/tests/integration/hostile_clients.js"), fox.url:match(":(%d+)$"), mode, n, seconds,
    sys.pid(), H.sh_quote(out))
  assert(os.execute(cmd))
  return function()
    local line = H.wait_for(function()
      local s = H.read_file(out)
      return s and s:match("(%b{})%s*$")
    end, seconds + 15, 0.1)
    assert(line, "hostile_clients.js did not finish: " .. tostring(H.read_file(out)))
    return json.decode(line)
  end
end

local function open_fds(pid)
  local p = io.popen("ls /proc/" .. pid .. "/fd 2>/dev/null | wc -l")
  local n = tonumber(p:read("a"))
  p:close()
  return n
end

local function post(fox, headers, body)
  local res, err = http.request({ method = "POST", url = fox.url .. "/webhooks/incident-io", timeout = 10,
    headers = headers, body = body })
  assert(res, err)
  return res
end

describe("hostile webhooks", function()
  local fakes, fox

  setup(function()
    fakes = X.start_fakes()
    -- request_timeout well under HOLD: the slow clients are cut off while they drip.
    fox = X.new_fox(fakes, { options = { sources = { similar = false } },
      config = { request_timeout = REQUEST_TIMEOUT } }):start()
  end)

  teardown(function()
    if fox and fox.pid and H.alive(fox.pid) then fox:stop(10) end
    if fox then X.assert_clean_log(fox, fox.secret) end
    if fakes then fakes.stop() end
    H.cleanup()
  end)

  after_each(function()
    assert.is_true(H.alive(fox.pid), "fox died:\n" .. fox:log_text():sub(-3000))
  end)

  it("answers each forged, replayed, malformed or oversized delivery the right way", function()
    local inc = X.create_incidents(fakes, 1, "Target")[1]
    local event = H.created_event(inc)
    local body = json.encode(event)
    local now = math.floor(sys.wall_time())
    local function headers(id, ts, sig, ctype)
      return { ["Content-Type"] = ctype or "application/json", ["webhook-id"] = id,
        ["webhook-timestamp"] = ts and tostring(ts) or nil, ["webhook-signature"] = sig }
    end
    local function signed(id, ts, b, secret)
      return H.sign(secret or fox.secret, id, tostring(ts), b or body)
    end
    local cases = {
      { "forged signature", 401, headers("msg_h1", now, "v1," .. ("A"):rep(43) .. "=") },
      { "wrong secret", 401, headers("msg_h2", now, signed("msg_h2", now, body, H.new_secret())) },
      { "replayed old timestamp", 401, headers("msg_h3", now - 600, signed("msg_h3", now - 600)) },
      { "timestamp from the future", 401, headers("msg_h4", now + 600, signed("msg_h4", now + 600)) },
      { "no webhook-id", 401, headers(nil, now, signed("", now)) },
      { "no webhook-timestamp", 401, headers("msg_h5", nil, signed("msg_h5", now)) },
      { "no webhook-signature", 401, headers("msg_h6", now, nil) },
      { "no v1 entry", 401, headers("msg_h7", now, "v2," .. signed("msg_h7", now):sub(4)) },
      { "several signatures, none valid", 401, headers("msg_h8", now, "v1,AAAA v1," .. ("B"):rep(43) .. "= v1a,x") },
      { "signature of another body", 401, headers("msg_h9", now, signed("msg_h9", now, body .. " ")) },
      { "invalid JSON (signed)", 400, headers("msg_h10", now, signed("msg_h10", now, "{nope")), "{nope" },
      { "wrong content type (signed)", 415, headers("msg_h11", now, signed("msg_h11", now), "text/plain") },
      { "form content type (signed)", 415,
        headers("msg_h12", now, signed("msg_h12", now), "application/x-www-form-urlencoded") },
    }
    for _, c in ipairs(cases) do
      local res = post(fox, c[3], c[4] or body)
      assert.equals(c[2], res.status, c[1] .. ": " .. res.body)
      assert.is_table(json.decode(res.body), c[1])
      X.assert_no_canary(res.body, c[1], fox.secret)
    end
    -- What counts as JSON.
    local receiver = require("fox.webhook_receiver")
    for _, t in ipairs({ "application/json", "application/json; charset=utf-8", "Application/JSON",
                         "application/vnd.incident+json" }) do
      assert.is_true(receiver.is_json_type(t), t)
    end
    for _, t in ipairs({ "text/json", "text/plain", "application/jsonx", "multipart/form-data", "" }) do
      assert.is_false(receiver.is_json_type(t), t)
    end
    -- Oversized: over max_body (1 MiB) the receiver answers 413; far over it, the
    -- server does before reading it all.
    local big = ("x"):rep(1024 * 1024 + 10)
    assert.equals(413, post(fox, headers("msg_big", now, signed("msg_big", now, big)), big).status)
    local huge = ("x"):rep(8 * 1024 * 1024)
    local res, err = http.request({ method = "POST", url = fox.url .. "/webhooks/incident-io", timeout = 10,
      headers = headers("msg_huge", now, "v1,AAAA"), body = huge })
    assert.is_true(res == nil or res.status == 413, "8 MiB body: " .. tostring(res and res.status or err))
    if res then
      -- The listener answered it before the receiver saw it: counted all the same.
      assert.equals(1, fox:metric('fox_http_listener_replies_total{status="413"}'))
    end
    -- Other methods and paths.
    assert.equals(405, http.request({ url = fox.url .. "/webhooks/incident-io", timeout = 5 }).status)
    assert.equals(404, http.request({ url = fox.url .. "/webhooks/other", timeout = 5 }).status)

    -- Nothing of the above was investigated; then the valid delivery is, once, and its
    -- replay (same webhook-id, still valid) is answered "duplicate" and ignored.
    task.sleep(0.3)
    assert.same({}, H.messages(fakes))
    local id = H.webhook_id()
    local good = post(fox, headers(id, now, signed(id, now)), body)
    assert.equals(202, good.status)
    assert.equals(200, post(fox, headers(id, now, signed(id, now)), body).status)
    assert.equals("duplicate", json.decode(post(fox, headers(id, now, signed(id, now)), body).body).status)
    -- Several signatures, one valid (key rotation): accepted; the incident is known.
    local id2 = H.webhook_id()
    local multi = post(fox, headers(id2, now, "v1,AAAA " .. signed(id2, now) .. " v2,zzz"), body)
    assert.equals(200, multi.status)
    local st = json.decode(multi.body).status
    assert.is_true(st == "known" or st == "queued", st)
    X.assert_posted_once(fakes, { inc }, 20)
    assert.equals(1, fox:metric('fox_webhooks_total{outcome="accepted"}'))
  end)

  it(("keeps valid webhooks flowing past %d slow-loris, %d slow-body, %d idle and %d flooding clients"):format(
    CONNECTIONS, CONNECTIONS // 3, CONNECTIONS // 3, CONNECTIONS // 2), function()
    -- All of them at once must fit under fox's descriptor limit, with room to spare.
    local limit = fd_limit(fox.pid)
    if CONNECTIONS * 13 // 6 + 256 > limit then
      CONNECTIONS = math.max(100, (limit - 256) * 6 // 13)
      print(("\nhostile: fox may open %d files: %d slow-loris connections instead"):format(limit, CONNECTIONS))
    end
    local fds_before = open_fds(fox.pid)
    local loris = hostile(fox, "slowloris", CONNECTIONS, HOLD)
    local slowbody = hostile(fox, "slowbody", CONNECTIONS // 3, HOLD)
    local idle = hostile(fox, "idle", CONNECTIONS // 3, HOLD)
    task.sleep(1.5) -- let them connect
    local flood = hostile(fox, "flood", CONNECTIONS // 2, HOLD + 5)
    -- Meanwhile: valid deliveries, each answered quickly.
    local incidents = X.create_incidents(fakes, 10, "Under siege")
    local slowest = 0
    for _, inc in ipairs(incidents) do
      local res, elapsed = H.deliver(fox, H.created_event(inc))
      assert.equals(202, res and res.status, "a valid webhook was not accepted")
      if elapsed > slowest then slowest = elapsed end
      task.sleep(0.2)
    end
    local peak_fds = open_fds(fox.pid)
    local l, b, i, f = loris(), slowbody(), idle(), flood()
    print(("\nhostile: %d slow-loris (%d cut by the server), %d slow bodies, %d idle, flood answers %s; "
      .. "fox held %d fds at the peak; slowest valid webhook %.0f ms"):format(l.opened, l.closed_by_server,
      b.opened, i.opened, json.encode(f.statuses), peak_fds, slowest * 1000))
    assert.is_true(slowest < 1.0 * X.SLOW, "a valid webhook took " .. slowest .. " s")
    assert.equals(CONNECTIONS, l.opened, "slow-loris connections opened")
    -- Dripping clients are cut at request_timeout (the hold is longer), idle ones too;
    -- the dripping ones are counted.
    assert.equals(l.opened, l.closed_by_server, "slow-loris clients cut: " .. json.encode(l))
    assert.equals(b.opened, b.closed_by_server, "slow-body clients cut: " .. json.encode(b))
    assert.equals(i.opened, i.closed_by_server, "idle clients closed: " .. json.encode(i))
    assert.is_true(fox:metric("fox_http_requests_timed_out_total") >= l.opened + b.opened,
      "fox_http_requests_timed_out_total " .. fox:metric("fox_http_requests_timed_out_total"))
    assert.equals(0, fox:metric('fox_http_connections_rejected_total{reason="max_connections"}'))
    assert.is_true(f.statuses["401"] and f.statuses["401"] >= CONNECTIONS // 2 * 0.95,
      "flood answers: " .. json.encode(f.statuses))
    assert.is_nil(f.statuses["202"], "an unsigned flood request was accepted")
    X.assert_posted_once(fakes, incidents, 30)
    -- Every hostile connection is gone once its client is: no descriptor leak.
    assert.truthy(H.wait_for(function() return open_fds(fox.pid) <= fds_before + 5 end, 10),
      ("fox holds %d descriptors, %d before"):format(open_fds(fox.pid), fds_before))
    local health, code = fox:health()
    assert.equals(200, code, json.encode(health))
  end)
end)
