-- Faults from the APIs (issue 8, item 1): `fox serve` with the default playbook while
-- the fake incident.io answers 429 to 30% of requests (Retry-After in seconds and as an
-- HTTP date), bursts of 5xx, resets, timeouts, truncated and malformed JSON, a 100 MB
-- body and a body dripped a byte a second. Every investigation ends with its findings
-- in Slack exactly once (partial findings name what failed); fox never goes over
-- incident.io's rate limit as the fake counts it; fox never crashes.
-- FOX_SOAK=1 (make soak) runs the storm with more incidents.
local H = require("serve_helper")
local X = require("helpers.hardening")
local incidentio = require("fox.incidentio")
local task = require("fox.task")

local function http_date(offset)
  return os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + offset)
end

describe("API faults", function()
  local fakes, fox

  setup(function()
    fakes = X.start_fakes()
    fox = X.new_fox(fakes):start()
  end)

  teardown(function()
    if fox and fox.pid and H.alive(fox.pid) then fox:stop(10) end
    if fox then X.assert_clean_log(fox) end
    if fakes then fakes.stop() end
    H.cleanup()
  end)

  before_each(function()
    X.reset(fakes)
  end)

  after_each(function()
    -- No crash, whatever happened: the process is alive and says it is healthy.
    assert.is_true(H.alive(fox.pid), "fox died:\n" .. fox:log_text():sub(-3000))
    local health, code = fox:health()
    assert.equals(200, code, "healthz: " .. tostring(health and health.status))
  end)

  it("investigates every incident once through 30% 429s, 5xx bursts, resets, timeouts, bad JSON", function()
    local n = X.SOAK and 60 or 12
    X.faults(fakes, {
      { status = 502, times = 6 },                                          -- a burst of 5xx first
      { status = 429, retry_after = 1, probability = 0.1, times = X.SOAK and 40 or 8 }, -- seconds form
      { status = 429, retry_after = http_date(1), probability = 0.22 },     -- HTTP-date form
      { status = 503, probability = 0.08 },
      { reset = true, probability = 0.05 },
      { truncate = true, probability = 0.05 },
      { malformed_json = true, probability = 0.05 },
      { delay_ms = 2500, probability = 0.04 },                              -- > the 2 s client timeout
    })
    local incidents = X.create_incidents(fakes, n, "Faults")
    for _, status in ipairs(X.deliver_all(fox, incidents)) do assert.equals(202, status) end
    local by = X.assert_posted_once(fakes, incidents, X.SOAK and 240 or 90)
    -- Partial findings say what failed; complete ones need not.
    for _, inc in ipairs(incidents) do
      local text = table.concat(by[inc.slack_channel_id].texts, "\n")
      if text:find("Could not query", 1, true) then
        assert.matches("Could not query: similar", text, 1, true)
      end
    end
    local stats = X.stats(fakes)
    assert.is_true(stats.faults_applied > n, "faults applied: " .. tostring(stats.faults_applied))
    assert.equals(0, stats.rate_limited, "fox went over the fake's rate limit")
  end)

  it("survives a 100 MB answer: the transfer is cut at the body cap and retried", function()
    X.faults(fakes, {
      { path_prefix = "/v2/incidents/", body_bytes = 100 * 1000 * 1000, times = 1 }, -- the re-fetch
      { path = "/v2/incidents", body_bytes = 100 * 1000 * 1000, times = 1 },         -- a source's list
    })
    local incidents = X.create_incidents(fakes, 2, "Huge")
    X.deliver_all(fox, incidents)
    X.assert_posted_once(fakes, incidents, 60)
    -- fox did not keep 100 MB around.
    local rss = fox:metric("fox_process_resident_memory_bytes")
    assert.is_true(rss > 0 and rss < 200 * 1024 * 1024, "resident memory " .. rss)
  end)

  it("gives up on an answer dripped a byte a second at the client timeout, and retries", function()
    X.faults(fakes, {
      { path_prefix = "/v2/incidents/", drip = true, drip_bytes = 1, drip_ms = 1000, times = 1 },
    })
    local t0 = task.now()
    local incidents = X.create_incidents(fakes, 1, "Drip")
    X.deliver_all(fox, incidents)
    X.assert_posted_once(fakes, incidents, 30)
    assert.is_true(task.now() - t0 < 20, "the drip held the investigation for " .. (task.now() - t0) .. " s")
  end)

  it("posts partial findings that name the failed source when one part of the API keeps failing", function()
    -- The similar-incidents source always asks for the incident's relationships.
    X.faults(fakes, { { path_prefix = "/v1/incident_relationships", status = 500 } })
    local incidents = X.create_incidents(fakes, 2, "Partial")
    X.deliver_all(fox, incidents)
    local by = X.assert_posted_once(fakes, incidents, 30)
    for _, inc in ipairs(incidents) do
      local c = by[inc.slack_channel_id]
      local findings
      for _, t in ipairs(c.texts) do if t:find("^fox findings") then findings = t end end
      assert.matches("Could not query: similar", findings, 1, true)
      assert.matches("similar", table.concat(c.blocks, "\n"), 1, true)
    end
  end)

  it("never goes over the rate limit: a burst of requests is paced to the bucket", function()
    -- The client's limiter at 1/12 scale against a fake enforcing the same bucket:
    -- 150 requests from 30 tasks at once. The fake's bucket runs on arrival times, fox's
    -- on send times; the 10% margin of a 100-token bucket at 20/s absorbs over half a
    -- second of send-to-arrival jitter (a loaded machine, ASan), where 40 at 40/s
    -- absorbed 0.11 s.
    H.request("POST", fakes.io .. "/_fake/config",
      { rate_limit = { enabled = true, capacity = 100, refill_per_sec = 20 } })
    local inc = X.create_incidents(fakes, 1, "Limiter")[1]
    local client = incidentio.new({ base_url = fakes.io, api_key = X.API_KEY, rate_capacity = 100, rate_refill = 20 })
    client:reset_rate_limit()
    local t0 = task.now()
    local fns = {}
    for i = 1, 30 do
      fns[i] = function()
        for _ = 1, 5 do assert(client:get_incident(inc.id)) end
        return true
      end
    end
    local values, errors = task.gather(fns)
    for i = 1, 30 do assert.is_true(values[i], tostring(errors[i])) end
    local elapsed = task.now() - t0
    local stats = X.stats(fakes)
    assert.equals(0, stats.rate_limited, "the fake answered 429 " .. tostring(stats.rate_limited) .. " times")
    -- 150 requests, 90 at once then 18/s: paced, not bunched.
    assert.is_true(elapsed > 2.5, "150 requests took only " .. elapsed .. " s")
    client:reset_rate_limit()
  end)
end)
