/* Lua module `fox.shared` over shared.c: the process-wide dictionary that survives hot
 * reload. Keys are strings; values strings, numbers (integer or float kept apart) or
 * booleans. Misuse (wrong types, negative ttl) raises; "no memory" returns nil, err.
 *   get(k) -> value | nil
 *   set(k, v [, ttl]) -> true | nil, err          (v nil deletes)
 *   add(k, v [, ttl]) -> true | false, "exists" | nil, err
 *   incr(k, delta [, init [, ttl]]) -> number | nil, err ("not found", "not a number")
 *   delete(k) -> boolean (whether a live entry was removed)
 *   keys([prefix [, max]]) -> array of keys in byte order
 *   ttl(k) -> seconds left (0: never expires) | nil, "not found"
 *   count() -> live entries;  flush();  stats() -> {count, bytes, capacity, evictions, expired} */
#include "fox/lapi.h"
#include "fox/shared.h"

#include <lauxlib.h>
#include <lua.h>
#include <string.h>

/* Reads the value at idx into v (strings point into Lua). Raises on unsupported types. */
static void lapi_shared_check_value(lua_State *L, int idx, shared_value *v, int allow_nil) {
    memset(v, 0, sizeof *v);
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        v->type = SHARED_STRING;
        v->str = lua_tolstring(L, idx, &v->len);
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            v->type = SHARED_INTEGER;
            v->i = (int64_t)lua_tointeger(L, idx);
        } else {
            v->type = SHARED_FLOAT;
            v->d = (double)lua_tonumber(L, idx);
        }
        break;
    case LUA_TBOOLEAN:
        v->type = SHARED_BOOLEAN;
        v->b = lua_toboolean(L, idx);
        break;
    case LUA_TNIL:
    case LUA_TNONE:
        if (allow_nil) break;
        /* fallthrough */
    default:
        luaL_typeerror(L, idx, allow_nil ? "string, number, boolean or nil"
                                         : "string, number or boolean");
    }
}

static void lapi_shared_push_value(lua_State *L, const shared_value *v) {
    switch (v->type) {
    case SHARED_STRING: lua_pushlstring(L, v->str, v->len); break;
    case SHARED_INTEGER: lua_pushinteger(L, (lua_Integer)v->i); break;
    case SHARED_FLOAT: lua_pushnumber(L, (lua_Number)v->d); break;
    case SHARED_BOOLEAN: lua_pushboolean(L, v->b); break;
    default: lua_pushnil(L); break;
    }
}

static double lapi_shared_opt_ttl(lua_State *L, int idx) {
    lua_Number ttl = luaL_optnumber(L, idx, 0);
    luaL_argcheck(L, ttl >= 0, idx, "ttl must be >= 0 seconds (0 = no expiry)");
    return (double)ttl;
}

static const char *lapi_shared_check_key(lua_State *L, int idx, size_t *len) {
    const char *k = luaL_checklstring(L, idx, len);
    luaL_argcheck(L, *len > 0 && *len <= SHARED_KEY_MAX, idx,
                  "key must be 1 to 65535 bytes");
    return k;
}

/* get(k) -> value or nil. */
static int lapi_shared_get(lua_State *L) {
    size_t klen;
    const char *k = lapi_shared_check_key(L, 1, &klen);
    shared_value v;
    shared_get(k, klen, &v);
    lapi_shared_push_value(L, &v);
    return 1;
}

static int lapi_shared_store(lua_State *L, int only_if_absent) {
    size_t klen;
    const char *k = lapi_shared_check_key(L, 1, &klen);
    shared_value v;
    lapi_shared_check_value(L, 2, &v, !only_if_absent);
    double ttl = lapi_shared_opt_ttl(L, 3);
    char err[128];
    int rc = shared_set(k, klen, &v, ttl, only_if_absent, err, sizeof err);
    if (rc < 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    if (rc == 1) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "exists");
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* set(k, v [, ttl]) -> true, or nil, err. */
static int lapi_shared_set(lua_State *L) {
    return lapi_shared_store(L, 0);
}

/* add(k, v [, ttl]) -> true, or false, "exists", or nil, err. */
static int lapi_shared_add(lua_State *L) {
    return lapi_shared_store(L, 1);
}

/* incr(k, delta [, init [, ttl]]) -> new value, or nil, err. */
static int lapi_shared_incr(lua_State *L) {
    size_t klen;
    const char *k = lapi_shared_check_key(L, 1, &klen);
    shared_value delta, init, out;
    luaL_checknumber(L, 2);
    lapi_shared_check_value(L, 2, &delta, 0);
    int has_init = !lua_isnoneornil(L, 3);
    if (has_init) {
        luaL_checknumber(L, 3);
        lapi_shared_check_value(L, 3, &init, 0);
    }
    double ttl = lapi_shared_opt_ttl(L, 4);
    char err[128];
    if (shared_incr(k, klen, &delta, has_init ? &init : NULL, ttl, &out, err, sizeof err) != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    lapi_shared_push_value(L, &out);
    return 1;
}

/* delete(k) -> true when a live entry was removed. */
static int lapi_shared_delete(lua_State *L) {
    size_t klen;
    const char *k = lapi_shared_check_key(L, 1, &klen);
    lua_pushboolean(L, shared_delete(k, klen));
    return 1;
}

/* ttl(k) -> seconds left, 0 when it never expires, or nil, "not found". */
static int lapi_shared_ttl(lua_State *L) {
    size_t klen;
    const char *k = lapi_shared_check_key(L, 1, &klen);
    double left = shared_ttl(k, klen);
    if (left < 0) {
        luaL_pushfail(L);
        lua_pushliteral(L, "not found");
        return 2;
    }
    lua_pushnumber(L, (lua_Number)left);
    return 1;
}

/* count() -> number of live entries. */
static int lapi_shared_count(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)shared_count());
    return 1;
}

/* keys() copies the keys into a Lua userdata before pushing any string: pushing can
 * raise (memory cap) or run finalizers that change the dictionary, and neither may
 * happen while shared_keys holds its list. Layout: [size_t len][bytes]... */
typedef struct lapi_shared_keys_ctx {
    size_t bytes;   /* pass 1: bytes needed */
    char *out;      /* pass 2: where to copy */
    size_t used, cap;
    size_t n;
} lapi_shared_keys_ctx;

static int lapi_shared_keys_measure(const char *key, size_t len, void *ud) {
    lapi_shared_keys_ctx *c = ud;
    (void)key;
    c->bytes += sizeof(size_t) + len;
    return 0;
}

static int lapi_shared_keys_copy(const char *key, size_t len, void *ud) {
    lapi_shared_keys_ctx *c = ud;
    if (c->used + sizeof len + len > c->cap) return 1; /* the dictionary grew meanwhile */
    memcpy(c->out + c->used, &len, sizeof len);
    memcpy(c->out + c->used + sizeof len, key, len);
    c->used += sizeof len + len;
    c->n++;
    return 0;
}

/* keys([prefix [, max]]) -> array of live keys with that prefix, in byte order. */
static int lapi_shared_keys(lua_State *L) {
    size_t plen = 0;
    const char *prefix = luaL_optlstring(L, 1, "", &plen);
    lua_Integer max = luaL_optinteger(L, 2, 0);
    luaL_argcheck(L, max >= 0, 2, "max must be >= 0 (0 = all)");
    lapi_shared_keys_ctx c = {0, NULL, 0, 0, 0};
    char err[128];
    if (shared_keys(prefix, plen, (size_t)max, lapi_shared_keys_measure, &c, err, sizeof err) != 0)
        goto fail;
    c.cap = c.bytes;
    c.out = lua_newuserdatauv(L, c.cap ? c.cap : 1, 0);
    if (shared_keys(prefix, plen, (size_t)max, lapi_shared_keys_copy, &c, err, sizeof err) != 0)
        goto fail;
    lua_createtable(L, (int)(c.n < 1u << 30 ? c.n : 0), 0);
    size_t off = 0;
    for (size_t i = 0; i < c.n; i++) {
        size_t len;
        memcpy(&len, c.out + off, sizeof len);
        lua_pushlstring(L, c.out + off + sizeof len, len);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
        off += sizeof len + len;
    }
    return 1;
fail:
    luaL_pushfail(L);
    lua_pushstring(L, err);
    return 2;
}

/* flush(): removes every entry. */
static int lapi_shared_flush(lua_State *L) {
    (void)L;
    shared_flush();
    return 0;
}

/* stats() -> {count=, bytes=, capacity=, evictions=, expired=}. */
static int lapi_shared_stats(lua_State *L) {
    shared_stats s;
    shared_get_stats(&s);
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, (lua_Integer)s.count);
    lua_setfield(L, -2, "count");
    lua_pushinteger(L, (lua_Integer)s.bytes);
    lua_setfield(L, -2, "bytes");
    lua_pushinteger(L, (lua_Integer)s.capacity);
    lua_setfield(L, -2, "capacity");
    lua_pushinteger(L, (lua_Integer)s.evictions);
    lua_setfield(L, -2, "evictions");
    lua_pushinteger(L, (lua_Integer)s.expired);
    lua_setfield(L, -2, "expired");
    return 1;
}

static const luaL_Reg lapi_shared_funcs[] = {
    {"get", lapi_shared_get},
    {"set", lapi_shared_set},
    {"add", lapi_shared_add},
    {"incr", lapi_shared_incr},
    {"delete", lapi_shared_delete},
    {"ttl", lapi_shared_ttl},
    {"count", lapi_shared_count},
    {"keys", lapi_shared_keys},
    {"flush", lapi_shared_flush},
    {"stats", lapi_shared_stats},
    {NULL, NULL},
};

/* Pushes the `fox.shared` table (+1). The dictionary itself is process-wide: every
 * generation's table reaches the same entries. */
int luaopen_fox_shared(lua_State *L) {
    luaL_newlib(L, lapi_shared_funcs);
    return 1;
}
