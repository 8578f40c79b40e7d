-- fox.task inside the real host: spawn, wait, gather, sleep, cancel, budgets.
local task = require("fox.task")

describe("fox.task", function()
  it("spawns a task and waits for its results", function()
    local t = task.spawn(function(a, b) return a + b, "x" end, 2, 3)
    local ok, sum, x = task.wait(t)
    assert.is_true(ok)
    assert.equals(5, sum)
    assert.equals("x", x)
    assert.equals("done", t.status)
  end)

  it("reports a failing task's error through wait", function()
    local t = task.spawn(function() error("boom") end)
    local ok, err = task.wait(t)
    assert.is_false(ok)
    assert.matches("boom", err)
    assert.equals("failed", t.status)
  end)

  it("sleeps for about the time asked", function()
    local t0 = task.now()
    task.sleep(0.05)
    local dt = task.now() - t0
    assert.is_true(dt >= 0.045, "slept " .. dt)
    assert.is_true(dt < 0.5, "slept " .. dt)
  end)

  it("gathers concurrently: three 200 ms sleeps take about 200 ms", function()
    local t0 = task.now()
    local values, errors = task.gather({
      function() task.sleep(0.2) return 1 end,
      function() task.sleep(0.2) return 2 end,
      function() task.sleep(0.2) error("third failed", 0) end,
    })
    local dt = task.now() - t0
    assert.same({ 1, 2 }, values)
    assert.is_nil(errors[1])
    assert.equals("third failed", errors[3])
    assert.is_true(dt < 0.4, "took " .. dt)
  end)

  it("gather with a timeout cancels the stragglers", function()
    local values, errors = task.gather({
      function() return "fast" end,
      function() task.sleep(5) return "slow" end,
    }, { timeout = 0.1 })
    assert.equals("fast", values[1])
    assert.matches("timed out after 0.1 s", errors[2])
  end)

  it("cancels what a gather started when the gathering task ends while it waits", function()
    local started, finished = 0, 0
    local function slow()
      started = started + 1
      task.sleep(5)
      finished = finished + 1
    end
    local before = task.live()
    local parent = task.spawn({ name = "gatherer", timeout = 0.1 }, function()
      task.gather({ slow, slow, function() return "quick" end }, { timeout = 10 })
    end)
    local ok, err = task.wait(parent)
    assert.is_false(ok)
    assert.matches("exceeded its deadline", err)
    assert.equals(2, started)
    task.sleep(0.05)
    assert.equals(0, finished)
    assert.equals(before, task.live()) -- the gathered tasks and the watchdog are gone
  end)

  it("gather without a timeout runs its last function in the calling task, one task fewer", function()
    local me = task.current()
    local before = task.live()
    local live_meanwhile, where
    local values, errors = task.gather({
      function() task.sleep(0.05) return "spawned" end,
      function() task.sleep(0.05) error("spawned failed", 0) end,
      function()
        where = task.current()
        live_meanwhile = task.live()
        task.sleep(0.02)
        error({ code = 7 })
      end,
    })
    assert.equals("spawned", values[1])
    assert.equals("spawned failed", errors[2])
    assert.same({ code = 7 }, errors[3])
    assert.is_nil(values[3])
    assert.equals(me.id, where.id)
    assert.equals(before + 2, live_meanwhile)
    assert.equals(before, task.live())
    -- the inline function's result lands at its index like the others'
    local v = task.gather({ function() return 1 end, function() return 2 end })
    assert.same({ 1, 2 }, v)
    assert.same({}, (task.gather({})))
  end)

  it("cancels what a gather started when the gathering task ends while its inline function waits", function()
    local finished = 0
    local function slow()
      task.sleep(5)
      finished = finished + 1
    end
    local before = task.live()
    local parent = task.spawn({ name = "gatherer", timeout = 0.1 }, function()
      task.gather({ slow, slow, slow })
    end)
    local ok, err = task.wait(parent)
    assert.is_false(ok)
    assert.matches("exceeded its deadline", err)
    task.sleep(0.05)
    assert.equals(0, finished)
    assert.equals(before, task.live())
  end)

  it("cancels a sleeping task", function()
    local t = task.spawn(function() task.sleep(10) return "woke" end)
    task.sleep(0.01)
    assert.is_true(task.cancel(t, "no longer needed"))
    local ok, err = task.wait(t)
    assert.is_false(ok)
    assert.equals("no longer needed", err)
    assert.equals("cancelled", t.status)
  end)

  it("runs to-be-closed variables of a cancelled task", function()
    local closed = false
    local t = task.spawn(function()
      local guard <close> = setmetatable({}, { __close = function() closed = true end })
      task.sleep(10)
      return guard
    end)
    task.sleep(0.01)
    task.cancel(t)
    assert.is_true(closed)
  end)

  it("ends a task at its deadline", function()
    local t = task.spawn({ name = "slowpoke", timeout = 0.05 }, function() task.sleep(5) end)
    local ok, err = task.wait(t)
    assert.is_false(ok)
    assert.matches("task 'slowpoke' %(#%d+%) exceeded its deadline of 0.05 s", err)
  end)

  it("stops a runaway loop and names the task, while others keep running", function()
    local ticks = 0
    local ticker = task.spawn(function()
      for _ = 1, 20 do
        task.sleep(0.01)
        ticks = ticks + 1
      end
    end)
    local t = task.spawn({ name = "spinner", cpu_limit = 0.2 }, function()
      -- a pcall must not be able to swallow the kill
      while true do pcall(function() while true do end end) end
    end)
    local ok, err = task.wait(t)
    assert.is_false(ok)
    assert.matches("task 'spinner' %(#%d+%) ran for more than 0.2 s without yielding", err)
    assert.is_true(task.wait(ticker))
    assert.equals(20, ticks)
  end)

  it("lets a script's own coroutines do I/O", function()
    local co = coroutine.wrap(function(x)
      task.sleep(0.01)
      local y = coroutine.yield(x + 1)
      task.sleep(0.01)
      return y * 2
    end)
    assert.equals(2, co(1))
    assert.equals(10, co(5))
  end)

  it("treats a plain yield at the top of a task as a pass", function()
    local t = task.spawn(function() coroutine.yield() return "after" end)
    local ok, v = task.wait(t)
    assert.is_true(ok)
    assert.equals("after", v)
  end)

  it("refuses to wait where Lua cannot yield", function()
    local ok, err = pcall(table.sort, { 3, 2, 1 }, function(a, b)
      task.sleep(0)
      return a < b
    end)
    assert.is_false(ok)
    assert.matches("cannot wait here", err)
  end)

  it("wakes waiters by name, and times out when nobody notifies", function()
    local woke = {}
    local function waiter() local r = task.wait_for("spec-ev", 5); woke[#woke + 1] = r end
    local a = task.spawn(waiter)
    local b = task.spawn(waiter)
    local other = task.spawn(function() return task.wait_for("spec-other", 0.05) end)
    task.sleep(0.01)
    assert.equals(2, task.notify("spec-ev"))
    task.wait(a)
    task.wait(b)
    assert.same({ true, true }, woke)
    local _, notified = task.wait(other)
    assert.is_false(notified)
    assert.equals(0, task.notify("nobody-waits"))
  end)

  it("rejects bad arguments", function()
    assert.has_error(function() task.spawn(42) end)
    assert.has_error(function() task.wait("nope") end)
    assert.has_error(function() task.sleep("soon") end)
  end)

  it("runs many tasks at once", function()
    local fns = {}
    for i = 1, 2000 do
      fns[i] = function() task.sleep(0.01) return i end
    end
    local t0 = task.now()
    local values = task.gather(fns)
    assert.equals(2000, #values)
    assert.equals(1234, values[1234])
    assert.is_true(task.now() - t0 < 2)
  end)

  -- Tasks made ready in the same loop turn run as one batch; cancelling one of them
  -- from an earlier one must not drop those queued behind it (they would never run,
  -- and their memory would be lost: the LeakSanitizer report of issue 8).
  it("runs every task of a batch when one of them cancels another", function()
    local ran = {}
    local b
    local a = task.spawn({ name = "canceller" }, function() task.cancel(b, "cancelled by a") end)
    b = task.spawn({ name = "victim" }, function() ran.b = true end)
    local later = {}
    for i = 1, 3 do later[i] = task.spawn(function() ran[i] = true end) end
    task.sleep(0.05)
    assert.is_true(task.wait(a))
    assert.equals("cancelled", b.status)
    assert.is_nil(ran.b)
    for i = 1, 3 do
      assert.equals("done", later[i].status, "task " .. i .. " queued behind the cancelled one")
      assert.is_true(ran[i])
    end
  end)

  it("runs every woken task of a batch when one of them cancels another", function()
    -- Woken in the same turn: all three sleep until the same instant.
    local ran = {}
    local victim
    local a = task.spawn(function() task.sleep(0.02) task.cancel(victim) end)
    victim = task.spawn(function() task.sleep(0.02) ran.victim = true end)
    local c = task.spawn(function() task.sleep(0.02) ran.c = true end)
    task.sleep(0.1)
    assert.is_true(task.wait(a))
    assert.equals("cancelled", victim.status)
    assert.equals("done", c.status)
    assert.is_true(ran.c)
  end)

  it("frees handle-less tasks queued behind a cancelled one", function()
    -- Nothing but the scheduler refers to these tasks: if the batch dropped them they
    -- would stay live forever (and LeakSanitizer reports them at exit under make asan).
    local before = task.live()
    local ran = 0
    local victim
    task.spawn(function() task.cancel(victim) end)
    victim = task.spawn(function() end)
    for _ = 1, 4 do task.spawn(function() ran = ran + 1 end) end
    task.sleep(0.05)
    assert.equals(4, ran)
    assert.equals(before, task.live())
  end)
end)
