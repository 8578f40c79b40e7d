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

--- Runs every function of fns at once and waits for all.
-- Returns two arrays indexed like fns: each function's first result, and its error
-- (nil when it succeeded). opts.timeout cancels the ones still running after that many
-- seconds, with the error "timed out after N s". When the calling task ends while it
-- waits (cancelled, past its deadline), the functions still running are cancelled.
-- Without a timeout the last function runs in the calling task, which would only wait
-- otherwise: one coroutine (about 2 KiB while it waits) fewer per gather, and an
-- investigation gathers at several levels while it waits on its sources. With a
-- timeout every function needs a task of its own, for the watchdog to cancel.
function task.gather(fns, opts)
  assert(type(fns) == "table", "gather expects an array of functions")
  local n = #fns
  for i = 1, n do
    assert(type(fns[i]) == "function", "gather: element " .. i .. " is not a function")
  end
  local timeout = opts and opts.timeout
  local inline = (timeout == nil and n > 0 and core.current() ~= nil) and n or nil
  local handles = setmetatable({ n = 0 }, ORPHANS)
  local _ <close> = handles
  for i = 1, inline and n - 1 or n do
    handles[i] = core.spawn(fns[i])
    handles.n = i
  end
  if timeout then
    handles.watchdog = core.spawn({ name = "gather-timeout" }, function()
      core.sleep(timeout)
      for i = 1, n do
        core.cancel(handles[i], string.format("timed out after %g s", timeout))
      end
    end)
  end
  local values, errors = {}, {}
  if inline then
    local ok, res = pcall(fns[n])
    if ok then values[n] = res else errors[n] = res end
  end
  for i = 1, handles.n do
    local res = table.pack(core.wait(handles[i]))
    if res[1] then
      values[i] = res[2]
    else
      errors[i] = res[2]
    end
  end
  if handles.watchdog then
    core.cancel(handles.watchdog)
    handles.watchdog = nil
  end
  return values, errors
end

return task
