/* Lua module `fox.webhook`: Standard Webhooks verification over webhook.c.
 * verify(secret, headers, body [, opts]) -> true | nil, reason
 * sign(secret, id, timestamp, body) -> "v1,<base64>" | nil, err */
#include "fox/lapi.h"
#include "fox/webhook.h"

#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define LAPI_WEBHOOK_MAX_SECONDS 9007199254740992.0 /* 2^53 */

/* Finds header `name` (lower case) in the table at index idx: the exact key first, then
 * any key equal ignoring case. Sets *out (ptr NULL when absent). Returns 0, or -1 when
 * the value is neither a string nor a number. Leaves the value on the stack (+1), so
 * the string stays alive while the caller uses it. */
static int lapi_webhook_get_header(lua_State *L, int idx, const char *name, webhook_str *out) {
    out->ptr = NULL;
    out->len = 0;
    lua_getfield(L, idx, name);
    if (lua_isnil(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            if (lua_type(L, -2) == LUA_TSTRING && strcasecmp(lua_tostring(L, -2), name) == 0) {
                lua_replace(L, -3); /* value over the nil; key stays to pop */
                lua_pop(L, 1);
                goto found;
            }
            lua_pop(L, 1);
        }
        return 0; /* the nil from lua_getfield is the +1 */
    }
found:
    if (lua_isnil(L, -1)) return 0;
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) return -1;
    out->ptr = lua_tolstring(L, -1, &out->len);
    return 0;
}

/* verify(secret, headers, body [, opts]) -> true, or nil and a reason. opts.now (unix
 * seconds, default wall clock) and opts.tolerance (seconds, default 300). */
static int lapi_webhook_verify(lua_State *L) {
    static const char *const names[3] = {"webhook-id", "webhook-timestamp",
                                         "webhook-signature"};
    size_t secretlen;
    const char *secret = luaL_checklstring(L, 1, &secretlen);
    luaL_checktype(L, 2, LUA_TTABLE);
    webhook_request req;
    req.body.ptr = luaL_checklstring(L, 3, &req.body.len);
    webhook_opts opts = {(int64_t)time(NULL), WEBHOOK_DEFAULT_TOLERANCE};
    if (!lua_isnoneornil(L, 4)) {
        luaL_checktype(L, 4, LUA_TTABLE);
        /* Bounded so the conversion to int64 and now - timestamp cannot overflow. */
        if (lua_getfield(L, 4, "now") != LUA_TNIL) {
            luaL_argcheck(L, lua_isnumber(L, -1) && lua_tonumber(L, -1) >= 0 &&
                                 lua_tonumber(L, -1) <= LAPI_WEBHOOK_MAX_SECONDS,
                          4, "opts.now must be unix seconds (a number from 0 to 2^53)");
            opts.now = (int64_t)floor(lua_tonumber(L, -1));
        }
        if (lua_getfield(L, 4, "tolerance") != LUA_TNIL) {
            luaL_argcheck(L, lua_isnumber(L, -1) && lua_tonumber(L, -1) >= 0 &&
                                 lua_tonumber(L, -1) <= LAPI_WEBHOOK_MAX_SECONDS,
                          4, "opts.tolerance must be a number from 0 to 2^53");
            opts.tolerance = (int64_t)floor(lua_tonumber(L, -1));
        }
        lua_pop(L, 2);
    }
    webhook_str *fields[3] = {&req.id, &req.timestamp, &req.signature};
    for (int i = 0; i < 3; i++) {
        if (lapi_webhook_get_header(L, 2, names[i], fields[i]) != 0) {
            luaL_pushfail(L);
            lua_pushfstring(L, "%s header is not a string", names[i]);
            return 2;
        }
    }
    char err[200];
    if (webhook_verify(secret, secretlen, &req, &opts, err, sizeof err) != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* sign(secret, id, timestamp, body) -> "v1,<base64>", or nil, err. */
static int lapi_webhook_sign(lua_State *L) {
    size_t secretlen;
    const char *secret = luaL_checklstring(L, 1, &secretlen);
    webhook_str id, ts, body;
    id.ptr = luaL_checklstring(L, 2, &id.len);
    ts.ptr = luaL_checklstring(L, 3, &ts.len);
    body.ptr = luaL_checklstring(L, 4, &body.len);
    char out[128], err[200];
    if (webhook_sign(secret, secretlen, &id, &ts, &body, out, sizeof out, err, sizeof err) != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushstring(L, out);
    return 1;
}

static const luaL_Reg lapi_webhook_funcs[] = {
    {"verify", lapi_webhook_verify},
    {"sign", lapi_webhook_sign},
    {NULL, NULL},
};

/* Pushes the `fox.webhook` table (+1). */
int luaopen_fox_webhook(lua_State *L) {
    luaL_newlib(L, lapi_webhook_funcs);
    return 1;
}
