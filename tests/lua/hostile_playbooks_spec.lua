-- Hostile playbooks (issue 8, item 4): a syntax error on reload, a runtime error in one
-- step, endless loops (plain, catching its own errors, yielding), a memory bomb, and
-- an error inside an evidence source. Each is isolated (that investigation ends,
-- recorded as failed, or posts partial findings), reported (log line, metric,
-- /healthz for the reload), and the daemon stays healthy: the incidents after it are
-- investigated and posted as usual.
-- The playbook is tests/lua/fixtures/hostile/playbook.lua (the default playbook's
-- steps, with a misbehaviour picked by a tag in the incident's name).
local H = require("serve_helper")
local X = require("helpers.hardening")
local json = require("fox.json")
local task = require("fox.task")

local CPU_LIMIT = 1          -- FOX_TASK_CPU_LIMIT: seconds a task may run without yielding
local DEADLINE = 3           -- investigation_timeout

describe("hostile playbooks", function()
  local fakes, fox, playbook_path
  local seq = 0

  local function write_playbook(extra)
    local src = assert(H.read_file(H.ROOT .. "/tests/lua/fixtures/hostile/playbook.lua"))
    H.write_file(playbook_path, src .. (extra or ""))
  end

  setup(function()
    fakes = X.start_fakes()
    fox = X.new_fox(fakes, {
      cpu_limit = tostring(CPU_LIMIT),
      config = { investigation_timeout = DEADLINE, max_attempts = 1, concurrency = 4 },
      options = { sources = { similar = false } },
    })
    fox.env.FOX_MEMORY_LIMIT = "128M"
    playbook_path = fox.dir .. "/hostile_playbook.lua"
    write_playbook()
    fox:set_config({ playbook = playbook_path })
    fox:start()
  end)

  teardown(function()
    if fox and fox.pid and H.alive(fox.pid) then fox:stop(10) end
    if fox then X.assert_clean_log(fox) end
    if fakes then fakes.stop() end
    H.cleanup()
  end)

  -- The incident's "investigation" log line, once it is there.
  local function outcome(inc, timeout)
    local line
    H.wait_for(function()
      for l in fox:log_text():gmatch("[^\n]+") do
        if l:find("event=investigation ", 1, true) and l:find("incident=" .. inc.reference .. " ", 1, true) then
          line = l
        end
      end
      return line
    end, timeout or 15, 0.05)
    return line
  end

  -- A normal incident right after: investigated and posted as usual.
  local function still_healthy()
    assert.is_true(H.alive(fox.pid), "fox died:\n" .. fox:log_text():sub(-3000))
    seq = seq + 1
    local inc = X.create_incidents(fakes, 1, "Normal " .. seq)[1]
    local res, elapsed = H.deliver(fox, H.created_event(inc))
    assert.equals(202, res.status)
    assert.is_true(elapsed < 0.5 * X.SLOW, "the webhook took " .. elapsed .. " s")
    X.assert_posted_once(fakes, { inc }, 15)
    local health, code = fox:health()
    assert.equals(200, code, json.encode(health))
  end

  local function hostile(tag)
    local inc = H.create_incident(fakes, { name = "Hostile " .. tag, severity = "High", services = { "payments-api" } })
    assert.equals(202, H.deliver(fox, H.created_event(inc)).status)
    return inc
  end

  it("records a runtime error in one step as that investigation's failure", function()
    local inc = hostile("[runtime-error]")
    local line = outcome(inc)
    assert.truthy(line, "no outcome logged")
    assert.matches("status=failed", line, 1, true)
    assert.matches("attempt to index a nil value", line, 1, true)
    assert.matches("hostile_playbook.lua:%d+", line)
    assert.is_true(fox:metric('fox_investigations_failed_total{reason="error"}') >= 1)
    still_healthy()
  end)

  it("stops an endless loop at the CPU limit, and one that catches its own errors", function()
    for _, tag in ipairs({ "[loop]", "[pcall-loop]" }) do
      local t0 = task.now()
      local inc = hostile(tag)
      -- While it spins the loop is blocked: a webhook waits at most about the CPU limit.
      local other = X.create_incidents(fakes, 1, "During " .. tag:gsub("%p", ""))[1]
      task.sleep(0.1)
      local res, elapsed = H.deliver(fox, H.created_event(other))
      assert.equals(202, res.status)
      assert.is_true(elapsed < CPU_LIMIT + X.SLOW, tag .. ": a webhook waited " .. elapsed .. " s")
      local line = outcome(inc)
      assert.truthy(line, tag .. ": no outcome logged")
      assert.matches("status=failed", line, 1, true)
      assert.matches("without yielding", line, 1, true)
      assert.is_true(task.now() - t0 < CPU_LIMIT + 4 * X.SLOW, tag .. " ran for " .. (task.now() - t0) .. " s")
      X.assert_posted_once(fakes, { other }, 15)
    end
    still_healthy()
  end)

  it("ends an endless loop that yields at the investigation deadline", function()
    local t0 = task.now()
    local inc = hostile("[yield-loop]")
    local line = outcome(inc, DEADLINE + 10 * X.SLOW)
    assert.truthy(line, "no outcome logged")
    assert.matches("status=failed", line, 1, true)
    local took = task.now() - t0
    assert.is_true(took >= DEADLINE - 0.5 and took < DEADLINE + 5 * X.SLOW, "ended after " .. took .. " s")
    still_healthy()
  end)

  it("stops a memory bomb at the generation's memory cap, again and again", function()
    -- The bomb's garbage is reclaimed by the collector when the next allocation needs
    -- it (an emergency collection at the cap), so bombs do not accumulate.
    for round = 1, 2 do
      local inc = hostile("[memory]")
      local line = outcome(inc, 20)
      assert.truthy(line, "no outcome logged")
      assert.matches("status=failed", line, 1, true)
      assert.matches("not enough memory", line, 1, true)
      still_healthy()
      local rss = fox:metric("fox_process_resident_memory_bytes")
      assert.is_true(rss < 512 * 1024 * 1024, "round " .. round .. ": resident memory " .. rss)
    end
  end)

  it("reports an error inside an evidence source in partial findings", function()
    local inc = hostile("[source-error]")
    local by = X.assert_posted_once(fakes, { inc }, 15)
    local c = by[inc.slack_channel_id]
    local all = table.concat(c.texts, "\n") .. table.concat(c.blocks, "\n")
    assert.matches("Could not query: broken", all, 1, true)
    assert.matches("boom inside the broken source", all, 1, true)
    assert.matches("status=done", outcome(inc), 1, true)
    still_healthy()
  end)

  it("keeps the running playbook when a reload brings a syntax error, and says why", function()
    write_playbook("\nlocal function broken(\n")
    fox:signal("HUP")
    local health
    H.wait_for(function()
      health = fox:health()
      return health.last_reload and health.last_reload.ok == false
    end, 10)
    assert.is_false(health.last_reload.ok)
    assert.matches("hostile_playbook.lua:%d+:", health.last_reload.error)
    assert.matches("the last reload failed", table.concat(health.problems, "\n"), 1, true)
    assert.equals(1, fox:metric("fox_reload_failures_total"))
    assert.matches("hostile_playbook.lua:%d+:", fox:log_text())
    still_healthy() -- on the previous generation
    write_playbook()
    fox:signal("HUP")
    assert.truthy(H.wait_for(function() return fox:health().last_reload.ok == true end, 10))
    still_healthy()
  end)
end)
