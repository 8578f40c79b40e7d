-- fox.task: the C scheduler's primitives plus gather.
local core = require("fox.task.core")

local task = {
  spawn = core.spawn,
  wait = core.wait,
  sleep = core.sleep,
  now = core.now,
  cancel = core.cancel,
  current = core.current,
  live = core.live,
  -- wait_for(name [, timeout]) -> true when notified, false on timeout;
  -- notify(name) -> number woken. Names are process-wide (they cross generations).
  wait_for = core.wait_for,
  notify = core.notify,
}

-- Closed when the gathering task leaves gather: by returning (its tasks are all done
-- then) or by being cancelled or killed while it waits. Then the tasks still running
-- are cancelled: nobody can see their results, and they would hold their coroutines
-- and HTTP requests (possibly queued behind the connection limit) for nothing.
local ORPHANS = {
  __close = function(spawned)
    for i = 1, spawned.n do
      core.cancel(spawned[i], "cancelled: the task gathering it ended")
    end
    if spawned.watchdog then core.cancel(spawned.watchdog) end
  end,
}

--- Runs every function of fns at once, each in its own task, and waits for all.
-- Returns two arrays indexed like fns: each function's first result, and its error
-- (nil when it succeeded). opts.timeout cancels the ones still running after that many
-- seconds, with the error "timed out after N s". When the calling task ends while it
-- waits (cancelled, past its deadline), the functions still running are cancelled.
function task.gather(fns, opts)
  assert(type(fns) == "table", "gather expects an array of functions")
  local n = #fns
  local handles = setmetatable({ n = 0 }, ORPHANS)
  local _ <close> = handles
  for i = 1, n do
    assert(type(fns[i]) == "function", "gather: element " .. i .. " is not a function")
    handles[i] = core.spawn(fns[i])
    handles.n = i
  end
  local watchdog
  local timeout = opts and opts.timeout
  if timeout then
    watchdog = core.spawn({ name = "gather-timeout" }, function()
      core.sleep(timeout)
      for i = 1, n do
        core.cancel(handles[i], string.format("timed out after %g s", timeout))
      end
    end)
    handles.watchdog = watchdog
  end
  local values, errors = {}, {}
  for i = 1, n do
    local res = table.pack(core.wait(handles[i]))
    if res[1] then
      values[i] = res[2]
    else
      errors[i] = res[2]
    end
  end
  if watchdog then
    core.cancel(watchdog)
  end
  return values, errors
end

return task
