/* Generations: one lua_State each, with a capped allocator and the fox bindings. */
#include "fox/vm.h"

#include <lauxlib.h>
#include <limits.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "fox/sched.h"

#include "fox/lapi.h"

#define VM_DEFAULT_MEM_LIMIT ((size_t)512 << 20)

static vm_gen *vm_current_gen;
static int vm_next_id = 1;
static char *vm_boot_module;
static vm_reload_status vm_reload_state = {.ok = 1};
/* Every generation not yet closed, for /metrics and draining. */
static vm_gen *vm_live_gens[64];
static size_t vm_live_count;

/* The allocator refuses growth past the generation's cap; Lua then raises a memory
 * error in the allocating task (after an emergency collection). */
static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    vm_gen *g = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        g->mem_used -= old;
        return NULL;
    }
    if (nsize > old && g->mem_used - old + nsize > g->mem_limit) return NULL;
    void *p = realloc(ptr, nsize);
    if (!p) return NULL;
    g->mem_used = g->mem_used - old + nsize;
    if (g->mem_used > g->mem_peak) g->mem_peak = g->mem_used;
    return p;
}

static size_t vm_parse_size(const char *s) {
    if (!s || !*s) return 0;
    char *end;
    double v = strtod(s, &end);
    if (v <= 0) return 0;
    switch (*end) {
    case 'k': case 'K': v *= 1024; break;
    case 'm': case 'M': v *= 1024 * 1024; break;
    case 'g': case 'G': v *= 1024.0 * 1024 * 1024; break;
    default: break;
    }
    return (size_t)v;
}

vm_gen *vm_gen_of(lua_State *L) { return *(vm_gen **)lua_getextraspace(L); }

static const struct { const char *name; lua_CFunction open; } vm_bindings[] = {
    {"fox.task.core", luaopen_fox_task},
    {"fox.http.core", luaopen_fox_http_core},
    {"fox.crypto", luaopen_fox_crypto},
    {"fox.log", luaopen_fox_log},
    {"fox.shared", luaopen_fox_shared},
    {"fox.state", luaopen_fox_state},
    {"fox.sys", luaopen_fox_sys},
    {"fox.webhook", luaopen_fox_webhook},
    {"fox.vm", luaopen_fox_vm},
    {"fox.signal", luaopen_fox_signal},
    {"fox.stdio", luaopen_fox_stdio},
    {"fox.json.core", luaopen_fox_json_core},
};

static int vm_setup(lua_State *L) {
    vm_gen *g = lua_touserdata(L, 1);
    luaL_openlibs(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    for (size_t i = 0; i < sizeof vm_bindings / sizeof vm_bindings[0]; i++) {
        lua_pushcfunction(L, vm_bindings[i].open);
        lua_setfield(L, -2, vm_bindings[i].name);
    }
    lua_pop(L, 1);
    /* Scripts first, then the system's Lua path (lua-cjson, busted for the tests). */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", g->script_dir, g->script_dir, lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);
    lua_getglobal(L, "require");
    lua_pushstring(L, "fox.runtime");
    lua_call(L, 1, 0);
    return 0;
}

static int vm_message_handler(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg ? msg : "(non-string error)", 1);
    return 1;
}

vm_gen *vm_gen_new(const vm_opts *o, char *err, size_t errlen) {
    vm_gen *g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    g->mem_limit = o->mem_limit ? o->mem_limit : vm_parse_size(getenv("FOX_MEMORY_LIMIT"));
    if (!g->mem_limit) g->mem_limit = VM_DEFAULT_MEM_LIMIT;
    snprintf(g->script_dir, sizeof g->script_dir, "%s", o->script_dir);
    g->L = lua_newstate(vm_alloc, g);
    if (!g->L) {
        snprintf(err, errlen, "cannot create a Lua state");
        free(g);
        return NULL;
    }
    *(vm_gen **)lua_getextraspace(g->L) = g;
    g->id = vm_next_id++;
    g->refs = 1; /* released by vm_gen_retire */
    lua_State *L = g->L;
    lua_pushcfunction(L, vm_message_handler);
    lua_pushcfunction(L, vm_setup);
    lua_pushlightuserdata(L, g);
    if (lua_pcall(L, 1, 0, -3) != LUA_OK) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "setup failed");
        lua_close(L);
        free(g);
        return NULL;
    }
    lua_settop(L, 0);
    if (vm_live_count < sizeof vm_live_gens / sizeof vm_live_gens[0]) vm_live_gens[vm_live_count++] = g;
    return g;
}

vm_gen *vm_current(void) { return vm_current_gen; }

void vm_set_current(vm_gen *g) {
    vm_gen *old = vm_current_gen;
    vm_current_gen = g;
    if (old && old != g) vm_gen_retire(old);
}

void vm_gen_retain(vm_gen *g) { g->refs++; }

void vm_gen_release(vm_gen *g) {
    if (--g->refs > 0) return;
    if (vm_current_gen == g) vm_current_gen = NULL;
    for (size_t i = 0; i < vm_live_count; i++) {
        if (vm_live_gens[i] == g) {
            vm_live_gens[i] = vm_live_gens[--vm_live_count];
            break;
        }
    }
    lua_close(g->L);
    free(g);
}

void vm_gen_retire(vm_gen *g) {
    if (g->retired) return;
    g->retired = 1;
    vm_gen_release(g);
}

static int vm_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *vm_default_script_dir(char *buf, size_t len) {
    const char *env = getenv("FOX_SCRIPT_PATH");
    if (env && *env) {
        snprintf(buf, len, "%s", env);
        return buf;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        /* build/fox -> ../scripts; PREFIX/bin/fox -> ../share/fox/scripts */
        snprintf(buf, len, "%s/../scripts", exe);
        if (vm_is_dir(buf)) {
            char real[PATH_MAX];
            if (realpath(buf, real)) snprintf(buf, len, "%s", real);
            return buf;
        }
        snprintf(buf, len, "%s/../share/fox/scripts", exe);
        if (vm_is_dir(buf)) {
            char real[PATH_MAX];
            if (realpath(buf, real)) snprintf(buf, len, "%s", real);
            return buf;
        }
    }
    snprintf(buf, len, "%s", FOX_SCRIPT_DIR);
    return buf;
}

void vm_set_boot(const char *module) {
    free(vm_boot_module);
    vm_boot_module = module ? strdup(module) : NULL;
}

static int vm_boot_load(lua_State *L) {
    lua_getglobal(L, "require");
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "load");
    if (!lua_isfunction(L, -1)) return luaL_error(L, "boot module '%s' has no load()", lua_tostring(L, 1));
    lua_call(L, 0, 0);
    return 0;
}

int vm_gen_boot(vm_gen *g, char *err, size_t errlen) {
    if (!vm_boot_module) return 0;
    lua_State *L = g->L;
    /* No traceback: the error says file:line, which is what /healthz and the log show. */
    lua_pushcfunction(L, vm_boot_load);
    lua_pushstring(L, vm_boot_module);
    int rc = lua_pcall(L, 1, 0, 0);
    if (rc != LUA_OK) snprintf(err, errlen, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "boot failed");
    lua_settop(L, 0);
    return rc == LUA_OK ? 0 : -1;
}

static void vm_record_reload(int ok, const char *error) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    vm_reload_state.at = (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
    vm_reload_state.ok = ok;
    vm_reload_state.reloads++;
    if (!ok) vm_reload_state.failures++;
    snprintf(vm_reload_state.error, sizeof vm_reload_state.error, "%s", ok ? "" : error);
}

int vm_reload(char *err, size_t errlen) {
    vm_gen *old = vm_current_gen;
    if (!old) {
        snprintf(err, errlen, "no generation to reload");
        return -1;
    }
    vm_opts o = {.script_dir = old->script_dir, .mem_limit = old->mem_limit};
    vm_gen *g = vm_gen_new(&o, err, errlen);
    if (!g || vm_gen_boot(g, err, errlen) < 0) {
        if (g) vm_gen_retire(g);
        vm_record_reload(0, err);
        return -1;
    }
    vm_set_current(g);
    vm_record_reload(1, NULL);
    if (vm_boot_module) {
        /* start() runs as a task of the new generation. */
        lua_State *L = g->L;
        lua_getglobal(L, "require");
        lua_pushstring(L, vm_boot_module);
        if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
            lua_getfield(L, -1, "start");
            lua_remove(L, -2);
            if (lua_isfunction(L, -1)) {
                sched_opts so = {.name = "generation-start"};
                if (!sched_spawn(g, L, 0, &so, err, errlen)) return -1;
            } else {
                lua_pop(L, 1);
            }
        } else {
            lua_pop(L, 1);
        }
    }
    return 0;
}

const vm_reload_status *vm_last_reload(void) { return &vm_reload_state; }

void vm_each_gen(void (*fn)(vm_gen *g, void *ud), void *ud) {
    for (size_t i = 0; i < vm_live_count; i++) fn(vm_live_gens[i], ud);
}

void vm_push_traceback(lua_State *L, lua_State *co, int level) {
    const char *msg = lua_tostring(L, -1);
    luaL_traceback(L, co, msg ? msg : "(non-string error)", level);
    lua_remove(L, -2);
}
