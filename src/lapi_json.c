/* Lua module `fox.json.core`: the C half of scripts/fox/json.lua.
 *   integerize(v [, max_depth]) -> v: every integral float up to 2^53 in magnitude in
 *       table v (nested tables too, down to max_depth levels, default 129) becomes an
 *       integer, in place; raises "number out of range (beyond the largest double)"
 *       on +-inf (a literal like 1e400). lua-cjson 2.1.0 decodes every number as a
 *       float; this walk used to be Lua and cost a third of an investigation's CPU. */
#include "fox/lapi.h"

#include <lauxlib.h>
#include <lua.h>
#include <math.h>

#define LAPI_JSON_EXACT 9007199254740992.0 /* 2^53: past it a float is already rounded */
#define LAPI_JSON_DEFAULT_DEPTH 129

/* Rewrites the floats of the table at stack index idx (absolute); recurses into nested
 * tables while depth <= max_depth. Leaves the stack as it found it. */
static void lapi_json_integerize_table(lua_State *L, int idx, int depth, int max_depth) {
    if (depth > max_depth) return;
    luaL_checkstack(L, 4, "json nesting");
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        int t = lua_type(L, -1);
        if (t == LUA_TNUMBER && !lua_isinteger(L, -1)) {
            lua_Number f = lua_tonumber(L, -1);
            if (isinf(f)) luaL_error(L, "number out of range (beyond the largest double)");
            if (f <= LAPI_JSON_EXACT && f >= -LAPI_JSON_EXACT && f == floor(f)) {
                lua_pushvalue(L, -2);
                lua_pushinteger(L, (lua_Integer)f);
                lua_rawset(L, idx); /* the key exists: allowed during lua_next */
            }
        } else if (t == LUA_TTABLE) {
            lapi_json_integerize_table(L, lua_gettop(L), depth + 1, max_depth);
        }
        lua_pop(L, 1);
    }
}

/* integerize(v [, max_depth]) -> v (+1). */
static int lapi_json_integerize(lua_State *L) {
    int max_depth = (int)luaL_optinteger(L, 2, LAPI_JSON_DEFAULT_DEPTH);
    lua_settop(L, 1);
    if (lua_type(L, 1) == LUA_TTABLE) lapi_json_integerize_table(L, 1, 1, max_depth);
    return 1;
}

static const luaL_Reg lapi_json_funcs[] = {
    {"integerize", lapi_json_integerize},
    {NULL, NULL},
};

/* Pushes the `fox.json.core` table (+1). */
int luaopen_fox_json_core(lua_State *L) {
    luaL_newlib(L, lapi_json_funcs);
    return 1;
}
