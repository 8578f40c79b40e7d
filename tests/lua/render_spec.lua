-- The three renderings of the findings: Slack Block Kit (within Slack's limits, with
-- the text fallback), terminal text and JSON.
local findings = require("fox.findings")
local json = require("fox.json")
local slack_render = require("fox.render.slack")
local text_render = require("fox.render.text")
local json_render = require("fox.render.json")

local CREATED = 1748859600 -- 2025-06-02T10:20:00Z

local function sample()
  return findings.build({
    incident = { id = "01ABC", reference = "INC-2", name = "Elevated 5xx on payments-api <checkout> & co",
                 created_at = "2025-06-02T10:20:00Z", permalink = "https://app.incident.io/acme/incidents/2",
                 priority = "P1", severity = { name = "High" } },
    services = { "payments-api" },
    results = {
      { ok = true, source = "prometheus", elapsed = 0.4, items = {
        { service = "payments-api", name = "error_rate", unit = "ratio", status = "changed",
          change = { type = "step", direction = "up", at = CREATED - 180, before = 0.005, after = 0.072,
                     ratio = 14.4 } } } },
      { ok = true, source = "loki", items = { { service = "payments-api", signature = "Timeout `x` <n>", count = 412,
                                                first_seen = CREATED - 175 } } },
      { ok = false, source = "github", error = "github: token rejected (401): check GITHUB_TOKEN" },
      { ok = true, source = "similar", items = { { reference = "INC-1", name = "504s after deploy", score = 0.8,
        permalink = "https://app.incident.io/acme/incidents/1", resolution = "Rolled back to v2.28.4" } } },
    },
    suspects = { { title = "Deploy payments-api v2.35.0", kind = "deploy", at = CREATED - 360, confidence = 0.8,
                   url = "https://github.com/acme/pay/deployments/1",
                   reason = "6 min before; error_rate rose after" } },
    now = CREATED, elapsed = 1.25,
  })
end

-- A findings object far beyond every Slack limit.
local function huge()
  local f = sample()
  local long = ("word "):rep(2000) .. "🦊"
  f.summary = long
  f.incident.name = ("Very long incident name 🔥 "):rep(20)
  for i = 1, 300 do
    f.suspects[i] = { rank = i, title = "change " .. i .. " " .. long, kind = "deploy", confidence = 0.5,
                      reason = long, url = "https://github.com/acme/pay/pull/" .. i }
    f.metrics[i] = { text = "metric " .. i .. " " .. long }
    f.logs[i] = { signature = "sig " .. i .. " " .. long, count = i }
    f.similar[i] = { reference = "INC-" .. i, name = long, resolution = long, score = 0.5 }
    f.next_steps[i] = "step " .. i .. " " .. long
    f.sources[i] = { source = "source" .. i, ok = i % 2 == 0, error = long, elapsed = 0.1 }
    f.links[i] = { kind = "dashboard", url = "https://grafana.example/d/" .. i }
  end
  f.ai_summary = { text = long, model = "m", ai_written = true }
  return f
end

local function section_texts(msg)
  local out = {}
  for _, b in ipairs(msg.blocks) do
    if b.type == "section" and b.text then out[#out + 1] = b.text.text end
  end
  return table.concat(out, "\n")
end

describe("slack rendering", function()
  it("renders the findings as Block Kit with a text fallback", function()
    local msg = slack_render.findings(sample())
    assert.is_string(msg.text)
    assert.truthy(msg.text:find("^fox findings for INC%-2: "))
    assert.equals("header", msg.blocks[1].type)
    assert.equals("plain_text", msg.blocks[1].text.type)
    local all = section_texts(msg)
    assert.truthy(all:find("<https://github.com/acme/pay/deployments/1|Deploy payments-api v2.35.0>", 1, true))
    assert.truthy(all:find("80%", 1, true))
    assert.truthy(all:find("payments-api error rate rose from 0.5% to 7.2%", 1, true))
    assert.truthy(all:find("`Timeout 'x' &lt;n&gt;`", 1, true)) -- a code span that cannot break
    assert.truthy(all:find("<https://app.incident.io/acme/incidents/1|INC-1>", 1, true))
    assert.truthy(all:find("Resolved: Rolled back to v2.28.4", 1, true))
    -- mrkdwn special characters are escaped
    assert.truthy(all:find("&lt;checkout&gt; &amp; co", 1, true))
    -- the failed source is named in a context block
    local ctx_text = {}
    for _, b in ipairs(msg.blocks) do
      if b.type == "context" then
        for _, e in ipairs(b.elements) do ctx_text[#ctx_text + 1] = e.text end
      end
    end
    assert.truthy(table.concat(ctx_text, " "):find(":x: github — github: token rejected (401)", 1, true))
    assert.truthy(json.encode(msg))
  end)

  it("stays within Slack's limits whatever the findings hold", function()
    local f = huge()
    local msg = slack_render.findings(f)
    assert.is_true(#msg.blocks <= 50, #msg.blocks .. " blocks")
    for i, b in ipairs(msg.blocks) do
      if b.type == "header" then
        assert.is_true(slack_render.length(b.text.text) <= 150, "header " .. i)
        assert.equals("plain_text", b.text.type)
      elseif b.type == "section" then
        if b.text then assert.is_true(slack_render.length(b.text.text) <= 3000, "section " .. i) end
        if b.fields then
          assert.is_true(#b.fields <= 10)
          for _, fl in ipairs(b.fields) do assert.is_true(slack_render.length(fl.text) <= 2000) end
        end
        assert.is_true(not b.text or #b.text.text > 0)
      elseif b.type == "context" then
        assert.is_true(#b.elements >= 1 and #b.elements <= 10, "context " .. i)
        for _, e in ipairs(b.elements) do assert.is_true(slack_render.length(e.text) <= 2000) end
      end
      assert.truthy(utf8.len(json.encode(b)), "block " .. i .. " is valid UTF-8")
    end
    assert.is_true(slack_render.length(msg.text) <= 3000)
    -- the last block is still the footer, and the cut lists say how much was left out
    assert.equals("context", msg.blocks[#msg.blocks].type)
    assert.truthy(section_texts(msg):find("more_", 1, true))
  end)

  it("counts length the way Slack does and cuts on character boundaries", function()
    assert.equals(2, slack_render.length("🦊"))      -- one code point beyond the BMP = 2 units
    assert.equals(5, slack_render.length("héllo"))
    local cut = slack_render.cut(("é🦊"):rep(100), 10)
    assert.truthy(utf8.len(cut))
    assert.is_true(slack_render.length(cut) <= 10)
    assert.equals("abc", slack_render.cut("abc", 10))
  end)

  it("renders the investigating message", function()
    local msg = slack_render.investigating({ reference = "INC-7", name = "Checkout <down>" },
      { services = { "checkout-service" }, sources = { "prometheus", "loki" } })
    assert.equals(":mag: fox is investigating INC-7: Checkout <down>", msg.text)
    assert.equals(":mag: fox is investigating INC-7: Checkout &lt;down&gt;", msg.blocks[1].text.text)
    assert.truthy(msg.blocks[2].elements[1].text:find("asking prometheus, loki", 1, true))
  end)

  it("reads a posted message back as plain text", function()
    local msg = slack_render.findings(sample())
    local t = slack_render.as_text(msg)
    assert.truthy(t:find("Deploy payments-api v2.35.0 (https://github.com/acme/pay/deployments/1)", 1, true))
    assert.truthy(t:find("<checkout> & co", 1, true))
    assert.equals("plain", slack_render.as_text({ text = "plain" }))
  end)
end)

describe("text rendering", function()
  it("prints every part of the findings for a terminal", function()
    local t = text_render.findings(sample())
    for _, want in ipairs({ "INC-2: Elevated 5xx", "Priority P1", "Confidence ", "Suspected changes",
                            "1. [80%] Deploy payments-api v2.35.0", "why: 6 min before", "Metrics",
                            "Logs", "\"Timeout `x` <n>\" (412x", "Similar incidents", "INC-1 504s after deploy",
                            "Resolved: Rolled back to v2.28.4", "Next steps", "github FAILED: github: token rejected",
                            "Investigated in 1.25 s" }) do
      assert.truthy(t:find(want, 1, true), "missing: " .. want)
    end
    for line in t:gmatch("[^\n]+") do
      if not line:find("https?://") then
        assert.is_true((utf8.len(line) or #line) <= text_render.width, "too wide: " .. line)
      end
    end
  end)

  it("wraps with a hanging indent", function()
    assert.equals("  1. aaa bbb\n     ccc", text_render.wrap("aaa bbb ccc", 12, "  1. ", "     "))
  end)
end)

describe("json rendering", function()
  it("writes the findings with every list as an array, also when empty", function()
    local f = findings.build({ incident = { reference = "INC-3", name = "x" } })
    local s = json_render.findings(f)
    local back = json.decode(s)
    for _, k in ipairs({ "suspects", "metrics", "logs", "similar", "next_steps", "failed_sources", "services" }) do
      assert.truthy(s:find('"' .. k .. '":%['), k .. " is not an array")
      assert.is_table(back[k])
    end
    local pretty = json_render.findings(sample(), { pretty = true })
    assert.truthy(pretty:find('\n  "suspects": [\n', 1, true))
    assert.equals("Deploy payments-api v2.35.0", json.decode(pretty).suspects[1].title)
  end)
end)
