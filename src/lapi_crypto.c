/* Lua module `fox.crypto`: thin bindings over crypto.c. Misuse (wrong argument types,
 * absurd sizes) raises; operational failures return nil, err. */
#include "fox/crypto.h"
#include "fox/lapi.h"

#include <lauxlib.h>
#include <lua.h>

/* hmac_sha256(key, msg) -> 32 raw bytes, or nil, err. */
static int lapi_crypto_hmac_sha256(lua_State *L) {
    size_t keylen, msglen;
    const char *key = luaL_checklstring(L, 1, &keylen);
    const char *msg = luaL_checklstring(L, 2, &msglen);
    unsigned char mac[CRYPTO_SHA256_LEN];
    char err[256];
    if (crypto_hmac_sha256(key, keylen, msg, msglen, mac, err, sizeof err) != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushlstring(L, (const char *)mac, sizeof mac);
    return 1;
}

/* sha256(s) -> 32 raw bytes, or nil, err. */
static int lapi_crypto_sha256(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    unsigned char digest[CRYPTO_SHA256_LEN];
    char err[256];
    if (crypto_sha256(s, len, digest, err, sizeof err) != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushlstring(L, (const char *)digest, sizeof digest);
    return 1;
}

/* hex(s) -> lowercase hex string. */
static int lapi_crypto_hex(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, 2 * len + 1);
    crypto_hex_encode(s, len, out);
    luaL_pushresultsize(&b, 2 * len);
    return 1;
}

/* base64_encode(s) -> standard base64 with padding. */
static int lapi_crypto_base64_encode(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, crypto_base64_encoded_len(len) + 1);
    size_t n = crypto_base64_encode(s, len, out);
    luaL_pushresultsize(&b, n);
    return 1;
}

/* base64_decode(s) -> bytes, or nil, err for anything but clean standard base64. */
static int lapi_crypto_base64_decode(lua_State *L) {
    size_t len, outlen = 0;
    const char *s = luaL_checklstring(L, 1, &len);
    char err[128];
    luaL_Buffer b;
    unsigned char *out =
        (unsigned char *)luaL_buffinitsize(L, &b, crypto_base64_decoded_maxlen(len));
    if (crypto_base64_decode(s, len, out, &outlen, err, sizeof err) != 0) {
        luaL_pushresultsize(&b, 0);
        lua_pop(L, 1);
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    luaL_pushresultsize(&b, outlen);
    return 1;
}

/* equal(a, b) -> boolean, compared in constant time. */
static int lapi_crypto_equal(lua_State *L) {
    size_t alen, blen;
    const char *a = luaL_checklstring(L, 1, &alen);
    const char *b = luaL_checklstring(L, 2, &blen);
    lua_pushboolean(L, crypto_equal(a, alen, b, blen));
    return 1;
}

/* random_bytes(n) -> n random bytes (0 <= n <= 1 MiB), or nil, err. */
static int lapi_crypto_random_bytes(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 0 && (lua_Unsigned)n <= CRYPTO_RANDOM_MAX, 1,
                  "must be between 0 and 1048576");
    char err[256];
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, (size_t)n);
    if (crypto_random_bytes(out, (size_t)n, err, sizeof err) != 0) {
        luaL_pushresultsize(&b, 0);
        lua_pop(L, 1);
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    luaL_pushresultsize(&b, (size_t)n);
    return 1;
}

static const luaL_Reg lapi_crypto_funcs[] = {
    {"hmac_sha256", lapi_crypto_hmac_sha256},
    {"sha256", lapi_crypto_sha256},
    {"hex", lapi_crypto_hex},
    {"base64_encode", lapi_crypto_base64_encode},
    {"base64_decode", lapi_crypto_base64_decode},
    {"equal", lapi_crypto_equal},
    {"random_bytes", lapi_crypto_random_bytes},
    {NULL, NULL},
};

/* Pushes the `fox.crypto` table (+1). */
int luaopen_fox_crypto(lua_State *L) {
    luaL_newlib(L, lapi_crypto_funcs);
    return 1;
}
