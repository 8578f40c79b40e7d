-- fox.error_signature: normalising error lines and grouping log lines into signatures.
local es = require("fox.error_signature")
local correlate = require("policies.correlate")

describe("error_signature.normalize", function()
  it("strips numbers, UUIDs, hex ids, hashes, IPs, hosts and quoted values", function()
    assert.equals("PaymentGatewayTimeout: upstream 504 from <host> (POST /v<n>/authorisations, <n>ms)",
      es.normalize("PaymentGatewayTimeout: upstream 504 from gateway.internal (POST /v3/authorisations, 2000ms)"))
    assert.equals("request <id> failed for user <str> at <host>",
      es.normalize("request 123e4567-e89b-12d3-a456-426614174000 failed for user 'bob@x' at 10.0.3.7:8443"))
    assert.equals("commit <hash> by <email> at <time>",
      es.normalize("commit 9f86d081884c7d65 by dev@acme.test at 2024-05-01T10:00:00.123Z"))
    assert.equals("object <hash> freed twice", es.normalize("object 0x7ffd5e8c1a40 freed twice"))
  end)

  it("keeps exception names, dotted Java names and HTTP status codes", function()
    assert.equals("java.net.SocketTimeoutException: Read timed out",
      es.normalize("java.net.SocketTimeoutException: Read timed out"))
    assert.equals("HTTP 503 Service Unavailable from <host>",
      es.normalize("HTTP 503 Service Unavailable from 10.1.2.3"))
    assert.equals("got 502/504 from upstream after <n> retries",
      es.normalize("got 502/504 from upstream after 3 retries"))
    -- the same error with a different HTTP code is a different signature
    assert.are_not.equals(es.normalize("upstream 504 from a.b"), es.normalize("upstream 502 from a.b"))
  end)

  it("handles IPv6 addresses in every usual form", function()
    assert.equals("dial tcp <host>: connect: connection refused",
      es.normalize("dial tcp [2001:db8::1]:5432: connect: connection refused"))
    assert.equals("peer <host> and <host> and <host> reset",
      es.normalize("peer 2001:db8:0:0:1:0:0:1 and fe80::1%eth0 and ::1 reset"))
    -- C++/Ruby scopes and clock times are not addresses
    assert.equals("std::vector Foo::Bar at <time>", es.normalize("std::vector Foo::Bar at 12:34:56"))
  end)

  it("does not mistake apostrophes for quotes", function()
    assert.equals("can't connect to <str>: don't retry", es.normalize("can't connect to 'db-primary': don't retry"))
    assert.equals('relation <str> does not exist', es.normalize('relation "users_2024" does not exist'))
  end)

  it("keeps the deployment of a Kubernetes pod name and drops its hashes", function()
    assert.equals(es.normalize("OOMKilled in pod payments-api-7d9f8b6c5-x2x4z"),
      es.normalize("OOMKilled in pod payments-api-5c8d7f9b4-qwert"))
    assert.matches("payments%-api%-<pod>", es.normalize("OOMKilled in pod payments-api-5c8d7f9b4-qwert"))
  end)

  it("caps the length and never fails on odd input", function()
    assert.equals(200, #es.normalize(string.rep("word ", 100)))
    assert.equals("", es.normalize(nil))
    assert.equals("", es.normalize(""))
    assert.is_string(es.normalize("\0\1\2 ''\"\" '''' [::] :::: %%% <>"))
  end)

  it("is what the correlation policy compares incident error lines by", function()
    local line = "Error: connection refused to db-primary-3.internal:5432 after 30000ms (ECONNREFUSED)"
    assert.equals(es.key(line), correlate.normalize_error_line(line))
    assert.equals(es.normalize(line):lower(), es.key(line))
  end)
end)

describe("error_signature.message", function()
  it("takes msg and error of JSON log lines", function()
    assert.equals("charge failed: PaymentGatewayTimeout: upstream 504 from gateway.internal",
      es.message('{"ts":"2026-01-01T10:00:00Z","level":"error","msg":"charge failed",'
        .. '"error":"PaymentGatewayTimeout: upstream 504 from gateway.internal","request_id":"abc"}'))
    -- ECS: error is an object {type, message}
    assert.equals("payment failed: IOException: broken pipe",
      es.message('{"message":"payment failed","error":{"type":"IOException","message":"broken pipe"}}'))
    -- the type already starts the message
    assert.equals("PaymentGatewayTimeout: upstream 504",
      es.message('{"error":{"type":"PaymentGatewayTimeout","message":"PaymentGatewayTimeout: upstream 504"}}'))
    -- docker's json-file wrapper
    assert.equals("panic: boom", es.message('{"log":"panic: boom\\n","stream":"stderr"}'))
    -- a timestamp before the JSON body
    assert.equals("disk full", es.message('2024-05-01T10:00:00Z {"level":"error","msg":"disk full"}'))
  end)

  it("takes msg and err of logfmt lines", function()
    assert.equals('query failed: dial tcp [2001:db8::1]:5432: connect: connection refused',
      es.message('level=error ts=2024-05-01T10:00:00Z caller=db.go:42 msg="query failed" '
        .. 'err="dial tcp [2001:db8::1]:5432: connect: connection refused"'))
  end)

  it("finds the exception of a Java stack trace logged under a message", function()
    local line = table.concat({
      "2024-05-01 10:00:00,123 ERROR [pool-1-thread-3] c.a.p.Charges - charge failed",
      "java.net.SocketTimeoutException: Read timed out",
      "\tat java.base/java.net.SocketInputStream.read(SocketInputStream.java:168)",
      "\tat com.acme.payments.GatewayClient.charge(GatewayClient.java:88)",
      "\t... 12 more",
    }, "\n")
    assert.equals("charge failed: java.net.SocketTimeoutException: Read timed out", es.message(line))
  end)

  it("takes the last line of a Python traceback", function()
    local line = table.concat({
      "Traceback (most recent call last):",
      '  File "/app/worker.py", line 41, in handle',
      "    amount = int(payload['amount'])",
      "ValueError: invalid literal for int() with base 10: 'abc'",
    }, "\n")
    assert.equals("ValueError: invalid literal for int() with base 10: 'abc'", es.message(line))
    assert.equals("ValueError: invalid literal for int() with base <n>: <str>", es.signature(line))
  end)

  it("takes the panic line of a Go crash", function()
    local line = table.concat({
      "panic: runtime error: invalid memory address or nil pointer dereference",
      "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a2b3c]",
      "",
      "goroutine 1 [running]:",
      "main.main()",
      "\t/app/main.go:12 +0x1d",
    }, "\n")
    assert.equals("panic: runtime error: invalid memory address or nil pointer dereference", es.signature(line))
  end)

  it("drops timestamps, levels, thread names and logger names in front of a message", function()
    assert.equals("upstream timed out",
      es.message("2024-05-01T10:00:00.123Z ERROR [main] c.a.Foo - upstream timed out"))
    assert.equals("upstream timed out", es.message("May  1 10:00:00 [error] upstream timed out"))
    assert.equals("failed to sync pod abc: context deadline exceeded",
      es.message("E0501 10:00:00.123456   12345 server.go:99] failed to sync pod abc: context deadline exceeded"))
    -- an ordinary sentence is left alone
    assert.equals("Error connecting to db", es.message("Error connecting to db"))
  end)
end)

describe("error_signature.group", function()
  it("counts signatures with first and last seen, an example and services", function()
    local entries = {}
    for i = 1, 30 do
      entries[#entries + 1] = { ts = 1000 + i, service = i % 2 == 0 and "a" or "b",
        line = '{"msg":"charge failed","error":"Timeout after ' .. (2000 + i) .. 'ms","request_id":"r' .. i .. '"}' }
    end
    entries[#entries + 1] = { ts = 5000, line = "disk full on /dev/sda1", service = "a" }
    entries[#entries + 1] = { ts = 999, line = "disk full on /dev/sda2", service = "a" }
    local g = es.group(entries, { incident_start = 1016 })
    assert.equals(32, g.total)
    assert.equals(2, g.distinct)
    local top = g.signatures[1]
    assert.equals("charge failed: Timeout after <n>ms", top.signature)
    assert.equals(30, top.count)
    assert.equals(1001, top.first_seen)
    assert.equals(1030, top.last_seen)
    assert.equals("charge failed: Timeout after 2001ms", top.example)
    assert.same({ "a", "b" }, top.services)
    assert.equals(15, top.before_start)
    assert.equals(15, top.after_start)
    local second = g.signatures[2]
    assert.equals(2, second.count)
    assert.equals(999, second.first_seen)
  end)

  it("keeps the most frequent signatures and reports what it left out", function()
    local entries = {}
    for i = 1, 12 do
      for _ = 1, i do entries[#entries + 1] = { line = "Error" .. string.char(64 + i) .. ": failed" } end
    end
    local g = es.group(entries, { max = 3 })
    assert.equals(3, #g.signatures)
    assert.equals(12, g.distinct)
    assert.equals(9, g.omitted)
    assert.equals("ErrorL: failed", g.signatures[1].signature)
    assert.same({ total = 0, distinct = 0, omitted = 0, signatures = {} }, es.group({}))
  end)
end)
