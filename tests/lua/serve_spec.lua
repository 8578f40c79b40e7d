-- `fox serve` end to end: build/fox serve as a child process against the fake
-- incident.io and the fake Slack, with a small test playbook
-- (tests/lua/fixtures/serve/playbook.lua) that posts one message per incident through
-- ctx.once. Each test has its own state directory and ports; the fakes are shared and
-- reset between tests. Every wait is bounded.
local H = require("serve_helper")
local http = require("fox.http")
local json = require("fox.json")
local task = require("fox.task")

-- Canary secrets: none of them may appear in any log line of any fox process.
local CANARY_KEY = "canary-io-key-5f2d81c7e9"
local CANARY_BAD_KEY = "canary-revoked-key-0a9c33b1"

local function median(xs)
  table.sort(xs)
  return xs[(#xs + 1) // 2]
end

describe("fox serve", function()
  local fakes
  local foxes = {}

  local function new_fox(opts)
    opts = opts or {}
    opts.fakes = fakes
    opts.api_key = opts.api_key or CANARY_KEY
    local fox = H.new_fox(opts)
    foxes[#foxes + 1] = fox
    return fox
  end

  setup(function()
    fakes = H.start_fakes({ io_args = "--api-key " .. CANARY_KEY })
  end)

  teardown(function()
    if fakes then fakes.stop() end
    H.cleanup()
  end)

  before_each(function()
    H.reset_fakes(fakes)
  end)

  after_each(function()
    for _, fox in ipairs(foxes) do
      if fox.pid and H.alive(fox.pid) then fox:stop(5) end
      -- No secret in any log line, whatever the test did.
      local text = fox:log_text()
      for _, secret in ipairs({ fox.secret, CANARY_KEY, CANARY_BAD_KEY }) do
        if secret then
          assert.is_nil(text:find(secret, 1, true), "a secret appeared in the log of " .. fox.dir)
        end
      end
    end
    foxes = {}
  end)

  it("answers a signed incident_created_v2 webhook in milliseconds and investigates it once", function()
    local fox = new_fox():start()
    local inc = H.create_incident(fakes, { name = "Payments API returns 500s", severity = "High" })
    local res, elapsed = H.deliver(fox, H.created_event(inc))
    assert.equals(202, res.status)
    assert.equals("queued", json.decode(res.body).status)
    assert.is_true(elapsed < 0.25, "webhook answered in " .. elapsed .. " s")
    assert.truthy(H.wait_for(function() return H.posts_by_ref(fakes)[inc.reference] end, 5))
    assert.truthy(H.wait_for(function() return fox:metric("fox_investigations_completed_total") == 1 end, 2))
    assert.equals(1, fox:metric("fox_investigations_started_total"))
    assert.equals(1, fox:metric('fox_webhooks_total{outcome="accepted"}'))
    assert.equals(1, fox:metric('fox_investigation_duration_seconds_count{outcome="ok"}'))
    assert.equals(1, fox:metric('fox_incidentio_requests_total{endpoint="GET /v2/incidents/{id}",status="200"}'))
    local metrics = fox:get("/metrics")
    assert.matches("^text/plain; version=0.0.4", metrics.headers["content-type"])
    assert.matches("# TYPE fox_investigation_duration_seconds histogram", metrics.body, 1, true)
    assert.matches('fox_lua_memory_bytes{current="true",generation="1"} %d+', metrics.body)
    assert.matches("fox_process_resident_memory_bytes %d+", metrics.body)
    assert.matches("fox_queue_depth 0", metrics.body, 1, true)
    local health, code = fox:health()
    assert.equals(200, code)
    assert.equals("ok", health.status)
    assert.equals(1, health.generation)
    assert.equals(0, health.queue.depth)
    assert.is_true(health.last_reload.ok)

    -- More deliveries, to measure the answer latency.
    local times = {}
    for i = 1, 20 do
      local extra = H.create_incident(fakes, { name = "Latency probe " .. i })
      local r, t = H.deliver(fox, H.created_event(extra))
      assert.equals(202, r.status)
      times[#times + 1] = t * 1000
    end
    local med = median(times)
    print(string.format("serve: webhook answer latency median %.2f ms, max %.2f ms (20 deliveries)",
      med, times[#times]))
    assert.is_true(med < 50)
    assert.truthy(H.wait_for(function() return fox:metric("fox_investigations_completed_total") == 21 end, 5))

    assert.equals(0, fox:stop())
    local records, queued = fox:records()
    assert.equals("done", records[inc.id].status)
    assert.equals(inc.reference, records[inc.id].reference)
    assert.equals("webhook", records[inc.id].source)
    assert.equals(0, #queued)
    -- One log line per investigation, with the reference, the outcome and the duration.
    local log = fox:log_text()
    assert.matches("event=investigation [^\n]*duration_ms=%d+[^\n]*incident=" .. inc.reference:gsub("%-", "%%-")
      .. " [^\n]*outcome=ok", log)
  end)

  it("does nothing more for a duplicate delivery or a second event about the same incident", function()
    local fox = new_fox():start()
    local inc = H.create_incident(fakes, { name = "Checkout latency" })
    local id = H.webhook_id()
    local res = H.deliver(fox, H.created_event(inc), { id = id })
    assert.equals(202, res.status)
    res = H.deliver(fox, H.created_event(inc), { id = id })
    assert.equals(200, res.status)
    assert.equals("duplicate", json.decode(res.body).status)
    -- A different delivery of the same incident (private envelope, id only).
    res = H.deliver(fox, H.created_event(inc, true))
    assert.equals(200, res.status)
    assert.truthy(H.wait_for(function() return H.posts_by_ref(fakes)[inc.reference] end, 5))
    -- After the investigation, the same webhook-id is still recognised.
    res = H.deliver(fox, H.created_event(inc), { id = id })
    assert.equals("duplicate", json.decode(res.body).status)
    task.sleep(0.3)
    assert.equals(1, H.posts_by_ref(fakes)[inc.reference])
    assert.equals(1, fox:metric("fox_investigations_started_total"))
    assert.equals(2, fox:metric('fox_webhooks_total{outcome="duplicate"}'))
    assert.equals(1, fox:metric('fox_webhooks_total{outcome="known"}'))
    -- And after a restart (the shared cache is gone; the durable record answers).
    assert.equals(0, fox:stop())
    fox:start()
    res = H.deliver(fox, H.created_event(inc), { id = id })
    assert.equals("duplicate", json.decode(res.body).status)
    task.sleep(0.2)
    assert.equals(1, H.posts_by_ref(fakes)[inc.reference])
  end)

  it("rejects forged, replayed and oversized webhooks, invalid JSON, and ignores other events", function()
    local fox = new_fox():start()
    local inc = H.create_incident(fakes, { name = "Search is slow" })
    local event = H.created_event(inc)
    -- Signed with another secret.
    local res = H.deliver(fox, event, { secret = H.new_secret() })
    assert.equals(401, res.status)
    -- No signature headers at all.
    res = assert(http.request({ method = "POST", url = fox.url .. "/webhooks/incident-io", body = json.encode(event) }))
    assert.equals(401, res.status)
    -- A tampered body under a valid signature of the original.
    local body = json.encode(event)
    local id, ts = H.webhook_id(), tostring(os.time())
    res = H.deliver(fox, nil, { id = id, ts = ts, body = body:gsub("Search", "Srch"),
      signature = H.sign(fox.secret, id, ts, body) })
    assert.equals(401, res.status)
    -- Replayed: a valid signature, but 10 minutes old (and one from the future).
    res = H.deliver(fox, event, { ts = os.time() - 600 })
    assert.equals(401, res.status)
    res = H.deliver(fox, event, { ts = os.time() + 600 })
    assert.equals(401, res.status)
    -- Over 1 MiB, even when signed.
    local big = json.encode({ event_type = "public_incident.incident_updated_v2", pad = string.rep("x", 1048577) })
    res = H.deliver(fox, nil, { body = big })
    assert.equals(413, res.status)
    -- Signed, but not JSON.
    res = H.deliver(fox, nil, { body = "{not json" })
    assert.equals(400, res.status)
    -- Signed JSON without an incident id.
    res = H.deliver(fox, { event_type = "public_incident.incident_created_v2",
      ["public_incident.incident_created_v2"] = {} })
    assert.equals(400, res.status)
    -- Event types fox does not act on: 200 and ignored.
    for _, et in ipairs({ "public_incident.incident_updated_v2", "public_incident.follow_up_created_v1",
      "some_future.event_v9" }) do
      res = H.deliver(fox, { event_type = et, [et] = { id = inc.id } })
      assert.equals(200, res.status)
      assert.equals("ignored", json.decode(res.body).status)
    end
    -- Not a POST; not a route.
    assert.equals(405, fox:get("/webhooks/incident-io").status)
    assert.equals(404, fox:get("/nope").status)
    task.sleep(0.3)
    assert.equals(0, #H.messages(fakes))
    assert.equals(0, fox:metric("fox_investigations_started_total"))
    assert.equals(5, fox:metric('fox_webhooks_total{outcome="unauthorized"}'))
    assert.equals(1, fox:metric('fox_webhooks_total{outcome="too_large"}'))
    assert.equals(3, fox:metric('fox_webhooks_total{outcome="bad_request"}'))
    assert.equals(3, fox:metric('fox_webhooks_total{outcome="ignored"}'))
    local log = fox:log_text()
    assert.matches("event=webhook [^\n]*outcome=unauthorized[^\n]*reason=", log)
  end)

  it("records skipped incidents (skip policy) and failed investigations without posting", function()
    local fox = new_fox({ config = { playbook_options = { fail_on = "Broken" } } }):start()
    local test_inc = H.create_incident(fakes, { name = "Just a drill", mode = "test" })
    local declined = H.create_incident(fakes, { name = "Not an incident", status = "Declined" })
    local broken = H.create_incident(fakes, { name = "Broken playbook run" })
    for _, inc in ipairs({ test_inc, declined, broken }) do
      assert.equals(202, H.deliver(fox, H.created_event(inc)).status)
    end
    assert.truthy(H.wait_for(function()
      return fox:metric("fox_investigations_skipped_total") == 2
        and fox:metric('fox_investigations_failed_total{reason="error"}') == 1
    end, 5))
    assert.equals(0, #H.messages(fakes))
    assert.equals(0, fox:stop())
    local records = fox:records()
    assert.equals("skipped", records[test_inc.id].status)
    assert.equals("test incident", records[test_inc.id].reason)
    assert.equals("status is declined", records[declined.id].reason)
    assert.equals("failed", records[broken.id].status)
    assert.matches("failed on purpose", records[broken.id].error)
    assert.matches("level=error event=investigation [^\n]*incident=" .. broken.reference:gsub("%-", "%%-")
      .. " [^\n]*outcome=error", fox:log_text())
  end)

  it("catches up after downtime on incidents created while it was stopped", function()
    local before = H.create_incident(fakes, { name = "Created before fox ever ran" })
    -- No webhook secret: the poller is on by default.
    local fox = new_fox({ secret = false, config = { poll = { __raw = "nil" }, poll_interval = 0.2 } }):start()
    local h = H.wait_for(function()
      local doc = fox:health()
      return doc.last_poll.ok_at and doc
    end, 5)
    assert.truthy(h)
    assert.is_true(h.last_poll.enabled)
    assert.equals(0, fox:stop())
    local down = {}
    for i = 1, 3 do down[i] = H.create_incident(fakes, { name = "Created while fox was down " .. i }) end
    fox:start()
    assert.truthy(H.wait_for(function()
      local p = H.posts_by_ref(fakes)
      return p[down[1].reference] and p[down[2].reference] and p[down[3].reference]
    end, 5))
    -- And one created while it runs.
    local live = H.create_incident(fakes, { name = "Created while fox runs" })
    assert.truthy(H.wait_for(function() return H.posts_by_ref(fakes)[live.reference] end, 5))
    task.sleep(0.5) -- several more polls over the same window (overlap)
    local posts = H.posts_by_ref(fakes)
    for _, inc in ipairs({ down[1], down[2], down[3], live }) do assert.equals(1, posts[inc.reference]) end
    assert.is_nil(posts[before.reference])
    assert.is_true(fox:metric('fox_polls_total{outcome="ok"}') >= 2)
    assert.equals(0, fox:stop())
    local records = fox:records()
    assert.equals("poller", records[down[1].id].source)
    assert.is_nil(records[before.id])
  end)

  it("never investigates twice when webhooks and the poller both see an incident", function()
    local fox = new_fox({ config = { poll = true, poll_interval = 0.1 } }):start()
    assert.truthy(H.wait_for(function() return fox:health().last_poll.ok_at end, 5))
    H.request("POST", fakes.io .. "/_fake/config", { webhook_url = fox.url .. "/webhooks/incident-io",
      webhook_secret = fox.secret })
    local incs = {}
    for i = 1, 5 do incs[i] = H.create_incident(fakes, { name = "Seen twice " .. i }) end
    assert.truthy(H.wait_for(function()
      local p = H.posts_by_ref(fakes)
      for _, inc in ipairs(incs) do
        if not p[inc.reference] then return false end
      end
      return true
    end, 5))
    task.sleep(0.4)
    local p = H.posts_by_ref(fakes)
    for _, inc in ipairs(incs) do assert.equals(1, p[inc.reference]) end
    assert.equals(5, fox:metric("fox_investigations_started_total"))
  end)

  it("reloads on SIGHUP while webhooks keep arriving, and keeps the old playbook when the new one is broken",
    function()
      local fox = new_fox():start()
      local incs = {}
      for i = 1, 40 do incs[i] = H.create_incident(fakes, { name = "Reload traffic " .. i }) end
      local statuses, sent = {}, 0
      local sender = task.spawn(function()
        for i = 1, #incs do
          local res, _, err = H.deliver(fox, H.created_event(incs[i]))
          statuses[i] = res and res.status or tostring(err)
          sent = i
          task.sleep(0.02)
        end
      end)
      assert.truthy(H.wait_for(function() return sent >= 5 end, 5))
      -- A good change.
      H.write_playbook(fox.dir, "v2")
      local t0 = task.now()
      fox:signal("HUP")
      assert.truthy(H.wait_for(function() return fox:health().generation == 2 end, 5, 0.005))
      local reload_seen = task.now() - t0
      local v2_from = sent + 1
      -- A broken one: rejected, generation 2 keeps serving.
      assert.truthy(H.wait_for(function() return sent >= 20 end, 5))
      H.write_playbook(fox.dir, "v3", true)
      fox:signal("HUP")
      local h = H.wait_for(function()
        local doc = fox:health()
        return doc.last_reload.failures == 1 and doc
      end, 5)
      assert.truthy(h)
      assert.equals(2, h.generation)
      assert.is_false(h.last_reload.ok)
      assert.equals("degraded", h.status)
      assert.matches("playbook%.lua:%d+:", h.last_reload.error)
      assert.is_nil(h.last_reload.error:find("stack traceback", 1, true))
      assert.matches("playbook%.lua:%d+:", h.problems[1])
      assert.truthy(task.wait(sender))
      for i = 1, #incs do assert.equals(202, statuses[i], "delivery " .. i) end
      assert.truthy(H.wait_for(function()
        local p = H.posts_by_ref(fakes)
        for _, inc in ipairs(incs) do
          if not p[inc.reference] then return false end
        end
        return true
      end, 8))
      local by_ref = {}
      for _, m in ipairs(H.messages(fakes)) do
        local ref = m.text:match("(INC%-%d+)")
        assert.is_nil(by_ref[ref], "posted twice: " .. tostring(ref))
        by_ref[ref] = m.text
      end
      for i = v2_from, #incs do
        assert.matches("^fox v2:", by_ref[incs[i].reference])
      end
      assert.matches("^fox v1:", by_ref[incs[1].reference])
      assert.equals(1, fox:metric("fox_reload_failures_total"))
      assert.equals(2, fox:metric("fox_reloads_total"))
      assert.equals(0, fox:metric("fox_last_reload_ok"))
      assert.matches('fox_last_reload_error_info{error="[^"]*playbook%.lua:%d+:[^"]*"} 1', fox:get("/metrics").body)
      assert.matches('fox_lua_memory_bytes{current="true",generation="2"}', fox:get("/metrics").body, 1, true)
      local log = fox:log_text()
      assert.matches("event=reload.failed[^\n]*playbook%.lua:%d+:", log)
      local built = log:match("generation 2 is serving %(built in ([%d.]+) ms%)")
      print(string.format("serve: reload built in %s ms; new generation seen on /healthz after %.1f ms",
        tostring(built), reload_seen * 1000))
      -- Fixed: the next reload is accepted and /healthz is ok again.
      H.write_playbook(fox.dir, "v4")
      fox:signal("HUP")
      -- (Generation ids count every attempt: the rejected one was 3.)
      assert.truthy(H.wait_for(function() return fox:health().last_reload.reloads == 3 end, 5))
      h = fox:health()
      assert.equals("ok", h.status)
      assert.is_true(h.generation > 3)
      local last = H.create_incident(fakes, { name = "After the fix" })
      assert.equals(202, H.deliver(fox, H.created_event(last)).status)
      assert.truthy(H.wait_for(function()
        for _, m in ipairs(H.messages(fakes)) do
          if m.text:find(last.reference, 1, true) then return m.text end
        end
      end, 5))
      for _, m in ipairs(H.messages(fakes)) do
        if m.text:find(last.reference, 1, true) then assert.matches("^fox v4:", m.text) end
      end
      -- A broken config is rejected the same way, naming the file, line and key.
      local good = H.read_file(fox.config_path)
      H.write_file(fox.config_path, (good:gsub("\n}", "\n  concurency = 2,\n}", 1)))
      fox:signal("HUP")
      h = H.wait_for(function()
        local doc = fox:health()
        return doc.last_reload.failures == 2 and doc
      end, 5)
      assert.truthy(h)
      assert.matches("fox%.conf%.lua:%d+: unknown key 'concurency' %(did you mean 'concurrency'%?%)",
        h.last_reload.error)
      assert.equals(202, H.deliver(fox, H.created_event(H.create_incident(fakes, { name = "Still served" }))).status)
    end)

  it("lets a running investigation finish on the old generation while new ones use the new", function()
    local fox = new_fox({ config = { playbook_options = { delay = 0.4 } } }):start()
    local a = H.create_incident(fakes, { name = "Started before the reload" })
    assert.equals(202, H.deliver(fox, H.created_event(a)).status)
    assert.truthy(H.wait_for(function() return fox:health().queue.running == 1 end, 3))
    H.write_playbook(fox.dir, "v2")
    fox:signal("HUP")
    assert.truthy(H.wait_for(function() return fox:health().generation == 2 end, 5))
    local b = H.create_incident(fakes, { name = "Started after the reload" })
    assert.equals(202, H.deliver(fox, H.created_event(b)).status)
    local texts = H.wait_for(function()
      local t = {}
      for _, m in ipairs(H.messages(fakes)) do t[m.text:match("(INC%-%d+)")] = m.text end
      return t[a.reference] and t[b.reference] and t
    end, 5)
    assert.truthy(texts)
    assert.matches("^fox v1:", texts[a.reference])
    assert.matches("^fox v2:", texts[b.reference])
    assert.matches("event=investigation [^\n]*generation=1 [^\n]*incident=" .. a.reference:gsub("%-", "%%-"),
      fox:log_text())
  end)

  it("investigates every incident across a kill -9 during a burst, re-posting none that was recorded", function()
    local fox = new_fox({ config = { concurrency = 4, playbook_options = { delay = 0.5 } } }):start()
    local incs = {}
    for i = 1, 20 do incs[i] = H.create_incident(fakes, { name = "Burst " .. i }) end
    for i = 1, #incs do assert.equals(202, H.deliver(fox, H.created_event(incs[i])).status) end
    -- The first four post at about 0.5 s, the next four at about 1 s: kill in between.
    task.sleep(0.75)
    fox:kill9()
    local before = 0
    for _ in pairs(H.posts_by_ref(fakes)) do before = before + 1 end
    assert.is_true(before < #incs, "the kill came too late to test anything")
    fox:set_config({ concurrency = 8, playbook_options = { delay = 0.05 } })
    fox:start()
    assert.truthy(H.wait_for(function()
      local p = H.posts_by_ref(fakes)
      for _, inc in ipairs(incs) do
        if not p[inc.reference] then return false end
      end
      return true
    end, 10))
    task.sleep(0.2)
    -- Exactly once, except a post Slack took in the instant before the kill, before fox
    -- recorded it (docs/reliability.md): at most the 4 that could run at that moment.
    local posts = H.posts_by_ref(fakes)
    local duplicates = 0
    for _, inc in ipairs(incs) do
      assert.is_true((posts[inc.reference] or 0) >= 1, inc.reference)
      duplicates = duplicates + posts[inc.reference] - 1
    end
    assert.is_true(duplicates <= 4, duplicates .. " duplicate posts")
    -- Work that was running when the process died ran again (attempt 2).
    local resumed = 0
    for _, m in ipairs(H.messages(fakes)) do
      if m.text:find("attempt 2", 1, true) then resumed = resumed + 1 end
    end
    assert.is_true(resumed >= 1)
    assert.matches("event=investigation.resumed", fox:log_text())
    assert.equals(0, fox:stop())
    local records, queued = fox:records()
    for _, inc in ipairs(incs) do assert.equals("done", records[inc.id].status) end
    assert.equals(0, #queued)
  end)

  it("drains on SIGTERM: stops accepting, finishes running investigations, exits 0", function()
    local fox = new_fox({ config = { playbook_options = { delay = 0.6 } } }):start()
    local inc = H.create_incident(fakes, { name = "Drain me" })
    assert.equals(202, H.deliver(fox, H.created_event(inc)).status)
    assert.truthy(H.wait_for(function() return fox:health().queue.running == 1 end, 3))
    local t0 = task.now()
    fox:signal("TERM")
    task.sleep(0.1)
    local res = http.request({ url = fox.url .. "/healthz", timeout = 1 })
    assert.is_nil(res) -- the listener is closed
    assert.equals(0, fox:wait_exit(5))
    local took = task.now() - t0
    assert.is_true(took >= 0.3, "exited before the investigation finished")
    assert.equals(1, H.posts_by_ref(fakes)[inc.reference])
    assert.matches("event=serve.stopped[^\n]*unfinished=0", fox:log_text())
    assert.equals("done", fox:records()[inc.id].status)
  end)

  it("exits at the drain timeout and runs the unfinished investigation at the next start", function()
    local fox = new_fox({ config = { drain_timeout = 0.3, playbook_options = { delay = 5 } } }):start()
    local inc = H.create_incident(fakes, { name = "Too slow to drain" })
    assert.equals(202, H.deliver(fox, H.created_event(inc)).status)
    assert.truthy(H.wait_for(function() return fox:health().queue.running == 1 end, 3))
    local t0 = task.now()
    fox:signal("INT")
    assert.equals(0, fox:wait_exit(5))
    assert.is_true(task.now() - t0 < 2)
    assert.matches("event=serve.drain_incomplete", fox:log_text())
    assert.is_nil(H.posts_by_ref(fakes)[inc.reference])
    fox:set_config({ playbook_options = { delay = 0 } })
    fox:start()
    assert.truthy(H.wait_for(function() return H.posts_by_ref(fakes)[inc.reference] end, 5))
    task.sleep(0.2)
    assert.equals(1, H.posts_by_ref(fakes)[inc.reference])
  end)

  it("ends the drain at once on a second signal", function()
    local fox = new_fox({ config = { playbook_options = { delay = 5 } } }):start()
    local inc = H.create_incident(fakes, { name = "Impatient operator" })
    assert.equals(202, H.deliver(fox, H.created_event(inc)).status)
    assert.truthy(H.wait_for(function() return fox:health().queue.running == 1 end, 3))
    local t0 = task.now()
    fox:signal("TERM")
    task.sleep(0.2)
    fox:signal("TERM")
    assert.equals(0, fox:wait_exit(5))
    assert.is_true(task.now() - t0 < 2)
    assert.matches("event=serve.drain_incomplete", fox:log_text())
    local _, queued = fox:records()
    assert.equals(1, #queued)
  end)

  it("marks /healthz degraded on a 401 from incident.io and recovers on SIGHUP with a new key file", function()
    local fox = new_fox({ api_key = CANARY_BAD_KEY, api_key_file = true }):start()
    local inc = H.create_incident(fakes, { name = "Key was revoked" })
    assert.equals(202, H.deliver(fox, H.created_event(inc)).status)
    local h = H.wait_for(function()
      local doc = fox:health()
      return doc.status == "degraded" and doc
    end, 5)
    assert.truthy(h)
    assert.is_false(h.incidentio.ok)
    assert.matches("401", h.incidentio.error)
    assert.matches("key", h.problems[1])
    assert.equals(1, fox:metric("fox_incidentio_degraded"))
    assert.truthy(H.alive(fox.pid))
    assert.is_nil(H.posts_by_ref(fakes)[inc.reference])
    -- The operator rotates the key and reloads.
    H.write_file(fox.key_file, CANARY_KEY .. "\n")
    fox:signal("HUP")
    assert.truthy(H.wait_for(function() return fox:health().status == "ok" end, 5))
    assert.truthy(H.wait_for(function() return H.posts_by_ref(fakes)[inc.reference] end, 5))
    assert.equals(0, fox:metric("fox_incidentio_degraded"))
    assert.equals(0, fox:stop())
    assert.equals("done", fox:records()[inc.id].status)
  end)

  it("serves POST /v1/changes and POST /mcp only with their tokens", function()
    local fox = new_fox({ env = { FOX_CHANGES_TOKEN = "changes-token-123", FOX_MCP_TOKEN = "mcp-token-123" } }):start()
    local base = fox.url
    local change = json.encode({ changes = { { service = "payments-api", kind = "deploy",
      description = "v2.0.1", at = os.date("!%Y-%m-%dT%H:%M:%SZ") } } })
    local denied = assert(http.request({ method = "POST", url = base .. "/v1/changes", body = change,
      headers = { ["Content-Type"] = "application/json" } }))
    assert.equals(401, denied.status)
    local pushed = assert(http.request({ method = "POST", url = base .. "/v1/changes", body = change,
      headers = { ["Content-Type"] = "application/json", Authorization = "Bearer changes-token-123" } }))
    assert.is_true(pushed.status >= 200 and pushed.status < 300, pushed.body)
    local rpc = json.encode({ jsonrpc = "2.0", id = 1, method = "initialize", params = {
      protocolVersion = "2025-06-18", capabilities = {}, clientInfo = { name = "spec", version = "1" } } })
    local mcp_headers = { ["Content-Type"] = "application/json", Accept = "application/json, text/event-stream" }
    local no_token = assert(http.request({ method = "POST", url = base .. "/mcp", body = rpc, headers = mcp_headers }))
    assert.equals(401, no_token.status)
    mcp_headers.Authorization = "Bearer mcp-token-123"
    local init = assert(http.request({ method = "POST", url = base .. "/mcp", body = rpc, headers = mcp_headers }))
    assert.equals(200, init.status, init.body)
    assert.equals("2025-06-18", json.decode(init.body).result.protocolVersion)
    assert.equals(0, fox:stop())
  end)

  it("refuses to start on a locked state directory or an invalid config, with a clear message", function()
    local fox = new_fox():start()
    local other = new_fox()
    other:set_config({ state_dir = fox.state_dir })
    assert.equals(1, other:start(nil, true))
    assert.matches("locked", other:log_text())
    local bad = new_fox({ config = { poll_intervall = 5 } })
    assert.equals(1, bad:start(nil, true))
    assert.matches("fox%.conf%.lua:%d+: unknown key 'poll_intervall' %(did you mean 'poll_interval'%?%)",
      bad:log_text())
    assert.equals(2, bad:start("--bogus", true))
    assert.equals(1, bad:start("--listen nonsense", true))
    assert.matches("fox serve: %-%-listen must be HOST:PORT", bad:log_text())
    local corrupt = new_fox()
    os.execute("mkdir -p " .. H.sh_quote(corrupt.state_dir))
    H.write_file(corrupt.state_dir .. "/fox.db", string.rep("this is not a database ", 100))
    assert.equals(1, corrupt:start(nil, true))
    assert.matches("fox serve: cannot open the state directory: [^\n]*fox%.db", corrupt:log_text())
  end)
end)
