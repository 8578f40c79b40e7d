-- fox.crypto: hashes, HMAC, encodings, constant-time compare, random bytes.
local crypto = require("fox.crypto")

describe("fox.crypto", function()
  it("computes SHA-256 (FIPS 180-2 examples)", function()
    assert.equals("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
      crypto.hex(crypto.sha256("abc")))
    assert.equals("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      crypto.hex(crypto.sha256("")))
    assert.equals(32, #crypto.sha256("x"))
  end)

  it("computes HMAC-SHA256 (RFC 4231 cases 1, 2 and 6)", function()
    assert.equals("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
      crypto.hex(crypto.hmac_sha256(string.rep("\x0b", 20), "Hi There")))
    assert.equals("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      crypto.hex(crypto.hmac_sha256("Jefe", "what do ya want for nothing?")))
    assert.equals("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
      crypto.hex(crypto.hmac_sha256(string.rep("\xaa", 131),
        "Test Using Larger Than Block-Size Key - Hash Key First")))
  end)

  it("hashes binary data with embedded NULs whole", function()
    assert.not_equals(crypto.sha256("a\0b"), crypto.sha256("a"))
  end)

  it("hex-encodes in lowercase", function()
    assert.equals("00ff10ab", crypto.hex("\0\255\16\171"))
    assert.equals("", crypto.hex(""))
  end)

  it("base64 round-trips every byte value and length", function()
    local all = {}
    for i = 0, 255 do
      all[#all + 1] = string.char(i)
    end
    local bytes = table.concat(all)
    for n = 0, 40 do
      local s = bytes:sub(1, n)
      assert.equals(s, crypto.base64_decode(crypto.base64_encode(s)))
    end
    assert.equals(bytes, crypto.base64_decode(crypto.base64_encode(bytes)))
    assert.equals("Zm9vYmE=", crypto.base64_encode("fooba"))
  end)

  it("base64 accepts input without padding", function()
    assert.equals("fooba", crypto.base64_decode("Zm9vYmE"))
    assert.equals("f", crypto.base64_decode("Zg"))
  end)

  it("base64 rejects garbage with nil and a reason", function()
    for _, bad in ipairs({ "Zm9v!", "Zm9v YmFy", "Z", "Zg=", "Zg==Zg==", "Zm9-", "Zh==" }) do
      local v, err = crypto.base64_decode(bad)
      assert.is_nil(v, bad)
      assert.matches("^invalid base64", err)
    end
  end)

  it("compares in constant time, lengths included", function()
    assert.is_true(crypto.equal("secret", "secret"))
    assert.is_false(crypto.equal("secret", "secreT"))
    assert.is_false(crypto.equal("secret", "secret2"))
    assert.is_false(crypto.equal("", "x"))
    assert.is_true(crypto.equal("", ""))
  end)

  it("returns fresh random bytes of the size asked", function()
    local a, b = crypto.random_bytes(32), crypto.random_bytes(32)
    assert.equals(32, #a)
    assert.not_equals(a, b)
    assert.equals("", crypto.random_bytes(0))
    assert.equals(1024 * 1024, #crypto.random_bytes(1024 * 1024))
  end)

  it("raises on misuse", function()
    assert.has_error(function() crypto.random_bytes(-1) end)
    assert.has_error(function() crypto.random_bytes(1024 * 1024 + 1) end)
    assert.has_error(function() crypto.sha256(nil) end)
    assert.has_error(function() crypto.hmac_sha256("k", {}) end)
  end)
end)
