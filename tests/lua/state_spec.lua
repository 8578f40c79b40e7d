-- fox.state inside the real host: durable key/value rows, TTLs, claims, listing.
local state = require("fox.state")
local task = require("fox.task")

local dirs = {}

-- A state directory that does not exist yet; removed after the test.
local function fresh_dir()
  local path = os.tmpname()
  os.remove(path)
  dirs[#dirs + 1] = path
  return path
end

local function remove_dir(path)
  for _, name in ipairs({ "fox.db", "fox.db-wal", "fox.db-shm", "fox.lock", "fox.db.bad" }) do
    os.remove(path .. "/" .. name)
  end
  os.remove(path)
end

local write_file = require("helpers.proc").write_file

local function open_fresh()
  local st, err = state.open(fresh_dir())
  assert.is_nil(err)
  assert.truthy(st)
  return st
end

describe("fox.state", function()
  local st

  after_each(function()
    if st then st:close() end
    st = nil
    collectgarbage()
    for _, d in ipairs(dirs) do remove_dir(d) end
    dirs = {}
  end)

  it("opens a new directory and reports its database path", function()
    local dir = fresh_dir()
    st = assert(state.open(dir .. "/nested"))
    dirs[#dirs + 1] = dir .. "/nested"
    dirs[#dirs + 1] = dir -- removed after nested (order of the list)
    assert.matches("/nested/fox%.db$", st:path())
    assert.matches("^fox%.state %(.*fox%.db%)$", tostring(st))
    local f = io.open(dir .. "/nested/fox.db", "rb")
    assert.truthy(f)
    f:close()
  end)

  it("sets, gets, overwrites and deletes values", function()
    st = open_fresh()
    assert.is_nil(st:get("posted", "INC-1"))
    assert.equals(1, select("#", st:get("posted", "INC-1")))
    assert.is_true(st:set("posted", "INC-1", '{"ts":"1712.5"}'))
    assert.equals('{"ts":"1712.5"}', st:get("posted", "INC-1"))
    assert.is_nil(st:get("other", "INC-1"))
    assert.is_true(st:set("posted", "INC-1", "again"))
    assert.equals("again", st:get("posted", "INC-1"))
    assert.is_true(st:delete("posted", "INC-1"))
    assert.is_nil(st:get("posted", "INC-1"))
    assert.is_true(st:delete("posted", "INC-1"))
  end)

  it("keeps values byte for byte, NULs included", function()
    st = open_fresh()
    local nul = "a\0b\0\0c\0"
    assert.is_true(st:set("q", "nul", nul))
    local got = st:get("q", "nul")
    assert.equals(#nul, #got)
    assert.equals(nul, got)
    assert.is_true(st:set("q", "empty", ""))
    assert.equals("", st:get("q", "empty"))
    local bytes = {}
    for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
    local all = table.concat(bytes)
    assert.is_true(st:set("q", "all", all))
    assert.equals(all, st:get("q", "all"))
  end)

  it("stores large values and refuses oversized ones with nil, err", function()
    st = open_fresh()
    local big = string.rep("0123456789abcdef\0", 4 * 1024 * 1024 // 17)
    assert.is_true(st:set("q", "big", big))
    local got = st:get("q", "big")
    assert.equals(#big, #got)
    assert.is_true(got == big)
    local ok, err = st:set("q", "huge", string.rep("x", 16 * 1024 * 1024 + 1))
    assert.is_nil(ok)
    assert.matches("limit", err)
    assert.is_nil(st:get("q", "huge"))
  end)

  it("survives close and reopen", function()
    local dir = fresh_dir()
    st = assert(state.open(dir))
    assert.is_true(st:set("cursor", "poll", "2024-05-01T00:00:00Z"))
    assert.is_true(st:claim("inv", "INC-1", "fox-a", 600))
    st:close()
    st = assert(state.open(dir))
    assert.equals("2024-05-01T00:00:00Z", st:get("cursor", "poll"))
    local ok, holder = st:claim("inv", "INC-1", "fox-b", 600)
    assert.is_false(ok)
    assert.equals("fox-a", holder)
  end)

  it("claims atomically: one owner at a time, re-claim extends, release frees", function()
    st = open_fresh()
    local before = os.time()
    assert.is_true(st:claim("inv", "INC-7", "fox-a", 60))
    local ok, holder, expires_at = st:claim("inv", "INC-7", "fox-b", 60)
    assert.is_false(ok)
    assert.equals("fox-a", holder)
    assert.is_true(expires_at >= before + 60 and expires_at <= os.time() + 60)
    assert.is_true(st:claim("inv", "INC-7", "fox-a", 600))
    local _, _, extended = st:claim("inv", "INC-7", "fox-b", 60)
    assert.is_true(extended >= before + 600)
    assert.is_false(st:release("inv", "INC-7", "fox-b"))
    assert.is_false((st:claim("inv", "INC-7", "fox-b", 60)))
    assert.is_true(st:release("inv", "INC-7", "fox-a"))
    assert.is_false(st:release("inv", "INC-7", "fox-a"))
    assert.is_true(st:claim("inv", "INC-7", "fox-b", 60))
    -- a claim with ttl 0 holds until released
    assert.is_true(st:claim("inv", "INC-8", "fox-a", 0))
    local _, _, never = st:claim("inv", "INC-8", "fox-b", 0)
    assert.equals(0, never)
  end)

  it("lets concurrent tasks race for one claim with exactly one winner", function()
    st = open_fresh()
    local fns = {}
    for i = 1, 8 do
      fns[i] = function()
        task.sleep(0.001 * (i % 3))
        return (st:claim("inv", "INC-race", "worker-" .. i, 60))
      end
    end
    local values = task.gather(fns)
    local winners = 0
    for i = 1, 8 do
      if values[i] then winners = winners + 1 end
    end
    assert.equals(1, winners)
  end)

  it("expires rows after their ttl and purges them", function()
    st = open_fresh()
    local before = os.time()
    assert.is_true(st:set("seen", "wh-1", "1", 1))
    assert.is_true(st:set("seen", "wh-2", "1", 0.2)) -- rounded up to 1 s
    assert.is_true(st:set("seen", "keep", "1"))
    assert.is_true(st:claim("inv", "INC-1", "fox-a", 1))
    local rows = st:list("seen")
    assert.equals(3, #rows)
    assert.is_true(rows[2].expires_at >= before + 1 and rows[2].expires_at <= os.time() + 1)
    assert.equals(0, rows[1].expires_at) -- "keep" sorts first
    assert.equals(0, st:purge())
    task.sleep(2.1)
    assert.is_nil(st:get("seen", "wh-1"))
    assert.is_nil(st:get("seen", "wh-2"))
    assert.equals("1", st:get("seen", "keep"))
    assert.equals(1, #st:list("seen"))
    assert.is_true(st:claim("inv", "INC-1", "fox-b", 60)) -- expired claim taken over
    assert.equals(2, st:purge())
    assert.equals(0, st:purge())
  end)

  it("lists a namespace by key prefix, in key order, with a limit", function()
    st = open_fresh()
    for _, k in ipairs({ "b", "abc", "a", "ab", "ab\255" }) do
      assert.is_true(st:set("inv", k, "v:" .. k))
    end
    assert.is_true(st:set("other", "ab", "no"))
    local rows = st:list("inv", "ab")
    assert.equals(3, #rows)
    assert.same({ key = "ab", value = "v:ab", expires_at = 0 }, rows[1])
    assert.equals("abc", rows[2].key)
    assert.equals("ab\255", rows[3].key)
    local all = st:list("inv")
    assert.equals(5, #all)
    assert.equals("a", all[1].key)
    assert.equals("b", all[5].key)
    assert.equals(2, #st:list("inv", "", 2))
    assert.same({}, st:list("inv", "zzz"))
    assert.same({}, st:list("nothing"))
  end)

  it("raises on misuse", function()
    st = open_fresh()
    assert.has_error(function() st:get("ns") end)
    assert.has_error(function() st:get("", "k") end)
    assert.has_error(function() st:get("ns", "k\0x") end)
    assert.has_error(function() st:get("ns", string.rep("k", 1025)) end)
    assert.has_error(function() st:set("ns", "k", { 1 }) end)
    assert.has_error(function() st:set("ns", "k", 42) end)
    assert.has_error(function() st:set("ns", "k", "v", -1) end)
    assert.has_error(function() st:set("ns", "k", "v", 0 / 0) end)
    assert.has_error(function() st:claim("ns", "k", "owner") end)
    assert.has_error(function() st:claim("ns", "k", "", 10) end)
    assert.has_error(function() st:list("ns", "p", -1) end)
    assert.has_error(function() st.get({}, "ns", "k") end)
    assert.has_error(function() state.open() end)
    assert.is_true(st:set("ns", string.rep("k", 1024), "v"))
  end)

  it("closes idempotently, and a closed object raises", function()
    st = open_fresh()
    st:close()
    st:close()
    assert.matches("closed", tostring(st))
    assert.has_error(function() st:get("ns", "k") end, "fox.state: object is closed")
  end)

  it("closes at the end of a to-be-closed scope", function()
    local dir = fresh_dir()
    do
      local scoped <close> = assert(state.open(dir))
      assert.is_true(scoped:set("k", "k", "v"))
      st = scoped
    end
    assert.matches("closed", tostring(st))
    st = assert(state.open(dir))
    assert.equals("v", st:get("k", "k"))
  end)

  it("shares one open directory between objects of this process", function()
    local dir = fresh_dir()
    st = assert(state.open(dir))
    local second = assert(state.open(dir .. "/."))
    assert.is_true(second:set("k", "k", "from second"))
    assert.equals("from second", st:get("k", "k"))
    second:close()
    assert.equals("from second", st:get("k", "k")) -- still open for st
  end)

  it("returns nil, err for a corrupt database, naming the file and the fix", function()
    local dir = fresh_dir()
    st = assert(state.open(dir))
    st:close()
    st = nil
    write_file(dir .. "/fox.db", string.rep("this is not a database\n", 400))
    local bad, err = state.open(dir)
    assert.is_nil(bad)
    assert.matches(dir .. "/fox.db", err, 1, true)
    assert.matches("move it aside", err, 1, true)
    os.rename(dir .. "/fox.db", dir .. "/fox.db.bad")
    st = assert(state.open(dir))
  end)

  it("returns nil, err when the directory cannot be created", function()
    local dir = fresh_dir()
    write_file(dir, "a file, not a directory")
    local bad, err = state.open(dir)
    assert.is_nil(bad)
    assert.matches("not a directory", err)
  end)
  -- Makes every insert of key "boom" fail (as a full or failing disk would make a
  -- commit fail), through the sqlite3 shell on the same file.
  local function inject_failure(db)
    assert(os.execute(("sqlite3 %q \"CREATE TRIGGER fail_boom BEFORE INSERT ON kv WHEN NEW.key = 'boom' "
      .. "BEGIN SELECT RAISE(ABORT, 'injected failure'); END;\""):format(db)))
  end

  describe("write", function()
    it("stores every row once the tasks writing together have committed", function()
      st = open_fresh()
      local writers = {}
      for i = 1, 20 do
        writers[i] = task.spawn(function()
          return st:write({ { "queue", "inc" .. i, "entry " .. i }, { "webhooks", "msg" .. i, "inc" .. i, 60 } })
        end)
      end
      for i = 1, 20 do
        assert.same({ true, true }, { task.wait(writers[i]) })
        assert.equals("entry " .. i, st:get("queue", "inc" .. i))
        assert.equals("inc" .. i, st:get("webhooks", "msg" .. i))
      end
      -- spawned together, they ran in one loop turn: one commit (one fsync) for all
      assert.same({ commits = 1, failed = 0, rows = 40, writes = 20 }, st:stats())
    end)

    it("fails every writer of a failed commit with nil, err and stores none of their rows", function()
      st = open_fresh()
      inject_failure(st:path())
      local good = task.spawn(function() return st:write({ { "queue", "fine", "x" } }) end)
      local bad = task.spawn(function() return st:write({ { "queue", "other", "y" }, { "queue", "boom", "z" } }) end)
      local g = table.pack(task.wait(good))
      local b = table.pack(task.wait(bad))
      assert.is_true(g[1])
      assert.is_nil(g[2])
      assert.matches("injected failure", g[3], 1, true)
      assert.is_nil(b[2])
      assert.is_nil(st:get("queue", "fine"))
      assert.is_nil(st:get("queue", "other"))
      -- the next commit is independent of the failed one
      assert.is_true(st:write({ { "queue", "fine", "x" } }))
      assert.equals("x", st:get("queue", "fine"))
    end)

    it("commits at once where the caller cannot yield", function()
      st = open_fresh()
      local out = ("x"):gsub("x", function()
        return tostring(st:write({ { "queue", "inside-gsub", "v", 10 } }))
      end)
      assert.equals("true", out)
      assert.equals("v", st:get("queue", "inside-gsub"))
    end)

    it("raises on misuse, naming the row", function()
      st = open_fresh()
      assert.has_error(function() st:write({}) end)
      assert.has_error(function() st:write({ { "ns", "k", 5 } }) end,
        "fox.state: write: row 1: the value must be a string")
      assert.has_error(function() st:write({ { "ns", "k", "v" }, { "ns", "", "v" } }) end)
      assert.has_error(function() st:write({ { "ns", "k", "v", -1 } }) end,
        "fox.state: write: row 1: ttl must be a number of seconds >= 0")
      assert.has_error(function() st:write({ "not a row" }) end)
      assert.is_nil(st:get("ns", "k"))
    end)

    it("keeps the order of writes: a set after a pending write of the same key wins", function()
      st = open_fresh()
      local t = task.spawn(function() return st:write({ { "queue", "k", "from write" } }) end)
      coroutine.yield() -- the writer has joined its group, which commits next turn
      assert.is_true(st:set("queue", "k", "from set"))
      assert.same({ true, true }, { task.wait(t) })
      assert.equals("from set", st:get("queue", "k"))
    end)

    it("writes nothing for a task cancelled while it waits", function()
      st = open_fresh()
      local t = task.spawn(function() return st:write({ { "queue", "cancelled", "v" } }) end)
      -- A plain yield runs this task again in the same loop turn, right after the writer
      -- joined its group: the group commits only at the next turn, so the writer is
      -- cancelled while it waits.
      coroutine.yield()
      assert.equals("suspended", t.status)
      task.cancel(t)
      assert.is_true(st:write({ { "queue", "after", "v" } }))
      assert.equals("cancelled", t.status)
      assert.is_nil(st:get("queue", "cancelled"))
    end)
  end)
end)
