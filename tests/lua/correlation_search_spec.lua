-- The candidate lookup of correlate_incidents (fox.correlation_search over the posting
-- lists of fox.incident_index) against scoring every incident, on randomised histories:
-- the same matches, in the same order, for every threshold the bound allows.
local correlate = require("policies.correlate")
local index = require("fox.incident_index")
local search = require("fox.correlation_search")
local timerange = require("fox.timerange")

local SEED = tonumber(os.getenv("FOX_SPEC_SEED") or "") or os.time()
local NOW = 1780000000
local DAY = 86400

local SERVICES = { "payments-api", "checkout-service", "user-auth", "notifications", "", "" }
local WORDS = { "latency", "queue", "backlog", "refund", "webhook", "database", "replica", "lag",
  "deploy", "rollback", "certificate", "expired", "cache", "eviction", "memory", "pressure",
  "login", "token", "session", "kafka", "partition", "rebalance", "disk", "full", "dns",
  "resolution", "slow", "spike", "errors", "elevated", "outage", "degraded" }
local ERRORS = {
  "PaymentGatewayTimeout: upstream 504 from card-gateway after 5000ms",
  "Error: connection refused to db-primary-3.internal:5432 (ECONNREFUSED)",
  "java.net.SocketTimeoutException: Read timed out at 10.0.4.12:8080",
  "KafkaConsumerLag: partition 7 lag 120000 > 10000",
  "OOMKilled: container notifications-worker exceeded memory limit",
  "TokenValidationError: signature expired for session token",
}
local SEVERITIES = { { name = "Minor", rank = 1 }, { name = "Major", rank = 2 }, { name = "Critical", rank = 3 } }
local TYPES = { "Default", "Production Outage", "Degraded Performance" }
local CATEGORIES = { "closed", "closed", "learning", "live", "merged" }

local function pick(list) return list[math.random(#list)] end

local function words(n)
  local out = {}
  for i = 1, n do out[i] = pick(WORDS) end
  return table.concat(out, " ")
end

-- A raw incident as the incident.io API returns it, with overlapping services, words
-- and error lines so that scores spread over the whole range.
local function raw_incident(n, version)
  local svc = pick(SERVICES)
  local name = (svc ~= "" and svc .. " " or "") .. words(math.random(2, 5))
  local summary = words(math.random(0, 12))
  if math.random() < 0.6 then summary = summary .. "\nError: " .. pick(ERRORS) end
  if math.random() < 0.2 then summary = summary .. "\n`" .. pick(ERRORS) .. "`" end
  local created = NOW - math.random(0, 120 * DAY)
  return {
    id = string.format("01SPEC%020d", n), reference = "INC-" .. n, name = name, summary = summary,
    created_at = timerange.format_time(created),
    updated_at = timerange.format_time(created + 3600 * version),
    severity = math.random() < 0.8 and pick(SEVERITIES) or nil,
    incident_type = math.random() < 0.8 and { name = pick(TYPES) } or nil,
    incident_status = { name = "x", category = pick(CATEGORIES) },
  }
end

-- Every incident of the window scored, best first.
local function score_all(client, prep, target_id, from, to)
  local all = {}
  index.each(client, from, to, function(rec)
    if rec.id ~= target_id then
      local score, signals = correlate.score(prep, rec, {})
      all[#all + 1] = { rec = rec, score = score, signals = signals }
    end
  end)
  table.sort(all, search.better)
  return all
end

-- What scoring every incident of the window gives.
local function brute_force(all, threshold, limit)
  local out = {}
  for _, m in ipairs(all) do
    if #out >= limit or m.score < threshold then break end
    out[#out + 1] = m.rec.id .. "=" .. m.score
  end
  return out
end

local function ids(matches)
  local out = {}
  for i, m in ipairs(matches) do out[i] = m.rec.id .. "=" .. m.score end
  return out
end

local function find(client, prep, target_id, from, to, threshold, limit, scan)
  local docno = index.docno(client, target_id)
  return search.find(client, prep, { from = from, to = to, threshold = threshold, limit = limit,
    match = function(rec)
      local score, signals = correlate.score(prep, rec, {})
      return { rec = rec, score = score, signals = signals }
    end,
    skip = docno and { [docno] = true } or {}, target_docno = docno, scan = scan })
end

describe("correlation search", function()
  local client = { scope = "spec-correlation-search" }
  local raws
  setup(function()
    math.randomseed(SEED)
    index.clear(client)
    raws = {}
    for n = 1, 600 do
      raws[n] = raw_incident(n, 1)
      index.put(client, raws[n])
    end
  end)
  teardown(function() index.clear(client) end)

  local function compare_all(label)
    local looked_up, checks = 0, 0
    for k = 1, 16 do
      local raw = raws[math.random(#raws)]
      local target = index.record(raw)
      local prep = correlate.prepare(target)
      local bound = correlate.upper_bound(prep, { s = 0, n = 0, m = 0, e = {} })
      local from = target.t - math.random(5, 130) * DAY
      local to = math.min(NOW, target.t + math.random(0, 60) * DAY)
      local all = score_all(client, prep, raw.id, from, to)
      for _, threshold in ipairs({ 0, 0.2, 0.3, 0.45, 0.5, 0.6, 0.75 }) do
        local limit = (k % 3 == 0) and 100 or math.random(1, 12)
        local want = brute_force(all, threshold, limit)
        local got = find(client, prep, raw.id, from, to, threshold, limit)
        assert.equals(#all, got.considered)
        local scanned = (threshold == 0.5) and find(client, prep, raw.id, from, to, threshold, limit, true)
        local what = string.format("%s seed %d, %s, threshold %.2f, limit %d", label, SEED, raw.reference,
          threshold, limit)
        assert.same(want, ids(got.matches), what)
        if scanned then
          assert.same(want, ids(scanned.matches), what)
          assert.equals("scan", scanned.lookup)
        end
        if threshold > bound + 0.001 then
          assert.equals("index", got.lookup, what)
          looked_up = looked_up + 1
        elseif threshold <= bound then
          assert.equals("scan", got.lookup, what)
        end
        checks = checks + 1
      end
    end
    assert.is_true(looked_up > checks / 3, "the lookup was used in " .. looked_up .. " of " .. checks)
  end

  it("finds what scoring every incident finds, in the same order", function()
    compare_all("first load")
  end)

  it("still does after incidents changed (refiled under their new terms)", function()
    for n = 1, #raws, 3 do
      local changed = raw_incident(n, 5)
      changed.created_at = raws[n].created_at
      if n % 2 == 0 then changed.created_at = timerange.format_time(NOW - math.random(0, 120 * DAY)) end
      changed.updated_at = timerange.format_time(NOW + n) -- newer than every first version
      raws[n] = changed
      index.put(client, changed)
    end
    for n = 1, 10, 3 do
      assert.equals(raws[n].name, index.get(client, index.docno(client, raws[n].id)).name)
    end
    compare_all("after changes")
  end)

  it("reads fewer records than the window holds when the threshold allows", function()
    local raw = raws[1]
    local target = index.record(raw)
    local prep = correlate.prepare(target)
    local got = find(client, prep, raw.id, 0, NOW, 0.6, 5)
    assert.equals("index", got.lookup)
    assert.is_true(got.scored < got.considered / 2, got.scored .. " of " .. got.considered)
  end)
end)

describe("correlation policy: upper_bound", function()
  it("is never under the score, for random pairs", function()
    math.randomseed(SEED + 1)
    for i = 1, 2000 do
      local a, b = index.record(raw_incident(i, 1)), index.record(raw_incident(i + 5000, 1))
      local prep = correlate.prepare(a)
      local cand_terms = {}
      for _, term in ipairs(correlate.index_terms(b)) do cand_terms[term] = true end
      local h = { s = 0, n = 0, m = 0, e = {}, dt = math.abs(a.t - b.t) }
      for _, term in ipairs(correlate.index_terms(a)) do
        if cand_terms[term] then
          local kind, tok = term:sub(1, 1), term:sub(3)
          if kind == "e" then
            h.has_error = true
            for j, ls in ipairs(prep.error_line_sets) do
              if ls.set[tok] then h.e[j] = (h.e[j] or 0) + 1 end
            end
          else
            h[kind] = h[kind] + 1
          end
        end
      end
      local score = correlate.score(prep, b, {})
      local bound = correlate.upper_bound(prep, h)
      assert.is_true(score <= bound + 0.0005 + 1e-9,
        string.format("seed %d pair %d: score %.4f over bound %.4f", SEED, i, score, bound))
    end
  end)

  it("follows the weights: a team that weighs time more gets a higher bound", function()
    local target = index.record(raw_incident(1, 1))
    local prep = correlate.prepare(target)
    local none = { s = 0, n = 0, m = 0, e = {} }
    local before = correlate.upper_bound(prep, none)
    local saved = correlate.weights.time
    correlate.weights.time = 1
    local after = correlate.upper_bound(prep, none)
    correlate.weights.time = saved
    assert.is_true(after > before, after .. " vs " .. before)
    -- with the default weights an incident sharing nothing cannot reach 0.5
    assert.is_true(before < 0.5, "bound " .. before)
  end)
end)
