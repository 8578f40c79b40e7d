-- The severity policy: named mapping, case-insensitivity, rank fallback.
local severity = require("policies.severity")

local ACCOUNT = {
  { id = "s4", name = "Critical", rank = 4 },
  { id = "s3", name = "High", rank = 3 },
  { id = "s2", name = "Medium", rank = 2 },
  { id = "s1", name = "Low", rank = 1 },
}

describe("severity policy", function()
  it("maps Critical, High, Medium and Low to P0..P3 whatever the case", function()
    assert.equals("P0", severity.to_priority({ name = "Critical", rank = 4 }))
    assert.equals("P1", severity.to_priority({ name = "high", rank = 3 }))
    assert.equals("P2", severity.to_priority({ name = "MEDIUM", rank = 2 }))
    assert.equals("P3", severity.to_priority({ name = "Low", rank = 1 }))
  end)

  it("gives no priority without a severity", function()
    assert.is_nil(severity.to_priority(nil))
    assert.is_nil(severity.to_priority({}))
  end)

  it("places an unknown severity by its rank among the account's severities", function()
    local account = {
      { name = "Critical", rank = 3 }, { name = "Major", rank = 2 }, { name = "Minor", rank = 1 },
    }
    assert.equals("P1", severity.to_priority({ name = "Major", rank = 2 }, account))
    assert.equals("P2", severity.to_priority({ name = "Minor", rank = 1 }, account))
    local six = {}
    for r = 6, 1, -1 do six[#six + 1] = { name = "S" .. r, rank = r } end
    assert.equals("P0", severity.to_priority({ name = "S6", rank = 6 }, six))
    assert.equals("P3", severity.to_priority({ name = "S1", rank = 1 }, six)) -- capped at the last rung
  end)

  it("warns once about an unknown severity", function()
    local log = require("fox.log")
    local orig = log.warn
    local warnings = {}
    log.warn = function(event, fields) warnings[#warnings + 1] = { event = event, fields = fields } end
    local ok, err = pcall(function()
      severity.to_priority({ name = "Sev-Unmapped-X", rank = 2 }, ACCOUNT)
      severity.to_priority({ name = "Sev-Unmapped-X", rank = 2 }, ACCOUNT)
    end)
    log.warn = orig
    assert.is_true(ok, err)
    assert.equals(1, #warnings)
    assert.equals("severity_unmapped", warnings[1].event)
    assert.equals("Sev-Unmapped-X", warnings[1].fields.severity)
  end)

  it("says which names it covers (what fox doctor checks)", function()
    assert.is_true(severity.covers("critical"))
    assert.is_true(severity.covers("Low"))
    assert.is_false(severity.covers("Major"))
    assert.is_false(severity.covers(nil))
  end)

  it("finds the account severity for a priority", function()
    assert.equals("High", severity.from_priority("p1", ACCOUNT).name)
    assert.equals("Critical", severity.from_priority("P0", ACCOUNT).name)
    assert.is_nil(severity.from_priority("P9", ACCOUNT))
  end)
end)
