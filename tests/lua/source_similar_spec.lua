-- The similar source: similar past incidents through the correlate_incidents tool,
-- against the fake incident.io (tests/fakes/incidentio/server.js, demo seed).
local shared = require("fox.shared")
local task = require("fox.task")
local incidentio = require("fox.incidentio")
local fakes = require("helpers.fakes")
local src = require("sources.similar")

describe("similar source", function()
  local iio, client, inc2

  setup(function()
    iio = fakes.start("incidentio", { args = { "--seed", "demo" } })
    client = incidentio.new({ base_url = iio.url, api_key = "test-viewer-key" })
    inc2 = assert(client:get_incident("INC-2"))
  end)

  teardown(function()
    if iio then iio:stop() end
  end)

  before_each(function()
    shared.flush() -- the incident index lives there
    iio:control("DELETE", "/_fake/faults")
  end)

  local function query(config, incident)
    config = config or {}
    config.client = config.client or client
    incident = incident or { id = inc2.id, reference = inc2.reference, services = { "payments-api" } }
    return src.query({ incident = incident,
                       config = config, timeout = 5 })
  end

  it("finds last month's payments-api incident and how it was resolved", function()
    local r, err = query()
    assert.is_nil(err)
    assert.equals("similar", r.source)
    assert.equals(1, #r.items)
    local m = r.items[1]
    assert.equals("INC-1", m.reference)
    assert.equals("payments-api 504s after deploy", m.name)
    assert.is_true(m.score >= 0.5)
    local shared_svc = {}
    for _, s in ipairs(m.shared_services) do shared_svc[s] = true end
    assert.is_true(shared_svc["payments-api"])
    assert.matches("^Rolled back payments%-api from v2%.29%.0 to v2%.28%.4", m.resolution.text)
    assert.equals("Marcus Chen", m.resolution.lead.name)
    assert.is_number(m.resolution.duration_seconds)
    assert.matches("^https://", m.resolution.postmortem_url)
    assert.matches("^1 similar incident; best: INC%-1 payments%-api 504s after deploy %(score 0%.%d+%): "
      .. "Rolled back", r.summary)
  end)

  it("never lists the incident itself, and honours the threshold and range", function()
    local r = assert(query({ threshold = 0 , time_range = "365d", limit = 10 }))
    for _, m in ipairs(r.items) do assert.are_not.equals(inc2.id, m.id) end
    assert.is_true(#r.items >= 2)
    for i = 2, #r.items do assert.is_true(r.items[i - 1].score >= r.items[i].score) end
    r = assert(query({ threshold = 0.99 }))
    assert.same({}, r.items)
    assert.equals("no similar incident in the last 90d (threshold 0.99)", r.summary)
    r = assert(query({ time_range = "7d" }))
    assert.same({}, r.items) -- INC-1 is 32 days old
  end)

  it("fails with the tool's message for an unknown incident or one without id", function()
    local r, err = query(nil, { id = "01JZZZZZZZZZZZZZZZZZZZZZZZ" })
    assert.is_nil(r)
    assert.matches("^similar: correlate_incidents failed: ", err)
    r, err = query(nil, {})
    assert.is_nil(r)
    assert.equals("similar: the incident has no id", err)
  end)

  it("fails, without hanging, when incident.io is down", function()
    iio:faults({ { path_prefix = "/v", status = 503 } })
    local quick = incidentio.new({ base_url = iio.url, api_key = "test-viewer-key", max_attempts = 1,
                                   max_retry_time = 0.2 })
    local t0 = task.now()
    local r, err = query({ client = quick })
    assert.is_nil(r)
    assert.matches("^similar: correlate_incidents failed: .*503", err)
    assert.is_true(task.now() - t0 < 2)
  end)

  it("keeps the matches when reading how one was resolved fails", function()
    -- the tool reads the target's updates first; the reads after it fail
    iio:faults({ { path = "/v2/incident_updates", status = 500, skip = 1 } })
    local quick = incidentio.new({ base_url = iio.url, api_key = "test-viewer-key", max_attempts = 1,
                                   max_retry_time = 0.2 })
    local r, err = query({ client = quick })
    assert.is_nil(err)
    assert.equals(1, #r.items)
    assert.equals("INC-1", r.items[1].reference)
    assert.is_nil(r.items[1].resolution.text)
    assert.matches("^similar: could not read how INC%-1 was resolved", r.warnings[1])
  end)
end)

describe("similar.resolution_text", function()
  it("takes the update that resolved the incident, without its 'Resolved:'", function()
    assert.equals("Rolled back to v1.", src.resolution_text({
      { created_at = "2026-01-01T10:00:00Z", message = "Looking into it", new_incident_status = { category = "live" } },
      { created_at = "2026-01-01T11:00:00Z", message = "Resolved: Rolled back to v1.",
        new_incident_status = { name = "Documenting", category = "learning" } },
      { created_at = "2026-01-02T10:00:00Z", message = "Postmortem published: https://x",
        new_incident_status = { name = "Closed", category = "closed" } },
    }))
    assert.equals("restarted the pods", src.resolution_text({
      { created_at = "2026-01-01T11:00:00Z", message = "Fixed: restarted the pods" },
      { created_at = "2026-01-01T10:00:00Z", message = "investigating" },
    }))
    assert.is_nil(src.resolution_text({ { message = "still looking" } }))
    assert.is_nil(src.resolution_text(nil))
  end)
end)
