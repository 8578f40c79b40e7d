-- Generations and hot reload as scripts see them (fox.vm), and a listener whose handler
-- is named, so it follows reloads.
local http = require("fox.http")
local vm = require("fox.vm")

describe("fox.vm", function()
  it("reports this generation and its memory", function()
    assert.equals(vm.current(), vm.generation())
    assert.is_true(vm.is_current())
    local gens = vm.generations()
    assert.is_true(#gens >= 1)
    local mine
    for _, g in ipairs(gens) do
      if g.id == vm.generation() then mine = g end
    end
    assert.is_truthy(mine)
    assert.is_true(mine.memory > 0 and mine.memory <= mine.memory_limit)
  end)

  it("keeps the current generation when a reload fails, and reports why", function()
    vm.boot("no_such_boot_module")
    local before = vm.current()
    local ok, err = vm.reload()
    vm.boot(nil)
    assert.is_nil(ok)
    assert.matches("no_such_boot_module", err, 1, true)
    assert.equals(before, vm.current())
    local status = vm.last_reload()
    assert.is_false(status.ok)
    assert.matches("no_such_boot_module", status.error, 1, true)
    assert.is_true(status.failures >= 1)
  end)

  it("routes a named handler to the generation current at each request", function()
    package.loaded["reload_spec_handlers"] = {
      hello = function(req) return { status = 200, body = "gen " .. vm.generation() .. " " .. req.path } end,
    }
    local server = assert(http.listen({ host = "127.0.0.1", port = 0, handler = "reload_spec_handlers.hello" }))
    local url = "http://127.0.0.1:" .. server.port .. "/x"
    local res = assert(http.request({ url = url }))
    assert.equals(200, res.status)
    assert.equals("gen " .. vm.generation() .. " /x", res.body)
    -- The new generation has no such module: requests now fail there, not here.
    assert.is_true(vm.reload())
    assert.is_false(vm.is_current())
    res = assert(http.request({ url = url }))
    assert.equals(500, res.status)
    server:close()
  end)

  it("rejects a handler name that is not module.function", function()
    assert.has_error(function() http.listen({ port = 0, handler = "nodot" }) end)
    assert.has_error(function() http.listen({ port = 0, handler = 42 }) end)
  end)
end)
