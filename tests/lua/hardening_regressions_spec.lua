-- Regressions for bugs the hardening work (issue 8) found, at the unit level. The
-- fuzzers and the hostile specs found them; these keep them fixed without a fuzzer.
local json = require("fox.json")
local webhook = require("fox.webhook")

describe("hardening regressions", function()
  it("fox.json refuses numbers beyond a double instead of decoding them as infinity", function()
    for _, s in ipairs({ "1e400", "-1e400", "[1e400]", '{"a":{"b":[0,55555555555555555552e55555555552]}}' }) do
      local v, err = json.safe.decode(s)
      assert.is_nil(v, s)
      assert.matches("out of range", err, 1, true)
      assert.has_error(function() json.decode(s) end)
    end
    -- Large but finite numbers still read and write back.
    assert.equals(1.7976931348623157e308, json.decode("1.7976931348623157e308"))
    assert.equals("[1e+300]", json.encode(json.decode("[1e300]")))
  end)

  it("fox.webhook.verify refuses opts that would overflow the time arithmetic", function()
    local secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    local headers = { ["webhook-id"] = "a", ["webhook-timestamp"] = "1", ["webhook-signature"] = "v1,x" }
    for _, opts in ipairs({ { now = 1e300 }, { now = -1 }, { now = -9.2e18 }, { now = 0 / 0 },
                            { tolerance = 1e300 }, { tolerance = -1 } }) do
      assert.has_error(function() webhook.verify(secret, headers, "", opts) end)
    end
    local ok, why = webhook.verify(secret, headers, "", { now = 2 ^ 53, tolerance = 2 ^ 53 })
    assert.is_nil(ok)
    assert.equals("no matching signature", why)
  end)
end)
