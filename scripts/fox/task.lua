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

--- Runs every function of fns at once, each in its own task, and waits for all.
-- Returns two arrays indexed like fns: each function's first result, and its error
-- (nil when it succeeded). opts.timeout cancels the ones still running after that many
-- seconds, with the error "timed out after N s".
function task.gather(fns, opts)
  assert(type(fns) == "table", "gather expects an array of functions")
  local n = #fns
  local handles = {}
  for i = 1, n do
    assert(type(fns[i]) == "function", "gather: element " .. i .. " is not a function")
    handles[i] = core.spawn(fns[i])
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
