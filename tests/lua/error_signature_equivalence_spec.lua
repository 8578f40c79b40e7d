-- fox.error_signature's fast paths (pass guards, no-copy trims, the process-wide memo,
-- decoded Elasticsearch documents) give exactly what the plain rules gave: the module
-- as it was before them (fixtures/error_signature_reference.lua) and the current one
-- agree on the demo's log lines and on lines built at random from the pieces the
-- rules look for.
local json = require("fox.json")
local es = require("fox.error_signature")
local fakes = require("helpers.fakes")
local ref = assert(loadfile(debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
  .. "/fixtures/error_signature_reference.lua"))()

-- Pieces of log text: what every rule matches, what it must not, and the separators
-- between them.
local PIECES = {
  "charge failed", "PaymentGatewayTimeout:", "upstream 504 from gateway.internal", "HTTP 503",
  "Service Unavailable", "(POST /v3/authorisations, 2002ms)", "status 200", "returned 404",
  "got 502/504", "after 3 retries", "500s", "code 42", "error 1234", "404 not found",
  "123e4567-e89b-12d3-a456-426614174000", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "0x7ffd5e8c1a40",
  "9f86d081884c7d65", "deadbeef", "cafe", "10.0.3.7:8443", "192.168.1.1", "[2001:db8::1]:5432",
  "fe80::1%eth0", "::1", "2001:db8:0:0:1:0:0:1", "std::vector", "Foo::Bar", "12:34:56",
  "2024-05-01T10:00:00.123Z", "2024-05-01 10:00:00,123", "May  1 10:00:00", "1714557600.123",
  "https://api.acme.test/v1/pay?x=1", "dev@acme.test", "'bob@x'", '"users_2024"', "can't",
  "don't", "'db-primary'", '"unterminated', "payments-api-7d9f8b6c5-x2x4z",
  "checkout-service-5c6d7e8f9-abcde", "db-primary-3.internal:5432", "java.net.SocketTimeoutException",
  "com.acme.Foo", "ValueError:", "req_8fj3k2l1", "abc123def", "user42", "42abc", "m_6440",
  "ERROR", "[error]", "<E>", "level=error", "[main]", "c.a.Foo -", "E0501", "WARN", "info",
  "`code`", "->", "<n>", "<n>.<n>", "\1", "%", "(", ")", "[", "]", ",", ";", ":", "=", "{", "}",
  "Caused by: java.io.IOException: broken pipe", "panic: boom", "Traceback (most recent call last):",
  "\tat com.acme.X.y(X.java:1)", "  File \"/a.py\", line 3, in f", "goroutine 1 [running]:",
  "... 12 more", "msg=\"query failed\"", "err=\"dial tcp: refused\"", "ts=2024-05-01T10:00:00Z",
  "", " ", "  ", "\t", "\n", "\r\n", "\r", "ünïcödé", "1.2.3", "v1.2.3-rc1", "a.b", "A.B.c",
}
local SEPARATORS = { " ", " ", " ", "", "\n", ": ", ", ", "  ", "\t", "/" }

local function random_text(rng, n)
  local out = {}
  for i = 1, n do
    out[#out + 1] = PIECES[rng(#PIECES)]
    if i < n then out[#out + 1] = SEPARATORS[rng(#SEPARATORS)] end
  end
  return table.concat(out)
end

-- A random log line: plain text, JSON (msg/error fields, ECS objects, nested), logfmt,
-- a prefix before JSON, multi-line.
local function random_line(rng)
  local kind = rng(7)
  local text = random_text(rng, rng(12))
  if kind == 1 then return text end
  if kind == 2 then
    return json.encode({ ts = "2026-11-27T01:43:23.000Z", level = "error", msg = text,
      error = rng(2) == 1 and random_text(rng, rng(6)) or nil, request_id = random_text(rng, 1) })
  end
  if kind == 3 then
    return json.encode({ message = text, error = { type = random_text(rng, 1), message = random_text(rng, rng(5)),
      stack_trace = random_text(rng, 3) }, labels = { attempt = rng(3), merchant_id = "m_" .. rng(9999) } })
  end
  if kind == 4 then
    return 'level=error ts=2024-05-01T10:00:00Z msg="' .. text:gsub('"', '\\"') .. '" err="'
      .. random_text(rng, rng(4)):gsub('"', "") .. '"'
  end
  if kind == 5 then return "2024-05-01T10:00:00Z " .. json.encode({ msg = text }) end
  if kind == 6 then return text .. "\n" .. random_text(rng, rng(4)) .. "\n\tat a.b(C.java:1)" end
  return random_text(rng, 1) .. " - " .. text
end

local function same_everything(lines)
  local mismatches = {}
  for _, line in ipairs(lines) do
    for _, fn in ipairs({ "message", "normalize", "signature", "key" }) do
      local want, got = ref[fn](line), es[fn](line)
      if want ~= got and #mismatches < 5 then
        mismatches[#mismatches + 1] = fn .. "(" .. string.format("%q", line) .. "): "
          .. string.format("%q", want) .. " ~= " .. string.format("%q", got)
      end
    end
  end
  assert.same({}, mismatches)
  local entries = {}
  for i, line in ipairs(lines) do entries[i] = { line = line, ts = 1000 + i % 97, service = "s" .. i % 3 } end
  assert.same(ref.group(entries, { max = 50, incident_start = 1040 }),
    es.group(entries, { max = 50, incident_start = 1040 }))
end

-- Decoded documents (Elasticsearch _source) give what their JSON text gives.
local function same_documents(lines)
  local docs, texts = {}, {}
  for _, line in ipairs(lines) do
    local doc = json.safe.decode(line)
    if type(doc) == "table" then
      docs[#docs + 1] = doc
      texts[#texts + 1] = json.encode(doc)
    end
  end
  assert.is_true(#docs > 100)
  local from_text = 0
  for i, doc in ipairs(docs) do
    local want = ref.message(texts[i])
    local got = es.document_message(doc)
    if got == nil then
      -- no field names the message: it is the document's text
      from_text = from_text + 1
      got = es.message(texts[i])
    end
    assert.equals(want, got)
  end
  assert.is_true(from_text >= 300) -- both ways were taken
  local entries, ref_entries = {}, {}
  for i, doc in ipairs(docs) do
    entries[i] = { fields = doc, ts = i % 50, service = "a" }
    ref_entries[i] = { line = texts[i], ts = i % 50, service = "a" }
  end
  assert.same(ref.group(ref_entries, { max = 30 }), es.group(entries, { max = 30 }))
end

describe("error_signature fast paths", function()
  it("agree with the reference rules on random lines", function()
    local seed = 20261127
    local function rng(n) -- a small LCG, so a failure can be replayed from the seed
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed % n + 1
    end
    local lines = {}
    for i = 1, 3000 do lines[i] = random_line(rng) end
    same_everything(lines)
    -- twice: the second time from the memo
    same_everything(lines)
    -- and as decoded documents, some of them without any message field
    for i = 1, 300 do lines[#lines + 1] = json.encode({ service = random_text(rng, 2), n = i }) end
    same_documents(lines)
  end)

  it("agree with the reference rules on the demo's Loki and Elasticsearch lines", function()
    local now = os.time()
    local args = { args = { "--now", tostring(now), "--incident-at", tostring(now - 1200) } }
    local loki, elastic = fakes.start("loki", args), fakes.start("elasticsearch", args)
    local ok, err = pcall(function()
      local captured = {}
      local group = es.group
      es.group = function(entries, opts)
        for _, e in ipairs(entries) do captured[#captured + 1] = e end
        return group(entries, opts)
      end
      local ctx = function(url) return { services = { "payments-api", "checkout-service" },
        window = { incident_start = now - 1200, to = now }, config = { url = url }, timeout = 10 } end
      local lr = require("sources.loki").query(ctx(loki.url))
      local er = require("sources.elasticsearch").query(ctx(elastic.url))
      es.group = group
      assert.is_true(lr.total > 500 and er.total > 500)
      local lines = {}
      for _, e in ipairs(captured) do
        lines[#lines + 1] = e.line or json.encode(e.fields)
      end
      same_everything(lines)
      -- the grouped documents themselves (Elasticsearch hands over decoded _source)
      local want = ref.group((function()
        local t = {}
        for i, e in ipairs(captured) do t[i] = { line = lines[i], ts = e.ts, service = e.service } end
        return t
      end)(), { max = 10, incident_start = now - 1200 })
      assert.same(want, es.group(captured, { max = 10, incident_start = now - 1200 }))
    end)
    loki:stop()
    elastic:stop()
    assert(ok, err)
  end)
end)
