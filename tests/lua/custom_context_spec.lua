-- The config's custom_context: service names, critical services, owners and severity
-- rules read out of a team's own words.
local cc = require("fox.custom_context")

local SEED = "Our critical services are payments-api, checkout-service, and user-auth. "
  .. "High severity incidents automatically page the SRE on-call team."

describe("custom context", function()
  it("reads the seed's critical services and its severity rule", function()
    local c = cc.parse(SEED)
    assert.same({ "payments-api", "checkout-service", "user-auth" }, c.critical_services)
    assert.same({ "payments-api", "checkout-service", "user-auth" }, c.services)
    assert.same({ { severity = "high", text = "High severity incidents automatically page the SRE on-call team." } },
      c.rules)
    assert.same({ "SRE on-call team" }, c.teams)
    assert.is_true(cc.is_critical(c, "payments-api"))
    assert.is_true(cc.is_critical(c, "Payments API"))   -- any spelling the services policy knows
    assert.is_false(cc.is_critical(c, "search"))
    assert.equals(SEED, c.text)
  end)

  it("finds the rules that apply to an incident's severity or priority", function()
    local c = cc.parse(SEED .. " Critical incidents need a status page update within 15 minutes. "
      .. "P3 incidents can wait for business hours. SEV1 incidents get a war room.")
    assert.equals(1, #cc.rules_for(c, "High", "P1"))
    assert.equals(1, #cc.rules_for(c, "Critical", "P0"))
    assert.equals(1, #cc.rules_for(c, "SEV1", nil))
    assert.equals(1, #cc.rules_for(c, "Low", "P3"))
    assert.same({}, cc.rules_for(c, "Medium", "P2"))
    -- "critical services" is about services, not a severity rule
    for _, r in ipairs(c.rules) do assert.is_nil(r.text:find("critical services", 1, true)) end
  end)

  it("reads other phrasings of critical services and plain service lists", function()
    local c = cc.parse("Tier-0 services: billing-worker, ledger-db.\n"
      .. "We also run search-api and notifications-service, which are not critical.\n"
      .. "- inventory-api is business-critical")
    assert.same({ "billing-worker", "ledger-db", "inventory-api" }, c.critical_services)
    for _, s in ipairs({ "billing-worker", "ledger-db", "search", "notifications", "inventory-api" }) do
      local found = false
      for _, x in ipairs(c.services) do found = found or x == s end
      assert.is_true(found, s .. " not found in " .. table.concat(c.services, ", "))
    end
  end)

  it("reads owners and teams", function()
    local c = cc.parse("The search cluster is owned by the platform team; inventory-api is owned by "
      .. "the fulfilment team. The payments team owns payments-api.")
    assert.equals("platform team", c.owners["search"])
    assert.equals("fulfilment team", c.owners["inventory-api"])
    assert.equals("payments team", c.owners["payments-api"])
    assert.same({ "platform team", "fulfilment team", "payments team" }, c.teams)
  end)

  it("does not take hyphenated words that are not services", function()
    local c = cc.parse("Our on-call rotation follows the follow-up process; read-only keys only. "
      .. "Post-incident reviews happen within 5 days.")
    assert.same({}, c.services)
    assert.same({}, c.critical_services)
  end)

  it("never breaks on empty, odd or huge text", function()
    for _, t in ipairs({ nil, "", 42, "\255\254", ("critical services are a, "):rep(5000),
                         "services:", "is owned by" }) do
      local c = cc.parse(t)
      assert.is_table(c.services)
      assert.is_table(c.rules)
      assert.is_string(c.text)
      assert.is_true(#c.text <= cc.max_bytes)
    end
  end)

  it("gives the AI step the text and the critical services", function()
    local c = cc.parse(SEED)
    local p = cc.prompt(c)
    assert.truthy(p:find(SEED, 1, true))
    assert.truthy(p:find("Critical services: payments-api, checkout-service, user-auth.", 1, true))
    assert.equals("", cc.prompt(cc.parse("")))
  end)
end)
