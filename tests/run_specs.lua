-- Runs busted inside fox, so specs use the real host runtime (tasks, HTTP, timers).
-- usage: fox run tests/run_specs.lua [busted options] SPEC_FILES_OR_DIRS...
package.path = "tests/lua/?.lua;" .. package.path
local args = { "-o", "tests/lua/summary_output.lua" }
for i = 1, select("#", ...) do
  args[#args + 1] = select(i, ...)
end
arg = args -- luacheck: ignore 121 (busted's runner reads the global arg)
require("busted.runner")({ standalone = false })
