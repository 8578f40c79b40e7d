/* libFuzzer target: the JSON bridge, fox.json (scripts/fox/json.lua over Debian's
 * lua-cjson), inside a real fox generation.
 *
 * For every input s:
 *   - safe.decode(s) returns a value, or nil and a non-empty message (decode raises in
 *     exactly the same cases);
 *   - a decoded value re-encodes (what fox accepts it can write back: records, logs,
 *     webhook answers), the text decodes again to an equal value, and so does
 *     pretty(); encoding is stable from there on (encode(decode(encode(v))) equals
 *     encode(v) up to key order, checked as values);
 *   - the generation's Lua stack is left as it was. */
#include <stdint.h>

#include "fuzz_fox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *fuzz_json_chunk =
    "local json = require('fox.json')\n"
    "local function same(a, b, depth)\n"
    "  if a == b then return true end\n"
    "  if type(a) ~= 'table' or type(b) ~= 'table' or depth > 200 then return false end\n"
    "  for k, v in pairs(a) do if not same(v, b[k], depth + 1) then return false end end\n"
    "  for k in pairs(b) do if a[k] == nil then return false end end\n"
    "  return true\n"
    "end\n"
    "return function(s)\n"
    "  local v, err = json.safe.decode(s)\n"
    "  if v == nil then\n"
    "    fuzz_feature(tostring(err))\n"
    "    if type(err) ~= 'string' or err == '' then fuzz_fail('decode failed without a message') end\n"
    "    if pcall(json.decode, s) then fuzz_fail('safe.decode failed where decode did not') end\n"
    "    return\n"
    "  end\n"
    "  local ok = pcall(json.decode, s)\n"
    "  if not ok then fuzz_fail('decode raised where safe.decode did not') end\n"
    "  local text, eerr = json.safe.encode(v)\n"
    "  if not text then fuzz_fail('decoded, but cannot encode it back: ' .. tostring(eerr)) end\n"
    "  local v2, derr = json.safe.decode(text)\n"
    "  if v2 == nil then fuzz_fail('encode wrote invalid JSON (' .. tostring(derr) .. '): ' .. text:sub(1, 200)) end\n"
    "  if not same(v, v2, 0) then fuzz_fail('the round trip changed the value: ' .. text:sub(1, 200)) end\n"
    "  local text2 = json.encode(v2)\n"
    "  if not same(json.decode(text2), v, 0) then fuzz_fail('a second round trip changed the value') end\n"
    "  local pok, p = pcall(json.pretty, v)\n"
    "  if not pok then fuzz_fail('pretty() raised: ' .. tostring(p)) end\n"
    "  local v3, perr = json.safe.decode(p)\n"
    "  if v3 == nil or not same(v, v3, 0) then fuzz_fail('pretty() text does not read back: ' .. tostring(perr)) end\n"
    "end\n";

static int fuzz_json_ref = LUA_NOREF;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    vm_gen *g = fuzz_fox_start();
    lua_State *L = g->L;
    if (fuzz_json_ref == LUA_NOREF) {
        fuzz_json_ref = fuzz_fox_load(g, "=fuzz_json", fuzz_json_chunk);
        lua_sethook(L, fuzz_lua_line_hook, LUA_MASKLINE, 0);
    }
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, fuzz_json_ref);
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        fprintf(stderr, "fuzz_json: the check raised: %s\n", lua_tostring(L, -1));
        abort();
    }
    if (lua_gettop(L) != top) abort();
    return 0;
}
