-- A team's severity map for fox (scripts/policies/severity.lua keeps the defaults:
-- Critical P0, High P1, Medium P2, Low P3). Point the config at it:
--
--   severity = "policies/severity.lua",     -- relative to fox.conf.lua
--   -- or in playbook_options = { severity = ... }, or inline as a table
--
-- Names are matched without case. A severity the account has and this table lacks is
-- placed by its rank among the account's severities (the most severe is the first rung
-- of the ladder), and fox logs a warning naming it; `fox doctor` lists them too.
return {
  priorities = {
    ["sev 0"] = "P0", sev0 = "P0", ["major outage"] = "P0",
    ["sev 1"] = "P1", sev1 = "P1", major = "P1",
    ["sev 2"] = "P2", sev2 = "P2", minor = "P2",
    ["sev 3"] = "P3", sev3 = "P3", cosmetic = "P4",
  },
  -- the rungs used for severities placed by rank, most urgent first
  ladder = { "P0", "P1", "P2", "P3", "P4" },
  -- true: only the names above count (the defaults Critical/High/... are dropped)
  replace = false,
}
