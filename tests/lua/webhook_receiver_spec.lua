-- The webhook receiver over real durable state: deliveries that arrive together are
-- recorded together (group commit) and each is answered only once its record is on
-- disk; a retry arriving while the first is still waiting for its commit is a
-- duplicate, not a second acceptance; a failed commit answers 503 to every delivery
-- that was in it and records none of them.
local crypto = require("fox.crypto")
local json = require("fox.json")
local metrics = require("fox.metrics")
local queue = require("fox.queue")
local receiver = require("fox.webhook_receiver")
local shared = require("fox.shared")
local state = require("fox.state")
local task = require("fox.task")
local webhook = require("fox.webhook")

local SECRET = "whsec_" .. crypto.base64_encode("receiver-spec-secret-0123456789ab")
local CREATED = "public_incident.incident_created_v2"

-- Ids unique to this run: the shared dictionary is process-wide.
local run = crypto.hex(crypto.random_bytes(4))
local function uid(s) return s .. "-" .. run end

local function delivery(wid, incident_id, event_type)
  local etype = event_type or CREATED
  local body = json.encode({ event_type = etype, [etype] = { id = incident_id, reference = "INC-1" } })
  local ts = tostring(os.time())
  return { method = "POST", path = "/webhooks/incident-io", body = body, remote_addr = "127.0.0.1",
    headers = { ["content-type"] = "application/json", ["webhook-id"] = wid, ["webhook-timestamp"] = ts,
      ["webhook-signature"] = webhook.sign(SECRET, wid, ts, body) } }
end

-- Answers of deliveries handled at the same time (each in its own task, as the HTTP
-- server runs them), in order.
local function deliver_together(env, reqs)
  local tasks = {}
  for i, req in ipairs(reqs) do tasks[i] = task.spawn(receiver.handle, req, env) end
  local out = {}
  for i, t in ipairs(tasks) do
    local ok, resp = task.wait(t)
    assert(ok, resp)
    out[i] = { status = resp.status, body = json.decode(resp.body) }
  end
  return out
end

local function sqlite(db, sql)
  assert(os.execute(("sqlite3 %q %q"):format(db, sql)))
end

describe("webhook receiver", function()
  local dir, st, env

  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    st = assert(state.open(dir))
    env = {
      cfg = { webhook_secret = SECRET, max_body = 1048576, webhook_tolerance = 300 },
      st = st,
      queue = queue.new({ st = st, owner = "spec", job = function() end }),
    }
  end)

  after_each(function()
    st:close()
    for _, f in ipairs({ "fox.db", "fox.db-wal", "fox.db-shm", "fox.lock" }) do os.remove(dir .. "/" .. f) end
    os.remove(dir)
  end)

  it("accepts deliveries arriving together, each with its entry and webhook id on disk", function()
    local before = metrics.get("fox_webhooks_total", { outcome = "accepted" })
    local reqs = {}
    for i = 1, 12 do reqs[i] = delivery(uid("msg-a" .. i), uid("inc-a" .. i)) end
    local answers = deliver_together(env, reqs)
    for i, a in ipairs(answers) do
      assert.equals(202, a.status)
      assert.same({ status = "queued", incident_id = uid("inc-a" .. i) }, a.body)
      assert.truthy(st:get(queue.NS_QUEUE, uid("inc-a" .. i)))
      assert.equals(uid("inc-a" .. i), st:get(receiver.NS, uid("msg-a" .. i)))
    end
    assert.equals(before + 12, metrics.get("fox_webhooks_total", { outcome = "accepted" }))
  end)

  it("answers a retry that arrives while the first delivery is being recorded as a duplicate", function()
    local req = delivery(uid("msg-b"), uid("inc-b"))
    local answers = deliver_together(env, { req, req, req })
    assert.same({ 202, 200, 200 }, { answers[1].status, answers[2].status, answers[3].status })
    assert.same({ status = "duplicate" }, answers[2].body)
    assert.same({ status = "duplicate" }, answers[3].body)
    -- and after a restart (the shared dictionary is empty), from the durable record
    shared.delete("wh:" .. uid("msg-b"))
    local again = deliver_together(env, { req })
    assert.same({ status = "duplicate" }, again[1].body)
  end)

  it("queues an incident once when two webhooks about it arrive together, recording both ids", function()
    local answers = deliver_together(env, {
      delivery(uid("msg-c1"), uid("inc-c")), delivery(uid("msg-c2"), uid("inc-c")),
    })
    assert.equals(202, answers[1].status)
    assert.equals(200, answers[2].status)
    assert.same({ status = "queued", incident_id = uid("inc-c") }, answers[2].body)
    assert.equals(uid("inc-c"), st:get(receiver.NS, uid("msg-c1")))
    assert.equals(uid("inc-c"), st:get(receiver.NS, uid("msg-c2")))
  end)

  it("answers 503 to every delivery of a failed commit and records none of them", function()
    -- The store refuses the entry of incident "boom": the commit holding it fails.
    sqlite(st:path(), "CREATE TRIGGER fail_boom BEFORE INSERT ON kv WHEN NEW.key = 'boom' "
      .. "BEGIN SELECT RAISE(ABORT, 'injected failure'); END;")
    local reqs = { delivery(uid("msg-d1"), uid("inc-d1")), delivery(uid("msg-d2"), "boom"),
      delivery(uid("msg-d3"), uid("inc-d3")) }
    local answers = deliver_together(env, reqs)
    for i, a in ipairs(answers) do
      assert.equals(503, a.status, "delivery " .. i)
      assert.same({ error = "could not record the event" }, a.body)
    end
    assert.is_nil(st:get(queue.NS_QUEUE, uid("inc-d1")))
    assert.is_nil(st:get(queue.NS_QUEUE, uid("inc-d3")))
    assert.is_nil(st:get(receiver.NS, uid("msg-d1")))
    assert.is_nil(st:get(receiver.NS, uid("msg-d2")))
    -- incident.io retries: with the store healthy again, each is accepted, not a duplicate
    sqlite(st:path(), "DROP TRIGGER fail_boom;")
    local retried = deliver_together(env, reqs)
    for i, a in ipairs(retried) do assert.equals(202, a.status, "retry " .. i) end
  end)

  it("records nothing for events it does not act on", function()
    local answers = deliver_together(env, {
      delivery(uid("msg-e"), uid("inc-e"), "public_incident.incident_updated_v2"),
    })
    assert.same({ status = "ignored" }, answers[1].body)
    assert.is_nil(st:get(receiver.NS, uid("msg-e")))
  end)
end)
