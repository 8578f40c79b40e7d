-- fox.sys: environment, process facts, exit.
local sys = require("fox.sys")
local proc = require("helpers.proc")

local function run_child(source, env)
  local out, _, code = proc.run_lua(source, { env = env, merge = true })
  return out, code
end

describe("fox.sys", function()
  it("reads the environment", function()
    assert.equals(os.getenv("PATH"), sys.getenv("PATH"))
    assert.is_nil(sys.getenv("FOX_SURELY_NOT_SET_ANYWHERE"))
  end)

  it("describes the process", function()
    local pid = sys.pid()
    assert.equals("integer", math.type(pid))
    assert.is_true(pid > 1)
    assert.is_true(#sys.hostname() > 0)
    local rss = sys.rss_bytes()
    assert.is_true(rss > 1024 * 1024, tostring(rss))
    assert.is_true(math.abs(sys.wall_time() - os.time()) < 2)
    assert.equals("boolean", type(sys.isatty(0)))
    assert.is_false(sys.isatty(-1))
    assert.matches("fox$", sys.executable())
  end)

  it("exits with the code given, flushing what was written", function()
    local out, code = run_child([[
      io.write("written before exit")
      require("fox.sys").exit(3)
      io.write("never")
    ]])
    assert.equals(3, code)
    assert.truthy(out:find("written before exit", 1, true))
    assert.is_nil(out:find("never", 1, true))
    local _, code_false = run_child('require("fox.sys").exit(false)')
    assert.equals(1, code_false)
  end)

  it("reads secrets from the environment or NAME_FILE, and redacts them", function()
    local path = proc.tmpname()
    proc.write_file(path, "file-secret-123456\n")
    local out = run_child([[
      local sys = require("fox.sys")
      local a = sys.secret("FOX_T_TOKEN")
      local b = sys.secret("FOX_T_FILE_TOKEN")
      local c, err = sys.secret("FOX_T_UNSET")
      io.write(#a, " ", #b, " ", tostring(c), " ", tostring(err), "\n")
      require("fox.log").info("secrets", { a = a, b = b })
    ]], { FOX_T_TOKEN = "env-secret-abcdef", FOX_T_FILE_TOKEN_FILE = path })
    os.remove(path)
    assert.truthy(out:find("17 18 nil nil", 1, true), out)
    assert.is_nil(out:find("env-secret-abcdef", 1, true))
    assert.is_nil(out:find("file-secret-123456", 1, true))
    assert.truthy(out:find("a=[REDACTED] b=[REDACTED]", 1, true), out)
  end)

  it("reports an unreadable NAME_FILE", function()
    -- only through a child: the parent's environment is not ours to change
    local out = run_child([[
      local v, err = require("fox.sys").secret("FOX_T_MISSING")
      io.write(tostring(v), " | ", err)
    ]], { FOX_T_MISSING_FILE = "/nonexistent/fox-secret" })
    assert.truthy(out:find("nil | FOX_T_MISSING_FILE: cannot open /nonexistent/fox-secret", 1, true), out)
  end)
end)
