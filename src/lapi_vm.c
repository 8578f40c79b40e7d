/* fox.vm: generations and hot reload, as seen from Lua. Bindings only. */
#include <lauxlib.h>
#include <signal.h>

#include "fox/lapi.h"
#include "fox/log.h"
#include "fox/loop.h"
#include "fox/vm.h"

static struct event *lapi_vm_sighup_event;

/* generation() -> id of the generation running the caller */
static int lapi_vm_generation(lua_State *L) {
    lua_pushinteger(L, vm_gen_of(L)->id);
    return 1;
}

/* current() -> id of the generation new work goes to */
static int lapi_vm_current(lua_State *L) {
    vm_gen *g = vm_current();
    lua_pushinteger(L, g ? g->id : 0);
    return 1;
}

/* is_current() -> whether the caller's generation still receives new work; long-running
 * loops end when it turns false (the new generation's start() replaces them). */
static int lapi_vm_is_current(lua_State *L) {
    lua_pushboolean(L, vm_gen_of(L) == vm_current());
    return 1;
}

/* boot(module): the module whose load()/start() make a generation ready. */
static int lapi_vm_boot(lua_State *L) {
    vm_set_boot(luaL_optstring(L, 1, NULL));
    return 0;
}

/* reload() -> true | nil, err */
static int lapi_vm_reload(lua_State *L) {
    char err[2048];
    if (vm_reload(err, sizeof err) < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* last_reload() -> {ok=, error=, at=, reloads=, failures=} */
static int lapi_vm_last_reload(lua_State *L) {
    const vm_reload_status *st = vm_last_reload();
    lua_createtable(L, 0, 5);
    lua_pushboolean(L, st->ok);
    lua_setfield(L, -2, "ok");
    if (st->error[0]) {
        lua_pushstring(L, st->error);
        lua_setfield(L, -2, "error");
    }
    if (st->at > 0) {
        lua_pushnumber(L, st->at);
        lua_setfield(L, -2, "at");
    }
    lua_pushinteger(L, (lua_Integer)st->reloads);
    lua_setfield(L, -2, "reloads");
    lua_pushinteger(L, (lua_Integer)st->failures);
    lua_setfield(L, -2, "failures");
    return 1;
}

static void lapi_vm_push_gen(vm_gen *g, void *ud) {
    lua_State *L = ud;
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, g->id);
    lua_setfield(L, -2, "id");
    lua_pushinteger(L, (lua_Integer)g->mem_used);
    lua_setfield(L, -2, "memory");
    lua_pushinteger(L, (lua_Integer)g->mem_peak);
    lua_setfield(L, -2, "memory_peak");
    lua_pushinteger(L, (lua_Integer)g->mem_limit);
    lua_setfield(L, -2, "memory_limit");
    lua_pushboolean(L, g == vm_current());
    lua_setfield(L, -2, "current");
    lua_pushinteger(L, g->refs);
    lua_setfield(L, -2, "refs");
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

/* generations() -> array of {id, memory, memory_peak, memory_limit, current, refs} */
static int lapi_vm_generations(lua_State *L) {
    lua_newtable(L);
    vm_each_gen(lapi_vm_push_gen, L);
    return 1;
}

static void lapi_vm_on_sighup(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what, (void)arg;
    char err[2048];
    double t0 = loop_now();
    if (vm_reload(err, sizeof err) < 0) {
        log_msgf(LOG_LEVEL_ERROR, "reload.failed", "reload rejected, still serving generation %d: %s",
                 vm_current() ? vm_current()->id : 0, err);
        return;
    }
    log_msgf(LOG_LEVEL_INFO, "reload.ok", "generation %d is serving (built in %.1f ms)",
             vm_current()->id, (loop_now() - t0) * 1000);
}

/* watch_sighup(): SIGHUP reloads (built, validated, swapped) from now on. */
static int lapi_vm_watch_sighup(lua_State *L) {
    (void)L;
    if (!lapi_vm_sighup_event) {
        lapi_vm_sighup_event = evsignal_new(loop_base(), SIGHUP, lapi_vm_on_sighup, NULL);
        event_add(lapi_vm_sighup_event, NULL);
    }
    return 0;
}

/* unwatch_sighup(): lets the loop end (a daemon stopping). */
static int lapi_vm_unwatch_sighup(lua_State *L) {
    (void)L;
    if (lapi_vm_sighup_event) event_free(lapi_vm_sighup_event);
    lapi_vm_sighup_event = NULL;
    return 0;
}

int luaopen_fox_vm(lua_State *L) {
    static const luaL_Reg funcs[] = {
        {"generation", lapi_vm_generation},   {"current", lapi_vm_current},
        {"is_current", lapi_vm_is_current},   {"boot", lapi_vm_boot},
        {"reload", lapi_vm_reload},           {"last_reload", lapi_vm_last_reload},
        {"generations", lapi_vm_generations}, {"watch_sighup", lapi_vm_watch_sighup},
        {"unwatch_sighup", lapi_vm_unwatch_sighup}, {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    return 1;
}
