-- sources.log_groups: pages grouped as they arrive, merged at the end, give what one
-- fox.error_signature.group call over all the lines (in time order) gives.
local error_signature = require("fox.error_signature")
local log_groups = require("sources.log_groups")

local TEMPLATES = {
  "charge failed: PaymentGatewayTimeout: upstream 504 from gw-%d.internal (POST /v1/authorisations, %dms)",
  "session cache read failed: RedisTimeout: read tcp 10.0.%d.4:6379->10.0.0.%d:6379: i/o timeout",
  "java.net.SocketTimeoutException: Read timed out after %d ms (request %d)",
  "Session Cache Read Failed: RedisTimeout: read tcp 10.0.%d.4:6379->10.0.0.%d:6379: i/o timeout",
  '{"level":"error","msg":"order %d rejected","code":%d}',
}

-- n lines from a fixed seed: distinct times (one every 0.5 s), two services.
local function lines(n, seed)
  local state = seed
  local function rand(m)
    state = (state * 1103515245 + 12345) % 2147483648
    return state % m + 1
  end
  local out = {}
  for i = 1, n do
    local t = TEMPLATES[rand(#TEMPLATES)]
    out[i] = { line = string.format(t, rand(50), rand(9000)), ts = 1000000 + i * 0.5,
               service = rand(2) == 1 and "payments-api" or "checkout-service" }
  end
  return out, rand
end

-- The entries cut into pages of random sizes, the pages in a shuffled order, each
-- shuffled inside: the order in which they are added must not matter.
local function pages_of(entries, rand)
  local pages, i = {}, 1
  while i <= #entries do
    local size = rand(40)
    local page = {}
    for j = i, math.min(#entries, i + size - 1) do page[#page + 1] = entries[j] end
    for j = #page, 2, -1 do
      local k = rand(j)
      page[j], page[k] = page[k], page[j]
    end
    pages[#pages + 1] = page
    i = i + size
  end
  for j = #pages, 2, -1 do
    local k = rand(j)
    pages[j], pages[k] = pages[k], pages[j]
  end
  return pages
end

describe("log_groups", function()
  it("merges pages into what one group() call over the time-ordered lines gives", function()
    for _, seed in ipairs({ 1, 7, 42 }) do
      local entries, rand = lines(300, seed)
      local start = 1000000 + 75
      local want = error_signature.group(entries, { max = 3, incident_start = start })
      local acc = log_groups.new({ incident_start = start, slice = 9 })
      for _, page in ipairs(pages_of(entries, rand)) do acc:add(page[1].service, page) end
      local got = acc:result(3)
      assert.same(want, got)
      assert.equals(300, got.total)
      assert.is_true(got.omitted > 0)
    end
  end)

  it("keeps the spelling and example of the earliest line of a signature", function()
    local acc = log_groups.new({ slice = 1 })
    acc:add("b", { { line = "Session Cache Read Failed: RedisTimeout", ts = 20, service = "b" } })
    acc:add("a", { { line = "session cache read failed: RedisTimeout", ts = 10, service = "a" } })
    local g = acc:result()
    assert.equals(1, #g.signatures)
    assert.equals("session cache read failed: RedisTimeout", g.signatures[1].signature)
    assert.equals(10, g.signatures[1].first_seen)
    assert.equals(20, g.signatures[1].last_seen)
    assert.same({ "a", "b" }, g.signatures[1].services)
  end)

  it("groups decoded documents like group() does", function()
    local docs = {
      { fields = { message = "upstream 504 from 10.0.0.1", ["@timestamp"] = "x" }, ts = 1, service = "s" },
      { fields = { error = { message = "upstream 504 from 10.0.0.2" } }, ts = 2, service = "s" },
      { fields = { nothing = true }, ts = 3, service = "s" },
    }
    local acc = log_groups.new({ slice = 2 })
    acc:add("s", docs)
    assert.same(error_signature.group(docs), acc:result())
  end)

  it("leaves out what was added under a dropped key", function()
    local entries = lines(50, 3)
    local acc = log_groups.new({ slice = 5 })
    acc:add("kept", entries)
    acc:add("failed", { { line = "only in the failed service", ts = 1, service = "x" } })
    acc:drop("failed")
    assert.same(error_signature.group(entries), acc:result())
  end)

  it("answers an empty result when nothing was added", function()
    local g = log_groups.new():result()
    assert.same({ signatures = {}, total = 0, distinct = 0, omitted = 0 }, g)
  end)
end)
