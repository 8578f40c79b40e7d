/* Shared by the fuzz targets that need fox's runtime: the event loop, the scheduler and
 * one generation (the same Lua state, bindings and scripts as `fox run`), plus a Lua
 * function fuzz_fail(msg) that reports a broken property and aborts, so libFuzzer keeps
 * the input. Scripts come from FOX_SCRIPT_PATH, else ./scripts (run from the repo root). */
#ifndef FOX_FUZZ_FOX_H
#define FOX_FUZZ_FOX_H
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fox/log.h"
#include "fox/loop.h"
#include "fox/sched.h"
#include "fox/vm.h"

static int fuzz_fox_fail(lua_State *L) {
    fprintf(stderr, "fuzz: property broken: %s\n", luaL_optstring(L, 1, "(no message)"));
    abort();
    return 0;
}

/* Starts the runtime once; returns the current generation. Exits on failure. */
static inline vm_gen *fuzz_fox_start(void) {
    static vm_gen *g;
    if (g) return g;
    char err[1024];
    const char *dir = getenv("FOX_SCRIPT_PATH");
    if (!dir || !*dir) dir = "scripts";
    if (loop_init(err, sizeof err) < 0 || sched_init(err, sizeof err) < 0) {
        fprintf(stderr, "fuzz: %s\n", err);
        exit(2);
    }
    vm_opts o = {.script_dir = dir};
    g = vm_gen_new(&o, err, sizeof err);
    if (!g) {
        fprintf(stderr, "fuzz: cannot start the Lua runtime (scripts in %s): %s\n", dir, err);
        exit(2);
    }
    vm_set_current(g);
    lua_register(g->L, "fuzz_fail", fuzz_fox_fail);
    return g;
}

/* Loads chunk (Lua source) in g and returns a registry reference to what it returns. */
static inline int fuzz_fox_load(vm_gen *g, const char *name, const char *chunk) {
    lua_State *L = g->L;
    if (luaL_loadbuffer(L, chunk, strlen(chunk), name) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
        fprintf(stderr, "fuzz: %s: %s\n", name, lua_tostring(L, -1));
        exit(2);
    }
    return luaL_ref(L, LUA_REGISTRYINDEX);
}
#endif
