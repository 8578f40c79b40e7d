-- busted output: the plain terminal handler plus one closing line that
-- scripts/run-tests.sh adds up: "busted: N passed, N failed".
return function(options)
  local busted = require("busted")
  local handler = require("busted.outputHandlers.plainTerminal")(options)
  busted.subscribe({ "suite", "end" }, function()
    io.write(string.format("busted: %d passed, %d failed\n", #handler.successes,
      #handler.failures + #handler.errors))
    io.flush()
    return nil, true
  end)
  return handler
end
