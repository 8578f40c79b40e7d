-- A census of the Lua heap: what the objects reachable from the registry weigh,
-- attributed to where they are held. Sizes are estimates of Lua 5.4's own layout
-- (strings 24 + length; tables 56 + 16 per array slot + 32 per hash slot; closures 32
-- + 8 per upvalue; a thread 1 KiB with its stack), good for finding what dominates.
--
--   local census = loadfile("bench/lua/census.lua")()
--   local seen = census.mark()           -- everything reachable now: not counted later
--   ... start the work to weigh ...
--   local by_holder, total = census.count(seen)  -- what became reachable since, by holder
local M = {}

local getinfo, getlocal, getupvalue = debug.getinfo, debug.getlocal, debug.getupvalue
local getmetatable, getuservalue = debug.getmetatable, debug.getuservalue

local function pow2(n)
  local p = 1
  while p < n do p = p * 2 end
  return n > 0 and p or 0
end

local function size_of(v)
  local t = type(v)
  if t == "string" then return 24 + #v end
  if t == "table" then
    local narr, nhash = #v, 0
    for k in next, v do
      if not (math.type(k) == "integer" and k >= 1 and k <= narr) then nhash = nhash + 1 end
    end
    return 56 + 16 * narr + 32 * pow2(nhash)
  end
  if t == "function" then
    local info = getinfo(v, "u")
    return 32 + 8 * info.nups
  end
  if t == "thread" then return 1024 end
  if t == "userdata" then return 64 end
  return 0
end

-- Visits everything reachable from root not yet in seen; adds the sizes of objects
-- not in old to acc[label]. Threads met on the way are added to threads for a walk of
-- their own (by stack frame).
local function walk(root, seen, acc, label, threads, old)
  local stack, n = { root }, 1
  while n > 0 do
    local v = stack[n]
    stack[n] = nil
    n = n - 1
    local t = type(v)
    if (t == "table" or t == "function" or t == "thread" or t == "userdata" or t == "string")
        and not seen[v] then
      seen[v] = true
      if acc and not (old and old[v]) then acc[label] = (acc[label] or 0) + size_of(v) end
      local function push(x)
        if x ~= nil then n = n + 1; stack[n] = x end
      end
      if t == "table" then
        for k, x in next, v do push(k); push(x) end
        push(getmetatable(v))
      elseif t == "function" then
        local i = 1
        while true do
          local name, x = getupvalue(v, i)
          if not name then break end
          push(x)
          i = i + 1
        end
      elseif t == "userdata" then
        push(getmetatable(v))
        push((getuservalue(v, 1)))
      elseif t == "thread" then
        threads[#threads + 1] = v
      end
    end
  end
end

-- A thread's frames: each local and each running function's upvalues, labelled by
-- the function and variable holding them.
local function walk_thread(co, seen, acc, threads, old)
  for level = 0, 200 do
    local info = getinfo(co, level, "Sfl")
    if not info then break end
    local where = (info.short_src or "?"):gsub("^.*/scripts/", "") .. ":" .. (info.linedefined or 0)
    local i = 1
    while true do
      local name, x = getlocal(co, level, i)
      if not name then break end
      walk(x, seen, acc, where .. " local " .. name, threads, old)
      i = i + 1
    end
    if info.func then
      local j = 1
      while true do
        local name, x = getupvalue(info.func, j)
        if not name then break end
        walk(x, seen, acc, where .. " upvalue " .. name, threads, old)
        j = j + 1
      end
    end
  end
end

-- Everything reachable from the registry and the threads found there, into seen.
local function reach(seen, threads)
  walk(debug.getregistry(), seen, nil, nil, threads)
  local k = 1
  while threads[k] do
    walk_thread(threads[k], seen, nil, threads)
    k = k + 1
  end
end

--- The set of everything reachable now.
function M.mark()
  local old = setmetatable({}, { __mode = "k" })
  reach(old, {})
  old[old] = true
  return old
end

--- What is reachable now and was not when old was marked: {holder = bytes}, total,
-- number of new threads. The new threads' frames are walked first so that what a
-- frame holds is charged to it; the rest to "(registry)".
function M.count(old)
  local threads = {}
  local probe = setmetatable({}, { __mode = "k" })
  probe[probe] = true
  probe[old] = true
  reach(probe, threads)
  local acc, seen = {}, setmetatable({}, { __mode = "k" })
  seen[seen], seen[old], seen[probe] = true, true, true
  local new_threads = {}
  for _, co in ipairs(threads) do
    if not old[co] then
      new_threads[#new_threads + 1] = co
      acc["(threads)"] = (acc["(threads)"] or 0) + size_of(co)
      seen[co] = true
    end
  end
  probe = nil -- luacheck: ignore
  local more = {}
  for _, co in ipairs(new_threads) do walk_thread(co, seen, acc, more, old) end
  walk(debug.getregistry(), seen, acc, "(registry)", more, old)
  local total = 0
  for _, v in pairs(acc) do total = total + v end
  return acc, total, #new_threads, new_threads
end

--- Where the threads wait: {"frame <- frame <- ..." = count}.
function M.thread_places(threads, depth)
  local places = {}
  for _, co in ipairs(threads) do
    local parts = {}
    for level = 0, 60 do
      local info = getinfo(co, level, "Sl")
      if not info then break end
      if info.what ~= "C" then
        parts[#parts + 1] = (info.short_src or "?"):gsub("^.*/scripts/", "") .. ":" .. (info.currentline or 0)
        if #parts == depth then break end
      end
    end
    local key = table.concat(parts, " <- ")
    places[key] = (places[key] or 0) + 1
  end
  return places
end

--- The top entries of acc as lines "bytes  holder".
function M.report(acc, top, per)
  local names = {}
  for name in pairs(acc) do names[#names + 1] = name end
  table.sort(names, function(a, b) return acc[a] > acc[b] end)
  local out = {}
  for i = 1, math.min(top, #names) do
    out[#out + 1] = string.format("%10.0f  %s", acc[names[i]] / (per or 1), names[i])
  end
  return table.concat(out, "\n")
end

return M
