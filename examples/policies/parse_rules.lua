-- Extra rules for the parse policy (scripts/policies/parse.lua): how this team writes
-- its incident descriptions. Point the config at it:
--
--   playbook_options = { parse_rules = "policies/parse_rules.lua" }   -- relative to the config
--
-- Every part is optional. Rules add to the built-in ones; they never remove them.
return {
  -- More `Key: value` keys: canonical name -> the spellings people use (compared without
  -- case, with "-", "_" and spaces alike).
  keys = {
    owner = { "owner", "owning team", "team" },
    ticket = { "jira", "ticket" },
    service = { "svc", "microservice" },   -- more spellings of a built-in key
  },

  -- URL kinds, tried before the built-in ones: Lua patterns over the lower-cased host
  -- and path. kind is dashboard, runbook, pagerduty, github or other.
  urls = {
    { kind = "dashboard", provider = "grafana", host = "^metrics%.acme%.internal$" },
    { kind = "runbook", provider = "notion", host = "notion%.so$", path = "runbook" },
    { kind = "other", provider = "sentry", host = "sentry%.io$" },
  },

  -- A section whose title matches fills a field (when no Key: value line did).
  sections = {
    { title = "^mitigation", field = "mitigation" },
    { title = "^root cause", field = "root_cause" },
  },

  -- Lua patterns over the plain text; all = true collects every distinct match.
  patterns = {
    { field = "tickets", pattern = "%f[%w]OPS%-%d+", all = true },
    { field = "kubernetes_namespace", pattern = "namespace[:= ]+([%w-]+)" },
  },

  -- Anything else: gets the result and the plain text; runs protected (an error is
  -- reported in result.rule_errors and the rest of the result stands).
  extract = function(result, text)
    if text:lower():find("customer%-facing") then result.fields.customer_facing = true end
  end,
}
