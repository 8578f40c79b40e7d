/* Shared by the fuzz targets that need fox's runtime: the event loop, the scheduler and
 * one generation (the same Lua state, bindings and scripts as `fox run`), plus:
 *   fuzz_fail(msg)  (Lua) reports a broken property and aborts, so libFuzzer keeps
 *                   the input;
 *   fuzz_cover()    (Lua) turns on Lua line coverage for the calling thread.
 * Lua, lua-cjson and libevent are Debian's shared libraries, not instrumented, so
 * libFuzzer would be blind to what the scripts do. fuzz_cover() feeds it the Lua line
 * edges (source, previous line -> line) as an extra 8-bit counter region, which is how
 * libFuzzer learns which inputs reach new Lua paths. The hook replaces the scheduler's
 * CPU-limit hook on that thread; libFuzzer's -timeout catches a runaway instead.
 * Scripts come from FOX_SCRIPT_PATH, else ./scripts (run from the repo root). */
#ifndef FOX_FUZZ_FOX_H
#define FOX_FUZZ_FOX_H
#include <lauxlib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fox/log.h"
#include "fox/loop.h"
#include "fox/sched.h"
#include "fox/vm.h"

#define FUZZ_LUA_COUNTERS 65536

#ifdef FOX_FUZZ_REPLAY
/* Replaying a corpus without libFuzzer (tests/c/test_fuzz_corpus.c): no coverage. */
static void __sanitizer_cov_8bit_counters_init(uint8_t *start, uint8_t *stop) { (void)start, (void)stop; }
static void __sanitizer_cov_pcs_init(const uintptr_t *b, const uintptr_t *e) { (void)b, (void)e; }
#else
void __sanitizer_cov_8bit_counters_init(uint8_t *start, uint8_t *stop);
void __sanitizer_cov_pcs_init(const uintptr_t *pcs_beg, const uintptr_t *pcs_end);
#endif

static uint8_t fuzz_lua_counters[FUZZ_LUA_COUNTERS] __attribute__((aligned(64)));
static uintptr_t fuzz_lua_pcs[FUZZ_LUA_COUNTERS * 2];
static uint32_t fuzz_lua_prev;

__attribute__((constructor)) static void fuzz_lua_register(void) {
    /* Fake PCs (distinct, never executed) so libFuzzer can tell the counters apart. */
    for (size_t i = 0; i < FUZZ_LUA_COUNTERS; i++) {
        fuzz_lua_pcs[2 * i] = (uintptr_t)0x7f0000000000ULL + i * 4;
        fuzz_lua_pcs[2 * i + 1] = i == 0; /* the first "PC" starts a function */
    }
    __sanitizer_cov_8bit_counters_init(fuzz_lua_counters, fuzz_lua_counters + FUZZ_LUA_COUNTERS);
    __sanitizer_cov_pcs_init(fuzz_lua_pcs, fuzz_lua_pcs + FUZZ_LUA_COUNTERS * 2);
}

static void fuzz_lua_line_hook(lua_State *L, lua_Debug *ar) {
    if (!lua_getinfo(L, "Sl", ar)) return;
    uint32_t h = (uint32_t)(uintptr_t)ar->source * 2654435761u ^ (uint32_t)ar->currentline * 40503u;
    uint32_t at = (h ^ fuzz_lua_prev) % FUZZ_LUA_COUNTERS;
    fuzz_lua_counters[at]++;
    fuzz_lua_prev = h >> 1;
}

/* Adds (a hash of) a string as a coverage feature: error messages of uninstrumented
 * code (cjson's parser) tell the fuzzer it reached a new branch there. */
static inline void fuzz_lua_feature(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= '0' && c <= '9') continue; /* positions: same branch */
        h = (h ^ c) * 16777619u;
    }
    fuzz_lua_counters[h % FUZZ_LUA_COUNTERS]++;
}

static int fuzz_fox_cover(lua_State *L) {
    lua_sethook(L, fuzz_lua_line_hook, LUA_MASKLINE, 0);
    return 0;
}

static int fuzz_fox_feature(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    fuzz_lua_feature(s, n);
    return 0;
}

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
    lua_register(g->L, "fuzz_cover", fuzz_fox_cover);
    lua_register(g->L, "fuzz_feature", fuzz_fox_feature);
    return g;
}

/* Runs chunk (Lua source) in g and returns a registry reference to what it returns. */
static inline int fuzz_fox_load(vm_gen *g, const char *name, const char *chunk) {
    lua_State *L = g->L;
    if (luaL_loadbuffer(L, chunk, strlen(chunk), name) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
        fprintf(stderr, "fuzz: %s: %s\n", name, lua_tostring(L, -1));
        exit(2);
    }
    return luaL_ref(L, LUA_REGISTRYINDEX);
}
#endif
