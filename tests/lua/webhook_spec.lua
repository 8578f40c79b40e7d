-- fox.webhook: Standard Webhooks verification (vector computed with the openssl CLI).
local webhook = require("fox.webhook")

local SECRET = "whsec_syt6DV+eF3456CfbbrZyQdPtiDLoA5+p"
local ID = "msg_2Kf8xQvN3pLr"
local TS = "1795000000"
local BODY = '{"event_type":"public_incident.incident_created_v2",'
  .. '"incident":{"id":"01HZX","name":"Database down"}}'
local SIG = "v1,BkZQjQVTkF8O5zn6zILMsnQ9LyFQiO2Mnr54zNzbjGQ="
local NOW = { now = 1795000030 }

local function headers(overrides)
  local h = { ["webhook-id"] = ID, ["webhook-timestamp"] = TS, ["webhook-signature"] = SIG }
  for k, v in pairs(overrides or {}) do
    h[k] = v or nil
  end
  return h
end

describe("fox.webhook.verify", function()
  it("accepts the known vector", function()
    assert.is_true(webhook.verify(SECRET, headers(), BODY, NOW))
  end)

  it("accepts header names in any case", function()
    local h = { ["Webhook-Id"] = ID, ["WEBHOOK-TIMESTAMP"] = TS, ["webhook-Signature"] = SIG }
    assert.is_true(webhook.verify(SECRET, h, BODY, NOW))
  end)

  it("accepts any one matching signature among several", function()
    local h = headers({ ["webhook-signature"] = "v2,abc v1,AAAA " .. SIG })
    assert.is_true(webhook.verify(SECRET, h, BODY, NOW))
  end)

  it("rejects a wrong secret and a tampered body", function()
    local ok, err = webhook.verify("whsec_QIb9lNLvhG8paZQAalGWIRuflpSQ8duz", headers(), BODY, NOW)
    assert.is_nil(ok)
    assert.equals("no matching signature", err)
    ok, err = webhook.verify(SECRET, headers(), BODY:gsub("down", "up"), NOW)
    assert.is_nil(ok)
    assert.equals("no matching signature", err)
  end)

  it("names the missing header", function()
    local _, err = webhook.verify(SECRET, headers({ ["webhook-id"] = false }), BODY, NOW)
    assert.equals("missing webhook-id header", err)
    _, err = webhook.verify(SECRET, headers({ ["webhook-signature"] = false }), BODY, NOW)
    assert.equals("missing webhook-signature header", err)
    _, err = webhook.verify(SECRET, {}, BODY, NOW)
    assert.equals("missing webhook-id header", err)
  end)

  it("rejects old and future timestamps with how far off they are", function()
    local _, err = webhook.verify(SECRET, headers(), BODY, { now = 1795000412 })
    assert.equals("timestamp outside tolerance (412 s old)", err)
    _, err = webhook.verify(SECRET, headers(), BODY, { now = 1794999000 })
    assert.equals("timestamp outside tolerance (1000 s in the future)", err)
    assert.is_true(webhook.verify(SECRET, headers(), BODY, { now = 1795000412, tolerance = 600 }))
  end)

  it("uses the wall clock by default", function()
    local _, err = webhook.verify(SECRET, headers(), BODY)
    -- the vector is from 2026-11-18: days away from any clock this test runs on
    assert.matches("^timestamp outside tolerance", err)
    local now = tostring(os.time())
    local sig = webhook.sign(SECRET, ID, now, BODY)
    assert.is_true(webhook.verify(SECRET, headers({ ["webhook-timestamp"] = now,
      ["webhook-signature"] = sig }), BODY))
  end)

  it("explains a bad secret", function()
    local _, err = webhook.verify("not-a-secret", headers(), BODY, NOW)
    assert.equals("bad secret (expected whsec_ followed by base64)", err)
  end)

  it("rejects a malformed timestamp and non-string headers", function()
    local _, err = webhook.verify(SECRET, headers({ ["webhook-timestamp"] = "soon" }), BODY, NOW)
    assert.equals("bad webhook-timestamp header (expected unix seconds)", err)
    _, err = webhook.verify(SECRET, headers({ ["webhook-id"] = { ID } }), BODY, NOW)
    assert.equals("webhook-id header is not a string", err)
    -- a number is read as its decimal text
    assert.is_true(webhook.verify(SECRET, headers({ ["webhook-timestamp"] = 1795000000 }), BODY, NOW))
  end)

  it("signs what it verifies", function()
    assert.equals(SIG, webhook.sign(SECRET, ID, TS, BODY))
    local sig, err = webhook.sign("bad", ID, TS, BODY)
    assert.is_nil(sig)
    assert.matches("bad secret", err)
  end)

  it("raises on misuse", function()
    assert.has_error(function() webhook.verify(nil, headers(), BODY) end)
    assert.has_error(function() webhook.verify(SECRET, nil, BODY) end)
    assert.has_error(function() webhook.verify(SECRET, headers(), nil) end)
    assert.has_error(function() webhook.verify(SECRET, headers(), BODY, { tolerance = -1 }) end)
  end)
end)
