-- The tool registry and validator, and the three tools against the fake incident.io:
-- the shapes they return and the exact API calls they make.
local fakes = require("helpers.fakes")
local incidentio = require("fox.incidentio")
local tools = require("fox.tools")
local json = require("fox.json")
local timerange = require("fox.timerange")
local index = require("fox.incident_index")

local fake, client

local function call(name, input)
  return tools.call(name, input, { client = client })
end

local function refs(list)
  local out = {}
  for i, inc in ipairs(list) do out[i] = inc.reference end
  return out
end

local function contains(list, v)
  for _, x in ipairs(list) do
    if x == v then return true end
  end
  return false
end

describe("tool registry and validation", function()
  it("lists the three tools with a name, a description and an object schema", function()
    local names = {}
    for _, t in ipairs(tools.list()) do
      names[#names + 1] = t.name
      local d = tools.describe(t)
      assert.is_string(d.description)
      assert.equals("object", d.input_schema.type)
      assert.is_nil(d.handler)
      assert.is_string(json.encode(d)) -- plain data
    end
    assert.same({ "get_incident_details", "list_recent_incidents", "correlate_incidents" }, names)
  end)

  it("applies defaults", function()
    local args = assert(tools.validate(tools.get("list_recent_incidents").input_schema, {}))
    assert.same({ status = "active", time_range = "7d", limit = 50 }, args)
    args = assert(tools.validate(tools.get("correlate_incidents").input_schema, { incident_id = "INC-2" }))
    assert.same({ incident_id = "INC-2", similarity_threshold = 0.5, time_range = "30d", limit = 10 }, args)
    args = assert(tools.validate(tools.get("get_incident_details").input_schema, { incident_id = "2" }))
    assert.is_false(args.include_timeline)
  end)

  it("names the bad field in every message", function()
    local function bad(name, input)
      local res, err = tools.call(name, input, { client = false })
      assert.is_nil(res)
      assert.equals("invalid_input", err.kind)
      return err.message
    end
    assert.matches("^incident_id is required", bad("get_incident_details", {}))
    assert.equals('include_timeline must be true or false (got "yes")',
      bad("get_incident_details", { incident_id = "INC-2", include_timeline = "yes" }))
    assert.equals("unknown field incident (expected incident_id, include_timeline)",
      bad("get_incident_details", { incident = "INC-2" }))
    assert.equals("limit must be at most 500 (got 1000)", bad("list_recent_incidents", { limit = 1000 }))
    assert.equals('limit must be an integer from 1 to 500 (got "ten")', bad("list_recent_incidents", { limit = "ten" }))
    assert.equals("limit must be an integer from 1 to 500 (got 2.5)", bad("list_recent_incidents", { limit = 2.5 }))
    assert.matches("^time_range: cannot read time range 7 days",
      bad("list_recent_incidents", { time_range = "7 days" }))
    assert.equals("similarity_threshold must be at most 1 (got 1.5)",
      bad("correlate_incidents", { incident_id = "INC-2", similarity_threshold = 1.5 }))
    assert.matches("^incident_id: ", bad("correlate_incidents", { incident_id = "INC 2" }))
    assert.matches("^input must be an object", bad("correlate_incidents", { "INC-2" }))
    assert.matches('^unknown tool "nope"', bad("nope", {}))
  end)
end)

describe("time ranges", function()
  local now = timerange.parse_time("2025-04-17T11:17:18Z")
  it("reads durations and ISO-8601 intervals", function()
    assert.equals(30 * 60, timerange.parse("30m", now).seconds)
    assert.equals(24 * 3600, timerange.parse("24h", now).seconds)
    assert.equals(7 * 86400, timerange.parse("7d", now).seconds)
    assert.equals(28 * 86400, timerange.parse("4w", now).seconds)
    assert.equals(7 * 86400, timerange.parse("P7D", now).seconds)
    local r = timerange.parse("2025-01-01T00:00:00Z/2025-01-08T00:00:00Z", now)
    assert.equals("2025-01-01T00:00:00Z", timerange.format_time(r.from))
    assert.is_true(r.explicit_end)
    r = timerange.parse("2025-01-01/P1W", now)
    assert.equals("2025-01-08T00:00:00Z", timerange.format_time(r.to))
    r = timerange.parse("PT2H/2025-01-01T02:00:00+01:00", now)
    assert.equals("2024-12-31T23:00:00Z", timerange.format_time(r.from))
    assert.is_nil(timerange.parse("yesterday", now))
    assert.is_nil(timerange.parse("2025-01-08/2025-01-01", now))
    assert.equals(now, timerange.parse_http_date("Thu, 17 Apr 2025 11:17:18 GMT"))
  end)
end)

describe("tools against the fake incident.io", function()
  lazy_setup(function()
    fake = fakes.incidentio({ seed = "default" })
    client = incidentio.new({ base_url = fake.url, api_key = fakes.KEYS.viewer, backoff_base = 0.01 })
  end)
  lazy_teardown(function()
    if fake then fake:stop() end
  end)
  before_each(function()
    fake:reset()
    client:reset_rate_limit()
    client:clear_cache()
    index.clear(client)
    fake:clear_requests()
  end)

  describe("get_incident_details", function()
    it("returns the normalised incident from one API call", function()
      local res = assert(call("get_incident_details", { incident_id = "INC-2" }))
      local inc = res.incident
      assert.is_nil(res.timeline)
      assert.equals("INC-2", inc.reference)
      assert.is_string(inc.id)
      assert.equals("Payments failing at checkout: PaymentGatewayTimeout (upstream 504)", inc.name)
      assert.matches("PaymentGatewayTimeout", inc.summary)
      assert.same({ name = "Investigating", category = "live" }, inc.status)
      assert.same({ name = "Critical", rank = 4 }, inc.severity)
      assert.equals("P0", inc.priority)
      assert.equals("Production Outage", inc.incident_type)
      assert.equals("standard", inc.mode)
      assert.equals("public", inc.visibility)
      assert.matches("/incidents/2$", inc.permalink)
      assert.is_string(inc.slack_channel_id)
      assert.matches("^inc%-2%-", inc.slack_channel_name)
      assert.same({ name = "Priya Raman", email = "priya@acme-pay.example" }, inc.lead)
      assert.equals("Incident Lead", inc.roles[1].role)
      assert.equals("lead", inc.roles[1].type)
      assert.equals(json.null, inc.roles[3].assignee)
      assert.same({ "payments-api" }, inc.custom_fields["Affected services"])
      assert.same({ 1840 }, inc.custom_fields["Customers affected"])
      assert.equals(json.empty_array, inc.custom_fields["Root cause"])
      assert.is_true(contains(inc.services, "payments-api"))
      assert.is_string(inc.timestamps["Impact started"])
      assert.is_table(inc.durations)
      assert.is_string(inc.created_at)
      assert.is_string(inc.updated_at)
      local reqs = fake:api_requests()
      assert.equals(1, #reqs)
      assert.equals("/v2/incidents/2", reqs[1].path)
    end)

    it("merges updates and timeline items in time order", function()
      local res = assert(call("get_incident_details", { incident_id = "2", include_timeline = true }))
      local tl = res.timeline
      assert.is_true(#tl >= 8)
      local kinds = {}
      local prev
      for _, e in ipairs(tl) do
        local t = timerange.parse_time(e.at)
        assert.is_number(t)
        if prev then assert.is_true(t >= prev, "out of order at " .. e.at) end
        prev = t
        kinds[e.kind] = (kinds[e.kind] or 0) + 1
        assert.is_string(e.text)
      end
      assert.equals(3, kinds.update)
      assert.is_true(kinds.timeline_item >= 5)
      local escalation
      for _, e in ipairs(tl) do
        if e.kind == "update" and e.severity == "Critical" and not escalation then escalation = e end
      end
      assert.equals("Investigating", escalation.status)
      assert.equals("Priya Raman", escalation.actor)
      assert.matches("^Escalating to Critical", escalation.text)
      local id = res.incident.id
      local upd = fake:api_requests({ path = "/v2/incident_updates" })
      local items = fake:api_requests({ path = "/v2/incident_timeline_items" })
      assert.equals(1, #upd)
      assert.equals(1, #items)
      assert.equals(id, upd[1].query.incident_id)
      assert.equals(id, items[1].query.incident_id)
    end)

    it("uses incident updates alone on a server without timeline items", function()
      fake:config({ timeline_items = false })
      local res = assert(call("get_incident_details", { incident_id = "INC-2", include_timeline = true }))
      assert.equals(3, #res.timeline)
      for _, e in ipairs(res.timeline) do assert.equals("update", e.kind) end
    end)

    it("gives nulls for what an incident does not have yet", function()
      local inc = assert(call("get_incident_details", { incident_id = "INC-60" })).incident
      assert.equals(json.null, inc.severity)
      assert.equals(json.null, inc.priority)
      assert.equals(json.null, inc.lead)
      assert.equals(json.null, inc.summary)
      assert.equals(json.null, inc.slack_channel_id)
      assert.equals("triage", inc.status.category)
    end)

    it("reports durations, resolution time and the postmortem of a closed incident", function()
      local inc = assert(call("get_incident_details", { incident_id = "INC-9" })).incident
      assert.equals("closed", inc.status.category)
      assert.is_number(inc.durations["Duration"])
      assert.is_number(inc.durations["Time to resolve"])
      assert.is_string(inc.timestamps["Resolved at"])
      assert.is_string(inc.postmortem_url)
    end)

    it("fails with the 404 message for an unknown incident", function()
      local res, err = call("get_incident_details", { incident_id = "INC-4040" })
      assert.is_nil(res)
      assert.equals("not_found", err.kind)
      assert.matches("incident INC-4040 not found", err.message, 1, true)
    end)
  end)

  describe("list_recent_incidents", function()
    it("active Critical incidents of the last 7 days, with the API's own filters", function()
      local res = assert(call("list_recent_incidents", { status = "active", severity = "Critical", time_range = "7d" }))
      assert.same({ "INC-2" }, refs(res.incidents))
      assert.equals(1, res.count)
      assert.is_false(res.truncated)
      assert.equals("active", res.filters.status)
      assert.same({ "triage", "live", "paused" }, res.filters.status_categories)
      assert.equals("Critical", res.filters.severity)
      assert.equals("7d", res.filters.time_range.spec)
      local sev = fake:api_requests({ path = "/v1/severities" })
      assert.equals(1, #sev)
      local reqs = fake:api_requests({ path = "/v2/incidents" })
      assert.equals(1, #reqs)
      local q = reqs[1]
      assert.equals(200, q.status)
      assert.same({ "triage", "live", "paused" }, fakes.query_values(q, "status_category[one_of]"))
      assert.same({ res.filters.severity_id }, fakes.query_values(q, "severity[one_of]"))
      assert.equals("created_at_newest_first", q.query.sort_by)
      assert.is_string(q.query["created_at[gte]"])
      assert.is_nil(q.query.status)
      assert.is_nil(q.query.severity)
    end)

    it("resolved means learning and closed", function()
      local res = assert(call("list_recent_incidents", { status = "resolved", time_range = "30d" }))
      assert.is_true(res.count > 0)
      for _, inc in ipairs(res.incidents) do
        assert.is_true(inc.status.category == "learning" or inc.status.category == "closed")
      end
      local q = fake:api_requests({ path = "/v2/incidents" })[1]
      assert.same({ "learning", "closed" }, fakes.query_values(q, "status_category[one_of]"))
    end)

    it("takes a single category, a status name, or all", function()
      local paused = assert(call("list_recent_incidents", { status = "paused", time_range = "30d" }))
      assert.same({ "INC-53" }, refs(paused.incidents))
      fake:clear_requests()
      local fixing = assert(call("list_recent_incidents", { status = "Fixing", time_range = "30d" }))
      assert.same({ "INC-58" }, refs(fixing.incidents))
      local q = fake:api_requests({ path = "/v2/incidents" })[1]
      assert.same({ fixing.filters.status_id }, fakes.query_values(q, "status[one_of]"))
      fake:clear_requests()
      local all = assert(call("list_recent_incidents", { status = "all", time_range = "30d" }))
      assert.is_true(all.count > paused.count + fixing.count)
      assert.same({}, fakes.query_values(fake:api_requests({ path = "/v2/incidents" })[1], "status_category[one_of]"))
    end)

    it("never lists test or tutorial incidents (the API's default mode filter)", function()
      local res = assert(call("list_recent_incidents", { status = "all", time_range = "200d", limit = 500 }))
      for _, inc in ipairs(res.incidents) do
        assert.is_true(inc.mode == "standard" or inc.mode == "retrospective")
      end
      local r = refs(res.incidents)
      assert.is_false(contains(r, "INC-40"))
      assert.is_false(contains(r, "INC-21"))
      assert.is_true(contains(r, "INC-12")) -- retrospective
    end)

    it("keeps to the exact time range, newest first", function()
      local res = assert(call("list_recent_incidents", { status = "all", time_range = "30m" }))
      assert.same({ "INC-60" }, refs(res.incidents))
      res = assert(call("list_recent_incidents", { status = "all", time_range = "3d" }))
      local prev
      for _, inc in ipairs(res.incidents) do
        local t = timerange.parse_time(inc.created_at)
        assert.is_true(t >= os.time() - 3 * 86400 - 5)
        if prev then assert.is_true(t <= prev) end
        prev = t
      end
    end)

    it("sends created_at[lte] for an interval with an end", function()
      local to = os.time() - 20 * 86400
      local spec = timerange.format_time(to - 10 * 86400) .. "/" .. timerange.format_time(to)
      local res = assert(call("list_recent_incidents", { status = "all", time_range = spec }))
      for _, inc in ipairs(res.incidents) do
        local t = timerange.parse_time(inc.created_at)
        assert.is_true(t >= to - 10 * 86400 and t <= to)
      end
      local q = fake:api_requests({ path = "/v2/incidents" })[1]
      assert.is_string(q.query["created_at[lte]"])
    end)

    it("stops at the limit and says the list is truncated", function()
      local res = assert(call("list_recent_incidents", { status = "all", time_range = "120d", limit = 5 }))
      assert.equals(5, res.count)
      assert.is_true(res.truncated)
      local full = assert(call("list_recent_incidents", { status = "all", time_range = "120d", limit = 500 }))
      assert.is_false(full.truncated)
      local a, b = refs(full.incidents), refs(res.incidents)
      assert.same({ a[1], a[2] }, { b[1], b[2] })
    end)

    it("filters by service through the services policy", function()
      local res = assert(call("list_recent_incidents", { status = "all", time_range = "30d",
                                                         service = "Payments API" }))
      assert.is_true(res.count >= 3)
      for _, inc in ipairs(res.incidents) do assert.is_true(contains(inc.services, "payments-api")) end
      local r = refs(res.incidents)
      assert.is_true(contains(r, "INC-46"))
      assert.is_true(contains(r, "INC-2"))
      assert.equals("payments-api", res.filters.service)
    end)

    it("asks the API for the service's option or catalog entry when the policy names a field", function()
      local services = require("policies.services")
      local saved = services.api_filter_field
      local ok, err = pcall(function()
        for _, field in ipairs({ "Affected services", "Affected services (catalog)" }) do
          services.api_filter_field = field
          client:clear_cache()
          fake:clear_requests()
          local res = assert(call("list_recent_incidents", { status = "all", time_range = "30d",
                                                             service = "payments-api" }))
          assert.is_true(res.count >= 2)
          for _, inc in ipairs(res.incidents) do assert.is_true(contains(inc.services, "payments-api")) end
          local key, value = res.filters.service_filter:match("^(custom_field%[[%w]+%]%[one_of%])=(%w+)$")
          assert.is_string(key, res.filters.service_filter)
          local last = fake:api_requests({ path = "/v2/incidents" })
          local q = last[#last]
          assert.equals(200, q.status)
          assert.same({ value }, fakes.query_values(q, key))
          if field:find("catalog") then
            assert.equals(1, #fake:api_requests({ path = "/v3/catalog_entries" }))
          end
        end
      end)
      services.api_filter_field = saved
      assert.is_true(ok, err)
    end)

    it("rejects an unknown severity naming the field and the account's severities", function()
      local res, err = call("list_recent_incidents", { severity = "Sev1" })
      assert.is_nil(res)
      assert.equals("invalid_input", err.kind)
      assert.matches('^severity: unknown severity "Sev1"', err.message)
      assert.matches("Critical, High, Medium, Low", err.message, 1, true)
      assert.equals(0, #fake:api_requests({ path = "/v2/incidents" }))
    end)

    it("accepts a priority as the severity", function()
      local res = assert(call("list_recent_incidents", { severity = "P0", status = "all", time_range = "120d" }))
      for _, inc in ipairs(res.incidents) do assert.equals("P0", inc.priority) end
    end)
  end)

  describe("correlate_incidents", function()
    it("finds the earlier look-alike in the default 30 days, with how it was resolved", function()
      local res = assert(call("correlate_incidents", { incident_id = "INC-2" }))
      assert.equals("INC-2", res.incident.reference)
      assert.equals(0.5, res.threshold)
      assert.equals("30d", res.time_range.spec)
      assert.is_true(res.candidates_considered > 10)
      local m = res.matches[1]
      assert.equals("INC-46", m.reference)
      assert.is_true(m.score >= 0.5)
      assert.equals(1, m.signals.service)
      assert.is_true(m.signals.error_pattern > 0)
      assert.is_true(m.signals.text > 0)
      assert.same({ "checkout-service", "payments-api" }, m.shared_services)
      assert.equals("learning", m.status.category)
      assert.same({ name = "Marcus Chen", email = "marcus@acme-pay.example" }, m.resolution.lead)
      assert.is_number(m.resolution.duration_seconds)
      assert.is_string(m.resolution.postmortem_url)
      for _, x in ipairs(res.matches) do
        assert.is_true(x.score >= 0.5)
        assert.are_not.equals("INC-2", x.reference)
        assert.are_not.equals("INC-40", x.reference) -- the game-day test incident
      end
    end)

    it("ranks the three past PaymentGatewayTimeout incidents first over 120 days", function()
      local res = assert(call("correlate_incidents", { incident_id = "INC-2", time_range = "120d" }))
      assert.same({ "INC-27", "INC-9", "INC-46" },
        { res.matches[1].reference, res.matches[2].reference, res.matches[3].reference })
      assert.is_true(res.matches[1].score >= res.matches[2].score)
      assert.equals(1, res.matches[1].signals.error_pattern)
    end)

    it("marks explicit links: related and merged incidents", function()
      local res = assert(call("correlate_incidents", { incident_id = "INC-46", time_range = "120d",
                                                       similarity_threshold = 0.9 }))
      local by = {}
      for _, m in ipairs(res.matches) do by[m.reference] = m end
      assert.is_not_nil(by["INC-47"])
      assert.is_true(by["INC-47"].link == "related" or by["INC-47"].link == "merged_from")
      assert.equals(1, by["INC-47"].signals.explicit_link)
      assert.equals("related", by["INC-27"].link)
      assert.is_true(by["INC-47"].score >= 0.95)
    end)

    it("keeps the history in the in-memory index: a second call does not list it again", function()
      assert(call("correlate_incidents", { incident_id = "INC-2" }))
      local first = fake:api_requests({ path = "/v2/incidents" })
      assert.equals(1, #first)
      assert.is_string(first[1].query["created_at[gte]"])
      fake:clear_requests()
      assert(call("correlate_incidents", { incident_id = "INC-2", limit = 3 }))
      local second = fake:api_requests({ path = "/v2/incidents" })
      assert.equals(0, #second)
      assert.equals(1, #fake:api_requests({ path = "/v2/incidents/2" }))
    end)

    it("loads the history once when several correlations start together", function()
      local task = require("fox.task")
      local values, errors = task.gather({
        function() return assert(call("correlate_incidents", { incident_id = "INC-2" })).matches[1].reference end,
        function() return assert(call("correlate_incidents", { incident_id = "2" })).matches[1].reference end,
      })
      assert.is_nil(errors[1])
      assert.is_nil(errors[2])
      assert.same({ "INC-46", "INC-46" }, values)
      local lists = fake:api_requests({ path = "/v2/incidents" })
      assert.equals(1, #lists)
      -- a wider window later loads only the part not covered yet
      fake:clear_requests()
      assert(call("correlate_incidents", { incident_id = "INC-46" }))
      lists = fake:api_requests({ path = "/v2/incidents" })
      assert.equals(1, #lists)
      assert.is_string(lists[1].query["created_at[lte]"])
    end)

    it("rebuilds the index when the shared dictionary evicted part of it", function()
      local shared = require("fox.shared")
      local correlate = require("policies.correlate")
      local evictions = index.evictions
      finally(function() index.evictions = evictions end)
      local first = assert(call("correlate_incidents", { incident_id = "INC-2" }))
      local keys = shared.keys("incidentio:idx:v" .. correlate.FEATURES_VERSION .. ":" .. client.scope .. ":rec:")
      assert.is_true(#keys > 10)
      shared.delete(keys[1])
      index.evictions = function() return evictions() + 1 end -- as the dictionary counts one
      fake:clear_requests()
      local again = assert(call("correlate_incidents", { incident_id = "INC-2" }))
      assert.equals(first.matches[1].reference, again.matches[1].reference)
      assert.equals(first.candidates_considered, again.candidates_considered)
      local reload = fake:api_requests({ path = "/v2/incidents" })
      assert.equals(1, #reload)
      assert.is_string(reload[1].query["created_at[gte]"])
      -- an eviction elsewhere in the dictionary: the index is checked, not reloaded
      index.evictions = function() return evictions() + 2 end
      fake:clear_requests()
      assert(call("correlate_incidents", { incident_id = "INC-2" }))
      assert.equals(0, #fake:api_requests({ path = "/v2/incidents" }))
    end)

    it("refreshes the index incrementally by updated_at", function()
      assert(call("correlate_incidents", { incident_id = "INC-2" }))
      local new = fake:create_incident({
        name = "PaymentGatewayTimeout again: upstream 504 from acquirer-eu",
        summary = "Error: PaymentGatewayTimeout: upstream 504 from acquirer-eu "
          .. "(POST /v3/authorisations, timeout after 5000ms)",
        services = { "payments-api" }, severity = "Critical", incident_type = "Production Outage",
        status = "Closed", lead = "marcus", created_at = timerange.format_time(os.time() - 3 * 86400),
        updated_at = timerange.format_time(os.time()), -- as a server does for a new record
      })
      fake:clear_requests()
      local saved = index.refresh_interval
      index.refresh_interval = 0
      local res = assert(call("correlate_incidents", { incident_id = "INC-2" }))
      index.refresh_interval = saved
      local refreshes = fake:api_requests({ path = "/v2/incidents" })
      assert.equals(1, #refreshes)
      assert.is_string(refreshes[1].query["updated_at[gte]"])
      assert.is_nil(refreshes[1].query["created_at[gte]"])
      assert.equals(new.reference, res.matches[1].reference)
    end)

    it("does not make a call wait for a due refresh: it runs in the background", function()
      assert(call("correlate_incidents", { incident_id = "INC-2" }))
      local new = fake:create_incident({
        name = "Checkout latency after the cache rollout", summary = "p99 up 4x",
        services = { "checkout-service" }, severity = "High", status = "Closed", lead = "marcus",
        created_at = timerange.format_time(os.time() - 86400),
        updated_at = timerange.format_time(os.time()),
      })
      local correlate = require("policies.correlate")
      local shared = require("fox.shared")
      local task = require("fox.task")
      local wait_for = require("helpers.proc").wait_for
      local lock = "incidentio:idx:v" .. correlate.FEATURES_VERSION .. ":" .. client.scope .. ":lock"
      local interval, stale_after = index.refresh_interval, index.stale_after
      finally(function() index.refresh_interval, index.stale_after = interval, stale_after end)
      index.refresh_interval, index.stale_after = 1, 1000
      task.sleep(1.1) -- the index is now a refresh interval old
      local before = assert(index.ensure(client, os.time() - 10 * 86400))
      -- ensure answered without yielding: the refresh holds the lock, not yet done
      assert.is_truthy(shared.get(lock))
      assert.is_nil(index.docno(client, new.id))
      assert.is_true(wait_for(function() return shared.get(lock) == nil end, 30))
      assert.is_number(index.docno(client, new.id))
      local after = assert(index.ensure(client, os.time() - 10 * 86400))
      assert.is_true(after.refreshed_at > before.refreshed_at - 1)
      -- far too old (stale_after intervals): the call waits for the refresh instead
      index.stale_after = 1
      task.sleep(1.1)
      fake:clear_requests()
      assert(index.ensure(client, os.time() - 10 * 86400))
      assert.is_nil(shared.get(lock))
      assert.equals(1, #fake:api_requests({ path = "/v2/incidents" }))
    end)

    it("gives the matches of scoring every incident, links included, reading fewer", function()
      local function ranked(res)
        local out = {}
        for i, m in ipairs(res.matches) do out[i] = m.reference .. "=" .. m.score .. "/" .. tostring(m.link) end
        return out
      end
      for _, case in ipairs({ { "INC-2", "120d", 0.5 }, { "INC-46", "120d", 0.6 }, { "INC-9", "365d", 0.45 } }) do
        local args = { incident_id = case[1], time_range = case[2], similarity_threshold = case[3], limit = 20 }
        local looked_up = assert(tools.call("correlate_incidents", args, { client = client }))
        local scanned = assert(tools.call("correlate_incidents", args, { client = client, scan = true }))
        assert.equals("index", looked_up.candidate_lookup)
        assert.equals("scan", scanned.candidate_lookup)
        assert.same(ranked(scanned), ranked(looked_up))
        assert.equals(scanned.candidates_considered, looked_up.candidates_considered)
        assert.is_true(looked_up.candidates_scored < scanned.candidates_scored,
          looked_up.candidates_scored .. " vs " .. scanned.candidates_scored)
      end
    end)

    it("honours the threshold and the limit", function()
      local res = assert(call("correlate_incidents", { incident_id = "INC-2", time_range = "120d",
                                                       similarity_threshold = 0, limit = 4 }))
      assert.equals(4, #res.matches)
      res = assert(call("correlate_incidents", { incident_id = "INC-2", similarity_threshold = 1 }))
      assert.equals(0, #res.matches)
      assert.equals("[]", json.encode(res.matches))
    end)

    it("fails with the 404 message for an unknown incident", function()
      local _, err = call("correlate_incidents", { incident_id = "INC-4040" })
      assert.equals("not_found", err.kind)
      assert.matches("check the incident ID and the time range", err.message, 1, true)
    end)
  end)
end)
