-- `fox tool` and `fox tools` as a user runs them: a separate build/fox process pointed at
-- the fake by INCIDENT_IO_BASE_URL; exit codes, stdout JSON, stderr messages.
local fakes = require("helpers.fakes")
local proc = require("helpers.proc")
local json = require("fox.json")

local fake

-- Runs build/fox with argv and environment (nil values are unset). Returns stdout,
-- stderr, exit code.
local function run(argv, env)
  return proc.run({ proc.FOX, table.unpack(argv) }, { env = env or {}, unset = {
    "INCIDENT_IO_API_KEY", "INCIDENT_IO_API_KEY_FILE", "INCIDENT_IO_BASE_URL", "INCIDENT_IO_WRITE_API_KEY" } })
end

local function env(extra)
  local e = { INCIDENT_IO_BASE_URL = fake.url, INCIDENT_IO_API_KEY = fakes.KEYS.viewer,
              FOX_LOG_LEVEL = "error" }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

local function tool(argv, extra_env)
  table.insert(argv, 1, "tool")
  return run(argv, env(extra_env))
end

describe("fox tool / fox tools", function()
  lazy_setup(function()
    fake = fakes.incidentio({ seed = "default" })
  end)
  lazy_teardown(function()
    if fake then fake:stop() end
  end)
  before_each(function()
    fake:reset()
    fake:clear_requests()
  end)

  it("get_incident_details --incident-id INC-2 --include-timeline prints the JSON result", function()
    local out, err, code = tool({ "get_incident_details", "--incident-id", "INC-2", "--include-timeline" })
    assert.equals(0, code, err)
    local res = assert(json.safe.decode(out))
    assert.equals("INC-2", res.incident.reference)
    assert.equals("P0", res.incident.priority)
    assert.is_true(#res.timeline >= 8)
    assert.equals(1, select(2, out:gsub("\n", ""))) -- compact when stdout is not a terminal
  end)

  it("accepts _ or - in flags, --name=value, a boolean value and --json", function()
    local a = select(1, tool({ "get_incident_details", "--incident_id=2", "--include-timeline", "false" }))
    local b = select(1, tool({ "get_incident_details", "--json", '{"incident_id": "INC-2"}' }))
    local c = select(1, tool({ "get_incident_details", "--json", '{"incident_id": "INC-9"}',
                               "--incident-id", "INC-2" }))
    for _, out in ipairs({ a, b, c }) do
      local res = assert(json.safe.decode(out))
      assert.equals("INC-2", res.incident.reference)
      assert.is_nil(res.timeline)
    end
  end)

  it("list_recent_incidents --status active --severity Critical --time-range 7d", function()
    local out, err, code = tool({ "list_recent_incidents", "--status", "active", "--severity", "Critical",
                                  "--time-range", "7d" })
    assert.equals(0, code, err)
    local res = assert(json.safe.decode(out))
    assert.equals(1, res.count)
    assert.equals("INC-2", res.incidents[1].reference)
    assert.is_false(res.truncated)
    local r = fake:requests({ path = "/v2/incidents" })[1]
    assert.same({ "triage", "live", "paused" }, fakes.query_values(r, "status_category[one_of]"))
    assert.equals(1, #fakes.query_values(r, "severity[one_of]"))
  end)

  it("correlate_incidents --incident-id INC-2", function()
    local out, err, code = tool({ "correlate_incidents", "--incident-id", "INC-2" })
    assert.equals(0, code, err)
    local res = assert(json.safe.decode(out))
    assert.equals("INC-2", res.incident.reference)
    assert.equals("INC-46", res.matches[1].reference)
    assert.is_number(res.matches[1].score)
    assert.is_table(res.matches[1].signals)
    assert.is_table(res.matches[1].resolution)
    assert.equals(0.5, res.threshold)
    assert.is_number(res.candidates_considered)
  end)

  it("invalid input exits 2 with the validation message", function()
    local cases = {
      { { "list_recent_incidents", "--limit", "ten" }, 'limit must be an integer from 1 to 500 (got "ten")' },
      { { "list_recent_incidents", "--time-range", "a week" }, "time_range: cannot read time range a week" },
      { { "get_incident_details" }, "incident_id is required" },
      { { "get_incident_details", "--incident", "INC-2" }, "unknown option --incident" },
      { { "get_incident_details", "--json", "{nope" }, "--json: not a JSON object" },
      { { "list_recent_incidents", "--severity", "Sev9" }, 'severity: unknown severity "Sev9"' },
      { { "no_such_tool" }, 'unknown tool "no_such_tool"' },
    }
    for _, case in ipairs(cases) do
      local out, err, code = tool(case[1])
      assert.equals(2, code, table.concat(case[1], " ") .. ": " .. err)
      assert.equals("", out)
      assert.matches(case[2], err, 1, true)
    end
  end)

  it("a wrong key exits 1 with the actionable message and never shows the key", function()
    local out, err, code = tool({ "get_incident_details", "--incident-id", "INC-2" },
      { INCIDENT_IO_API_KEY = "sk-wrong-key-123" })
    assert.equals(1, code)
    assert.equals("", out)
    assert.matches("invalid or expired", err, 1, true)
    assert.matches("Settings > API keys", err, 1, true)
    assert.is_nil(err:find("sk-wrong-key-123", 1, true))
  end)

  it("an unreachable host exits 1 with the actionable message", function()
    local port = fakes.closed_port()
    local out, err, code = tool({ "list_recent_incidents" }, { INCIDENT_IO_BASE_URL = "http://127.0.0.1:" .. port })
    assert.equals(1, code)
    assert.equals("", out)
    assert.matches("unable to connect to the incident.io API", err, 1, true)
    assert.matches("outbound HTTPS to 127.0.0.1 must be allowed", err, 1, true)
  end)

  it("a missing incident exits 1 with the 404 message", function()
    local _, err, code = tool({ "get_incident_details", "--incident-id", "INC-999" })
    assert.equals(1, code)
    assert.matches("incident INC-999 not found", err, 1, true)
  end)

  it("reads the key from INCIDENT_IO_API_KEY_FILE, and says when there is none", function()
    local path = proc.tmpname()
    proc.write_file(path, fakes.KEYS.viewer .. "\n")
    local e = env({ INCIDENT_IO_API_KEY_FILE = path })
    e.INCIDENT_IO_API_KEY = nil
    local out, err, code = run({ "tool", "get_incident_details", "--incident-id", "INC-2" }, e)
    os.remove(path)
    assert.equals(0, code, err)
    assert.equals("INC-2", json.decode(out).incident.reference)
    e.INCIDENT_IO_API_KEY_FILE = nil
    local _, err2, code2 = run({ "tool", "get_incident_details", "--incident-id", "INC-2" }, e)
    assert.equals(1, code2)
    assert.matches("no incident.io API key", err2, 1, true)
  end)

  it("fox tools lists the tools with their schemas", function()
    local out, err, code = run({ "tools" }, env())
    assert.equals(0, code, err)
    local list = assert(json.safe.decode(out))
    assert.equals(3, #list)
    for _, t in ipairs(list) do
      assert.is_string(t.name)
      assert.is_string(t.description)
      assert.equals("object", t.input_schema.type)
      assert.is_table(t.input_schema.properties)
    end
  end)

  it("--help on fox tool, a tool and fox tools", function()
    local out, _, code = run({ "tool", "--help" }, env())
    assert.equals(0, code)
    assert.matches("usage: fox tool NAME", out, 1, true)
    out, _, code = run({ "tool", "correlate_incidents", "--help" }, env())
    assert.equals(0, code)
    assert.matches("--similarity-threshold", out, 1, true)
    assert.matches("--incident-id", out, 1, true)
    out, _, code = run({ "tools", "--help" }, env())
    assert.equals(0, code)
    assert.matches("usage: fox tools", out, 1, true)
  end)
end)
