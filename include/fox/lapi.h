#ifndef FOX_LAPI_H
#define FOX_LAPI_H
/* Lua bindings: each opens one module; vm.c registers them in package.preload. */
#include <lua.h>

int luaopen_fox_task(lua_State *L);         /* lapi_task.c   "fox.task.core" (scripts/fox/task.lua adds gather) */
int luaopen_fox_http_core(lua_State *L);    /* lapi_http.c   "fox.http.core" (request, listen, encode) */
int luaopen_fox_crypto(lua_State *L);       /* lapi_crypto.c "fox.crypto" */
int luaopen_fox_log(lua_State *L);          /* lapi_log.c    "fox.log" */
int luaopen_fox_shared(lua_State *L);       /* lapi_shared.c "fox.shared" */
int luaopen_fox_state(lua_State *L);        /* lapi_state.c  "fox.state" (durable state) */
int luaopen_fox_sys(lua_State *L);          /* lapi_sys.c    "fox.sys" (env, signals, process) */
int luaopen_fox_webhook(lua_State *L);      /* lapi_webhook.c "fox.webhook" (Standard Webhooks verify) */
int luaopen_fox_vm(lua_State *L);           /* lapi_vm.c     "fox.vm" (generations, hot reload) */
int luaopen_fox_signal(lua_State *L);       /* lapi_signal.c "fox.signal" (a task waits for signals) */
int luaopen_fox_stdio(lua_State *L);        /* lapi_stdio.c  "fox.stdio" (non-blocking lines on fd 0, output on fd 1) */
int luaopen_fox_json_core(lua_State *L);    /* lapi_json.c   "fox.json.core" (scripts/fox/json.lua's integer pass) */
#endif
