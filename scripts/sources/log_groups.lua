-- The error signatures of a log source, grouped page by page as the pages arrive.
--
-- Grouping is most of a log source's CPU, and fox has one thread: grouped all at once
-- after the last page, it delays the findings by the whole grouping, and while it runs
-- no other request goes out (a Loki page request waits behind an Elasticsearch answer
-- being grouped). So every page is grouped in a task of its own, a slice at a time,
-- giving the event loop a turn between slices; the partial groups are merged at the
-- end. Only the last page's grouping is left after the last answer.
--
--   local acc = log_groups.new({ incident_start = t })
--   acc:add(key, entries)      groups entries (fox.error_signature.group's input) in
--                              the background; key names their origin (a service)
--   acc:drop(key)              forgets what was added under key (a failed service)
--   acc:result(max)            waits for the grouping, then fox.error_signature.group's
--                              result over everything added (minus what was dropped):
--                              {signatures, total, distinct, omitted}
--
-- The merge gives what one group() call over the time-sorted entries gives: counts,
-- before/after-start counts and services add up; first and last seen are the extremes;
-- the example (and the signature's spelling) is that of the earliest line.
local error_signature = require("fox.error_signature")
local task = require("fox.task")

local M = {}

-- Lines grouped between two turns of the event loop: a few milliseconds of CPU.
M.SLICE = 250

local Acc = {}
Acc.__index = Acc

function M.new(opts)
  opts = opts or {}
  return setmetatable({
    incident_start = opts.incident_start,
    slice = opts.slice or M.SLICE,
    parts = {},       -- {key =, seq =, groups = {{signature...}...}, total =}
    tasks = {},
    added = 0,
  }, Acc)
end

-- Each slice is grouped in time order, as one group() call over all the lines would
-- see it; Loki's nanosecond stamps order lines that their float seconds cannot tell
-- apart.
local function earlier(a, b)
  if a.ns and b.ns then return a.ns < b.ns end
  return (a.ts or 0) < (b.ts or 0)
end

local function group_slice(self, key, seq, entries, first, last)
  local slice = table.move(entries, first, last, 1, {})
  table.sort(slice, earlier)
  local g = error_signature.group(slice, { max = math.huge, incident_start = self.incident_start })
  self.parts[#self.parts + 1] = { key = key, seq = seq, groups = g.signatures, total = g.total }
end

--- Groups entries under key in a background task, a slice per loop turn. The task is
-- not cancelled with its caller: it ends after at most the lines it was given.
function Acc:add(key, entries)
  if type(entries) ~= "table" or #entries == 0 then return end
  self.added = self.added + 1
  local seq = self.added
  self.tasks[#self.tasks + 1] = task.spawn({ name = "group " .. tostring(key) }, function()
    for first = 1, #entries, self.slice do
      -- the turn first: a request the caller makes right after add() goes out now
      task.sleep(0)
      if self.dropped and self.dropped[key] then return end
      group_slice(self, key, seq + first / (#entries + 1), entries, first,
        math.min(#entries, first + self.slice - 1))
    end
  end)
end

--- Forgets the entries added under key.
function Acc:drop(key)
  self.dropped = self.dropped or {}
  self.dropped[key] = true
end

-- a's counts plus b's; the example and spelling of the earlier first line.
local function merge_into(a, b, start)
  a.count = a.count + b.count
  if start then
    a.before_start = (a.before_start or 0) + (b.before_start or 0)
    a.after_start = (a.after_start or 0) + (b.after_start or 0)
  end
  if b.first_seen and (not a.first_seen or b.first_seen < a.first_seen) then
    a.first_seen = b.first_seen
    a.example = b.example
    a.signature = b.signature
  end
  if b.last_seen and (not a.last_seen or b.last_seen > a.last_seen) then a.last_seen = b.last_seen end
  for _, s in ipairs(b.services) do
    if not a._services[s] then
      a._services[s] = true
      a.services[#a.services + 1] = s
    end
  end
end

local function copy_group(g)
  local c = { signature = g.signature, count = g.count, first_seen = g.first_seen, last_seen = g.last_seen,
              example = g.example, before_start = g.before_start, after_start = g.after_start,
              services = {}, _services = {} }
  for _, s in ipairs(g.services) do
    c.services[#c.services + 1] = s
    c._services[s] = true
  end
  return c
end

--- Waits for the grouping; the merged groups, at most max signatures (default 20).
function Acc:result(max)
  max = max or 20
  for _, t in ipairs(self.tasks) do
    local ok, err = task.wait(t)
    if not ok then error("log_groups: grouping failed: " .. tostring(err), 0) end
  end
  self.tasks = {}
  -- in the order added (the slices finish in any order): equal first-seen times keep
  -- the example of what was added first
  table.sort(self.parts, function(a, b) return a.seq < b.seq end)
  local by_key, list, total = {}, {}, 0
  local dropped = self.dropped or {}
  for _, part in ipairs(self.parts) do
    if not dropped[part.key] then
      total = total + part.total
      for _, g in ipairs(part.groups) do
        local k = g.signature:lower()
        local m = by_key[k]
        if m then
          merge_into(m, g, self.incident_start)
        else
          m = copy_group(g)
          by_key[k] = m
          list[#list + 1] = m
        end
      end
    end
  end
  return error_signature.ranked(list, total, max)
end

return M
