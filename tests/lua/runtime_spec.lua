-- The fox binary as a user meets it: fox run, fox repl, fox check, errors and budgets.
local proc = require("helpers.proc")

local FOX = proc.quote(proc.FOX)
local sh_quote, write_file = proc.quote, proc.write_file

-- Runs a shell command; returns its combined output and exit status.
local function run(cmd)
  local out, _, status = proc.run(cmd, { merge = true })
  return out, status
end

local tmp = proc.tmpdir("runtime")

describe("fox run", function()
  it("passes ARGS in arg and as ...", function()
    write_file(tmp .. "/args.lua", "print(arg[0], arg[1], arg[2], select('#', ...))")
    local out, status = run(FOX .. " run " .. tmp .. "/args.lua one two")
    assert.equals(0, status)
    assert.equals(tmp .. "/args.lua\tone\ttwo\t2\n", out)
  end)

  it("exits 1 with file:line: message and a traceback on error", function()
    write_file(tmp .. "/fail.lua", "local x = 1\nlocal function f() error('it broke') end\nf()\n")
    local out, status = run(FOX .. " run " .. tmp .. "/fail.lua")
    assert.equals(1, status)
    assert.matches(tmp .. "/fail.lua:2: it broke", out, 1, true)
    assert.matches("stack traceback", out, 1, true)
  end)

  it("reports a syntax error with file and line", function()
    write_file(tmp .. "/syntax.lua", "local x = \n\n= 3\n")
    local out, status = run(FOX .. " run " .. tmp .. "/syntax.lua")
    assert.equals(1, status)
    assert.matches(tmp .. "/syntax.lua:3:", out, 1, true)
  end)

  it("ends a memory bomb with a clear error while other tasks keep running", function()
    write_file(tmp .. "/bomb.lua", [[
      local task = require("fox.task")
      local ticks = 0
      local ticker = task.spawn(function()
        for _ = 1, 10 do task.sleep(0.01); ticks = ticks + 1 end
      end)
      local bomb = task.spawn({ name = "bomb" }, function()
        local t = {}
        for i = 1, math.huge do t[i] = string.rep("x", 1000) .. i end
      end)
      local ok, err = task.wait(bomb)
      print("bomb", ok, err)
      task.wait(ticker)
      print("ticks", ticks)
      local after = {}
      for i = 1, 1000 do after[i] = i end
      print("allocates again", #after)
    ]])
    local out, status = run("FOX_MEMORY_LIMIT=32M " .. FOX .. " run " .. tmp .. "/bomb.lua")
    assert.equals(0, status, out)
    assert.matches("bomb\tfalse\ttask 'bomb' (#", out, 1, true)
    assert.matches("ran out of memory: the generation's limit of 32 MiB is reached", out, 1, true)
    assert.matches("ticks\t10", out, 1, true)
    assert.matches("allocates again\t1000", out, 1, true)
  end)

  it("ends `while true do end` with a clear error naming the task", function()
    write_file(tmp .. "/spin.lua", "while true do end\n")
    local out, status = run("FOX_TASK_CPU_LIMIT=0.3 " .. FOX .. " run " .. tmp .. "/spin.lua")
    assert.equals(1, status)
    assert.matches("ran for more than 0.3 s without yielding", out, 1, true)
    assert.matches("spin.lua", out, 1, true)
  end)
end)

describe("fox repl", function()
  it("prints the value of an expression from piped stdin", function()
    local out, status = run("echo 'return 1+1' | " .. FOX .. " repl")
    assert.equals(0, status)
    assert.equals("2\n", out)
  end)

  it("accepts bare expressions, multi-line chunks, globals across chunks and sleeps", function()
    local input = table.concat({
      "x = 20",
      "function add(a,",
      "  b) return a + b end",
      "require('fox.task').sleep(0.01)",
      "add(x, 1), 'ok'",
      "{ a = 1, list = { 1, 2 } }",
    }, "\n")
    local out, status = run("printf '%s\\n' " .. sh_quote(input) .. " | " .. FOX .. " repl")
    assert.equals(0, status, out)
    assert.matches("21\tok\n", out, 1, true)
    assert.matches("a = 1", out, 1, true)
  end)

  it("reports an error and carries on with the next chunk", function()
    local out, status = run("printf 'error(\"bad\")\\nreturn 7\\n' | " .. FOX .. " repl")
    assert.equals(1, status)
    assert.matches("bad", out, 1, true)
    assert.matches("\n7\n", "\n" .. out, 1, true)
  end)
end)

describe("fox check", function()
  it("passes on the shipped scripts", function()
    local out, status = run(FOX .. " check")
    assert.equals(0, status, out)
    assert.matches("scripts ok", out, 1, true)
  end)

  it("reports a syntax error with file and line", function()
    os.execute("mkdir -p " .. tmp .. "/scripts && cp -R scripts/. " .. tmp .. "/scripts/")
    write_file(tmp .. "/scripts/policies/broken.lua", "return {\n  x = ,\n}\n")
    local out, status = run("FOX_SCRIPT_PATH=" .. tmp .. "/scripts " .. FOX .. " check")
    assert.equals(1, status)
    assert.matches("policies/broken.lua:2:", out, 1, true)
    os.remove(tmp .. "/scripts/policies/broken.lua")
  end)

  it("reports a module that fails while loading", function()
    write_file(tmp .. "/scripts/policies/explodes.lua", "local x = nil\nreturn x.field\n")
    local out, status = run("FOX_SCRIPT_PATH=" .. tmp .. "/scripts " .. FOX .. " check")
    assert.equals(1, status)
    assert.matches("policies/explodes.lua:2:", out, 1, true)
    os.remove(tmp .. "/scripts/policies/explodes.lua")
  end)
end)

describe("the command line", function()
  it("prints the version", function()
    local out, status = run(FOX .. " version")
    assert.equals(0, status)
    assert.matches("^fox %d+%.%d+%.%d+ %(Lua 5%.4", out)
  end)

  it("has --help on every subcommand", function()
    for _, cmd in ipairs({ "run", "repl", "check", "version" }) do
      local out, status = run(FOX .. " " .. cmd .. " --help")
      assert.equals(0, status, cmd)
      assert.matches("usage: fox " .. cmd, out, 1, true)
    end
  end)

  it("rejects an unknown subcommand with one line and the usage", function()
    local out, status = run(FOX .. " frobnicate")
    assert.equals(2, status)
    assert.matches("^fox: unknown command 'frobnicate'\n", out)
    assert.matches("usage: fox <command>", out, 1, true)
  end)

  it("rejects an unknown flag", function()
    local out, status = run(FOX .. " --frob")
    assert.equals(2, status)
    assert.matches("^fox: unknown option '%-%-frob'", out)
    local out2, status2 = run(FOX .. " check --frob")
    assert.equals(2, status2)
    assert.matches("unknown option '--frob'", out2, 1, true)
  end)
end)
