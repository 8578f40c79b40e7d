-- Randomised adversarial inputs for the Lua policies (issue 8, item 5): the parse,
-- services and correlate policies and the error normaliser they share read text that
-- responders, alerting tools and other people's integrations write. Whatever it is
-- (binary, invalid UTF-8, HTML, megabytes, long runs of one character, values of the
-- wrong type anywhere in an incident), they must answer, with results of the documented
-- shape, in time linear in the input.
--
-- The generator is seeded (FOX_FUZZ_SEED, default below), so a failure repeats; the
-- message names the seed and the case. Time limits are generous for a linear
-- implementation (milliseconds) and far below what a quadratic one needs on the
-- 32 KB runs (seconds), so they catch pattern backtracking such as the strip_links bug
-- (correlate.features took minutes on one long word).
local correlate = require("policies.correlate")
local error_signature = require("fox.error_signature")
local json = require("fox.json")
local parse = require("policies.parse")
local services = require("policies.services")
local sys = require("fox.sys")
local task = require("fox.task")

local SEED = tonumber(sys.getenv("FOX_FUZZ_SEED") or "") or 20261127
local CASES = tonumber(sys.getenv("FOX_FUZZ_CASES") or "") or 300
local RUN_BYTES = 32 * 1024 -- long runs: quadratic code takes seconds here, linear code ms
local SLOW = 0.75            -- seconds one call may take (sanitizer builds: see below)
if sys.getenv("FOX_SANITIZED") then SLOW = 4 end

-- Pieces documents are made of: markdown, URLs, errors, HTML, odd bytes.
local PIECES = {
  "Service: payments-api", "Services: checkout-service, user-auth & search", "Error: ",
  "PaymentGatewayTimeout: upstream 504 from acquirer-eu", "java.lang.NullPointerException",
  "Traceback (most recent call last):", "  File \"x.py\", line 3, in <module>", "ECONNREFUSED",
  "Impact:", "**Impact**", "### Errors", "## Customer impact", "# ", "- ", "* ", "> ", "1. ",
  "```", "```java", "`", "``", "[label](", ")", "](", "[", "]", "(", "<", ">", "</div>", "<br/>",
  "<p>", "<script>alert(1)</script>", "&amp;", "&#x41;", "&#99999999;", "&lt;", "&", ";",
  "https://grafana.acme.io/d/abc?from=now-1h", "http://", "://", "https://github.com/acme/pay/pull/4822",
  "https://acme.pagerduty.com/incidents/PXYZ", "runbook", "Runbook: https://wiki.acme.io/x",
  "Started: 10:42 UTC", "Started: 2026-13-45T99:99:99Z", "Started: yesterday", "Started: 99999999999999",
  "HTTP 503", "status code 429", "5xx", "OOMKilled", "::", "E_CONN", "\t", "\r", "\r\n", "\n", "\n\n",
  " ", "  ", ":", ",", "/", "%", "%%", "%s", "%a*", "(.-)", "\0", "\1", "\127", "\255", "\192\128",
  "\237\160\128", "\240\159\146\165", "é", "日本", "payments", "pay-api", "svc-payments", "auth",
  "search", "checkout", "1234567890", "0x7ffd1234", "01JV571CDA0CBY35XV118DP6GY",
  "123e4567-e89b-12d3-a456-426614174000", "db-primary-3.internal:5432", "10.0.4.12", "a@b.c",
}

-- Characters whose long runs stress patterns (each is a prefix, class or delimiter
-- some pattern loops over).
local RUN_UNITS = {
  "a", "A", "1", " ", "\n", "`", "*", "#", "-", "<", "[", "](", "(", ":", "/", "%", ".", "&",
  "\0", "\255", "é", "Error", "Key: ", "http://", "aB", "a1", "_", "=", "\"", "'", "~",
  "- [", "``` ", "# a\n", "* a\n", "E", "Ex", "::", "a.", "a-",
}

local function rand_bytes(n)
  local t = {}
  for i = 1, n do t[i] = string.char(math.random(0, 255)) end
  return table.concat(t)
end

-- A random document: pieces, random bytes and short runs, in random order.
local function document(max_pieces)
  local t = {}
  for i = 1, math.random(0, max_pieces) do
    local r = math.random()
    if r < 0.75 then
      t[i] = PIECES[math.random(#PIECES)]
    elseif r < 0.9 then
      t[i] = rand_bytes(math.random(1, 12))
    else
      t[i] = RUN_UNITS[math.random(#RUN_UNITS)]:rep(math.random(2, 200))
    end
  end
  return table.concat(t)
end

-- A value of JSON's shape (what an API answer decodes to), of any type.
local function json_value(depth)
  local r = math.random(1, depth > 3 and 6 or 8)
  if r == 1 then return document(6) end
  if r == 2 then return math.random(-1e6, 1e6) end
  if r == 3 then return math.random() * 1e300 end
  if r == 4 then return math.random() < 0.5 end
  if r == 5 then return json.null end
  if r == 6 then return "" end
  local t = {}
  if r == 7 then
    for i = 1, math.random(0, 4) do t[i] = json_value(depth + 1) end
  else
    local keys = { "id", "name", "value", "values", "custom_field", "value_option", "value_text",
                   "value_catalog_entry", "summary", "severity", "rank", "x" }
    for _ = 1, math.random(0, 4) do t[keys[math.random(#keys)]] = json_value(depth + 1) end
  end
  return t
end

-- An incident-shaped table whose every field may have the wrong type.
local function incident()
  local function maybe(good)
    if math.random() < 0.7 then return good end
    return json_value(2)
  end
  local entries = {}
  for i = 1, math.random(0, 3) do
    entries[i] = maybe({
      custom_field = maybe({ id = maybe("01JDTW84K46J5Z2HSW8B8KW3AZ"),
        name = maybe(({ "Affected services", "Components", "Root cause", "Services" })[math.random(4)]) }),
      values = maybe({
        maybe({ value_option = maybe({ id = maybe("opt"), value = maybe(document(3)) }) }),
        maybe({ value_catalog_entry = maybe({ id = maybe("ce"), name = maybe(document(3)) }) }),
        maybe({ value_text = maybe(document(5)) }),
      }),
    })
  end
  return {
    id = maybe("01JV571CDA0CBY35XV118DP6GY"), name = maybe(document(8)), summary = maybe(document(40)),
    extra_text = maybe(document(10)), custom_field_entries = maybe(entries),
  }
end

-- Calls fn(...) and fails when it raises or takes longer than SLOW.
local function timed(what, fn, ...)
  local t0 = os.clock()
  local res = table.pack(pcall(fn, ...))
  local dt = os.clock() - t0
  assert(res[1], string.format("%s raised (seed %d): %s", what, SEED, tostring(res[2])))
  assert(dt < SLOW, string.format("%s took %.2f s (seed %d): super-linear time?", what, dt, SEED))
  return table.unpack(res, 2, res.n)
end

local function is_string_list(t)
  if type(t) ~= "table" then return false end
  for i, v in pairs(t) do
    if type(i) ~= "number" or type(v) ~= "string" then return false end
  end
  return true
end

local function check_parse_result(r, case)
  assert.is_table(r, case)
  for _, k in ipairs({ "fields", "pairs", "services", "errors", "code_blocks", "stack_traces", "sections",
                       "bullets", "urls", "links", "rule_errors" }) do
    assert(type(r[k]) == "table", case .. ": result." .. k .. " missing")
  end
  assert(type(r.text) == "string", case .. ": result.text")
  assert(#r.rule_errors == 0, case .. ": internal failure: " .. tostring(r.rule_errors[1]))
  assert(is_string_list(r.services) and is_string_list(r.errors) and is_string_list(r.stack_traces), case)
  for k, v in pairs(r.fields) do
    assert(type(k) == "string", case .. ": field name")
    assert(type(v) == "string" or type(v) == "number" or type(v) == "table", case .. ": field " .. k)
  end
  for _, u in ipairs(r.urls) do
    assert(type(u.url) == "string" and type(u.kind) == "string", case .. ": url record")
  end
  for _, list in ipairs({ r.services, r.errors, r.urls, r.bullets, r.pairs }) do
    assert(#list <= parse.max_items, case .. ": list over max_items")
  end
end

describe("policies under randomised adversarial input (seed " .. SEED .. ")", function()
  before_each(function()
    math.randomseed(SEED)
  end)

  it("parse.description answers every document, with the documented shape", function()
    for i = 1, CASES do
      local text = document(60)
      check_parse_result(timed("parse.description #" .. i, parse.description, text), "case " .. i)
      if i % 25 == 0 then task.sleep(0) end
    end
    for _, unit in ipairs(RUN_UNITS) do
      local text = unit:rep(RUN_BYTES // #unit)
      check_parse_result(timed("parse.description of a run of " .. ("%q"):format(unit), parse.description, text),
        "run " .. ("%q"):format(unit))
      task.sleep(0)
    end
    -- Over max_bytes: cut and flagged, not refused.
    local big = timed("parse.description of 300 KB", parse.description, document(40) .. ("x"):rep(300 * 1024))
    assert.is_true(big.truncated)
    -- Not a string at all.
    for _, v in ipairs({ 42, true, {}, json.null }) do
      assert.is_table(timed("parse.description(" .. type(v) .. ")", parse.description, v))
    end
  end)

  it("services policy: sorted distinct names from any incident shape", function()
    for i = 1, CASES do
      local inc = incident()
      local list = timed("services.extract #" .. i, services.extract, inc)
      assert(is_string_list(list), "case " .. i .. ": not a list of names")
      local seen = {}
      for j, s in ipairs(list) do
        assert(not seen[s], "case " .. i .. ": duplicate " .. s)
        seen[s] = true
        if j > 1 then assert(list[j - 1] < s, "case " .. i .. ": not sorted") end
      end
      local extra = { parsed = { document(2), 42 }, known = { [document(2)] = { aliases = { document(1) } } },
        context = { document(2) } }
      assert(is_string_list(timed("services.extract with extra #" .. i, services.extract, inc, extra)))
      local c = timed("services.canonical #" .. i, services.canonical, document(4))
      assert(c == nil or type(c) == "string")
      if i % 25 == 0 then task.sleep(0) end
    end
    for _, unit in ipairs(RUN_UNITS) do
      local text = unit:rep(RUN_BYTES // #unit)
      timed("services.from_text of a run of " .. ("%q"):format(unit), services.from_text, text)
      timed("services.canonical of a run", services.canonical, text)
      timed("services.extract of a run", services.extract, { name = text, summary = text,
        custom_field_entries = { { custom_field = { name = "Affected services" },
          values = { { value_text = text } } } } })
      task.sleep(0)
    end
    for _, v in ipairs({ 42, "x", true, json.null }) do
      assert.same({}, timed("services.extract(" .. type(v) .. ")", services.extract, v))
    end
  end)

  it("correlate policy: features of any incident; scores in [0, 1], an incident most like itself", function()
    local recs = {}
    for i = 1, CASES do
      local inc = incident()
      local f = timed("correlate.features #" .. i, correlate.features, inc)
      for _, k in ipairs({ "name_tokens", "summary_tokens" }) do
        assert(is_string_list(f[k]), "case " .. i .. ": " .. k)
      end
      assert(#f.summary_tokens <= correlate.MAX_SUMMARY_TOKENS, "case " .. i .. ": summary tokens over the cap")
      assert(#f.error_line_tokens <= correlate.MAX_ERROR_LINES, "case " .. i .. ": error lines over the cap")
      for _, toks in ipairs(f.error_line_tokens) do assert(is_string_list(toks), "case " .. i) end
      assert(json.safe.encode(f), "case " .. i .. ": the index cannot store these features")
      recs[i] = { id = "I" .. i, features = f, services = services.extract(inc),
        severity = math.random() < 0.5
          and { name = ({ "Critical", "High" })[math.random(2)], rank = math.random(1, 4) } or nil,
        type = math.random() < 0.5 and "Production Outage" or nil, t = math.random(0, 1e9) }
      if i % 25 == 0 then task.sleep(0) end
    end
    for i = 1, math.min(CASES, 60) do
      local prep = correlate.prepare(recs[i])
      local self_score = correlate.score(prep, recs[i])
      assert(self_score >= 0 and self_score <= 1, "case " .. i .. ": self score " .. self_score)
      for j = 1, #recs, 7 do
        local s = correlate.score(prep, recs[j])
        assert(s == s and s >= 0 and s <= 1, ("case %d vs %d: score %s"):format(i, j, tostring(s)))
        assert(s <= self_score, ("case %d: %d scores %s, above itself (%s)"):format(i, j, s, self_score))
      end
      task.sleep(0)
    end
    for _, unit in ipairs(RUN_UNITS) do
      local text = unit:rep(RUN_BYTES // #unit)
      local f = timed("correlate.features of a run of " .. ("%q"):format(unit), correlate.features,
        { name = text:sub(1, 2000), summary = text, extra_text = text })
      local prep = correlate.prepare({ features = f })
      timed("correlate.score of a run", correlate.score, prep, { features = f })
      task.sleep(0)
    end
  end)

  it("the error normaliser answers any line, and its output is stable", function()
    for i = 1, CASES do
      local line = document(12)
      local k = timed("error_signature.key #" .. i, error_signature.key, line)
      assert(type(k) == "string", "case " .. i)
      timed("error_signature.signature #" .. i, error_signature.signature, line)
      local lines = timed("correlate.error_lines #" .. i, correlate.error_lines, document(30))
      assert(is_string_list(lines) and #lines <= 20, "case " .. i)
      if i % 25 == 0 then task.sleep(0) end
    end
    for _, unit in ipairs(RUN_UNITS) do
      local text = unit:rep(RUN_BYTES // #unit)
      timed("error_signature.key of a run of " .. ("%q"):format(unit), error_signature.key, text)
      timed("correlate.error_lines of a run of " .. ("%q"):format(unit), correlate.error_lines, text)
      task.sleep(0)
    end
  end)
end)
