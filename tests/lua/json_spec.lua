-- fox.json: lua-cjson with fox's settings and the gaps of cjson 2.1.0 filled.
local json = require("fox.json")

describe("fox.json", function()
  it("round-trips ordinary values", function()
    local v = { name = "db down", tags = { "a", "b" }, n = 3, ok = true, nested = { x = 1.5 } }
    assert.same(v, json.decode(json.encode(v)))
    assert.equals('"x"', json.encode("x"))
    assert.equals("[1,2,3]", json.encode({ 1, 2, 3 }))
  end)

  it("decodes integral numbers as integers", function()
    local v = json.decode('{"page":3,"neg":-7,"f":2.5,"list":[1,2],"big":9007199254740992}')
    assert.equals("integer", math.type(v.page))
    assert.equals("page 3", "page " .. v.page)
    assert.equals(-7, v.neg)
    assert.equals("float", math.type(v.f))
    assert.equals("integer", math.type(v.list[2]))
    assert.equals(9007199254740992, v.big)
    assert.equals("integer", math.type(json.decode("42")))
  end)

  it("turns integral floats into integers at every depth, up to 2^53 only (fox.json.core)", function()
    local v = json.decode('{"a":{"b":[[{"c":4.0}]]},"over":9007199254740994,"negz":-0.0,'
      .. '"neg_edge":-9007199254740992,"frac":1e-3,"exp":1e3,"s":"3","t":true,"n":null}')
    assert.equals("integer", math.type(v.a.b[1][1].c))
    assert.equals(4, v.a.b[1][1].c)
    assert.equals("float", math.type(v.over)) -- already rounded by the decoder: not exact
    assert.equals("integer", math.type(v.negz))
    assert.equals("integer", math.type(v.neg_edge))
    assert.equals("float", math.type(v.frac))
    assert.equals("integer", math.type(v.exp))
    assert.equals(1000, v.exp)
    assert.equals("3", v.s)
    assert.equals(json.null, v.n)
    -- a number beyond a double, however deep, is an error, not inf
    local ok, err = pcall(json.decode, '{"x":[1,{"y":[2,1e400]}]}')
    assert.is_false(ok)
    assert.matches("number out of range", err)
    assert.is_nil(json.safe.decode('[-1e400]'))
    -- nesting at the decoder's limit still converts its deepest values
    local deep = string.rep("[", 128) .. "5.0" .. string.rep("]", 128)
    local d = json.decode(deep)
    for _ = 1, 127 do d = d[1] end
    assert.equals("integer", math.type(d[1]))
  end)

  it("encodes large integers and floats exactly", function()
    assert.equals("123456789012345678", json.encode(123456789012345678))
    assert.equals("-100000000000000", json.encode(-100000000000000))
    assert.equals("1732000000123", json.encode(1732000000123))
    assert.equals("0.1", json.encode(0.1))
    assert.equals(1 / 3, json.decode(json.encode(1 / 3)))
    assert.equals('{"ms":1732000000123456}', json.encode({ ms = 1732000000123456 }))
  end)

  it("does not escape slashes", function()
    assert.equals('"https://x.test/a/b"', json.encode("https://x.test/a/b"))
    assert.equals('"a\\\\/b"', json.encode("a\\/b")) -- backslash escaped, slash bare
    assert.equals("a\\/b", json.decode(json.encode("a\\/b")))
  end)

  it("writes empty arrays when asked", function()
    assert.equals("{}", json.encode({}))
    assert.equals("[]", json.encode(json.empty_array))
    local text = json.encode({ a = json.empty_array, b = json.array({}) })
    assert.truthy(text == '{"a":[],"b":[]}' or text == '{"b":[],"a":[]}', text)
    assert.equals("[1]", json.encode(json.array({ 1 })))
    assert.has_error(function() json.empty_array[1] = 1 end)
  end)

  it("encodes null and decodes it to json.null", function()
    assert.equals("[1,null,3]", json.encode({ 1, json.null, 3 }))
    assert.equals(json.null, json.decode("[null]")[1])
  end)

  it("encodes small holes as null but refuses very sparse arrays", function()
    assert.equals("[1,null,3]", json.encode({ [1] = 1, [3] = 3 }))
    local v, err = json.safe.encode({ [1000] = true })
    assert.is_nil(v)
    assert.matches("sparse", err)
  end)

  it("limits nesting to 128 both ways", function()
    local ok = json.safe.decode(string.rep("[", 128) .. string.rep("]", 128))
    assert.truthy(ok)
    local v, err = json.safe.decode(string.rep("[", 129) .. string.rep("]", 129))
    assert.is_nil(v)
    assert.matches("nested", err)
    local deep = {}
    local cur = deep
    for _ = 1, 200 do
      cur[1] = {}
      cur = cur[1]
    end
    v, err = json.safe.encode(deep)
    assert.is_nil(v)
    assert.matches("nesting", err)
  end)

  it("rejects cycles, functions, NaN and infinity", function()
    local cyc = {}
    cyc.self = cyc
    assert.is_nil((json.safe.encode(cyc)))
    assert.is_nil((json.safe.encode({ f = print })))
    assert.is_nil((json.safe.encode(0 / 0)))
    assert.is_nil((json.safe.encode(math.huge)))
    assert.is_nil((json.safe.decode("[NaN]")))
    assert.is_nil((json.safe.decode("[Infinity]")))
    assert.is_nil((json.safe.decode("0x10")))
  end)

  it("raises from encode/decode, returns nil, err from safe", function()
    assert.has_error(function() json.decode("{bad") end)
    assert.has_error(function() json.decode(nil) end)
    assert.has_error(function() json.encode(print) end)
    local v, err = json.safe.decode("{bad")
    assert.is_nil(v)
    assert.equals("string", type(err))
    v, err = json.safe.decode(nil)
    assert.is_nil(v)
    assert.matches("expected a string", err)
  end)

  it("leaves the caller's tables untouched", function()
    local t = { big = 123456789012345678, empty = json.array({}) }
    json.encode(t)
    assert.equals(123456789012345678, t.big)
    assert.equals(0, #t.empty)
  end)

  it("does not share settings with plain cjson", function()
    local cjson = require("cjson")
    assert.equals('"a\\/b"', cjson.encode("a/b"))
    assert.equals('"a/b"', json.encode("a/b"))
  end)

  it("pretty-prints with sorted keys, deterministically", function()
    local v = { b = 1, a = { z = json.null, y = { 1, "two" }, x = {} }, c = json.empty_array }
    local expected = table.concat({
      "{",
      '  "a": {',
      '    "x": {},',
      '    "y": [',
      "      1,",
      '      "two"',
      "    ],",
      '    "z": null',
      "  },",
      '  "b": 1,',
      '  "c": []',
      "}",
    }, "\n")
    assert.equals(expected, json.pretty(v))
    assert.equals(json.pretty(v), json.pretty(json.decode(json.encode(v))):gsub('"c": {}', '"c": []'))
    assert.equals('"x/y"', json.pretty("x/y"))
  end)
end)
