/* Lua module `fox.sys`: the process and its environment.
 *   getenv(name) -> string | nil
 *   secret(name) -> value | nil [, err]: NAME from the environment, else the contents of
 *       the file named by NAME_FILE (trailing newlines stripped); registered with the
 *       log redactor either way, so it never shows up in a log line.
 *   isatty(fd) -> boolean;  pid() -> integer;  hostname() -> string
 *   exit([code]): flushes stdio and ends the process (code: integer or boolean) without
 *       closing Lua states (which would pull the running task from under itself).
 *   rss_bytes() -> resident set size, or nil, err;  wall_time() -> unix seconds (float)
 *   executable() -> absolute path of the running fox binary, or nil, err */
#include "fox/lapi.h"
#include "fox/log.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define LAPI_SYS_SECRET_FILE_MAX (64 * 1024)

/* getenv(name) -> value or nil. */
static int lapi_sys_getenv(lua_State *L) {
    const char *v = getenv(luaL_checkstring(L, 1));
    if (v) lua_pushstring(L, v);
    else lua_pushnil(L);
    return 1;
}

/* Reads at most LAPI_SYS_SECRET_FILE_MAX bytes of path onto the stack (+1 on success).
 * Returns 0, or -1 with a message pushed (+1). */
static int lapi_sys_read_secret_file(lua_State *L, const char *var, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        lua_pushfstring(L, "%s: cannot open %s: %s", var, path, strerror(errno));
        return -1;
    }
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, LAPI_SYS_SECRET_FILE_MAX + 1);
    size_t n = fread(p, 1, LAPI_SYS_SECRET_FILE_MAX + 1, f);
    int failed = ferror(f);
    fclose(f);
    if (failed || n > LAPI_SYS_SECRET_FILE_MAX) {
        luaL_pushresultsize(&b, 0);
        lua_pop(L, 1);
        lua_pushfstring(L, failed ? "%s: cannot read %s" : "%s: %s is larger than 64 KiB",
                        var, path);
        return -1;
    }
    while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r')) n--;
    luaL_pushresultsize(&b, n);
    return 0;
}

/* secret(name) -> value, or nil (not set), or nil, err (NAME_FILE unreadable). */
static int lapi_sys_secret(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    const char *v = getenv(name);
    if (v && *v) {
        lua_pushstring(L, v);
    } else {
        lua_pushfstring(L, "%s_FILE", name);
        const char *var = lua_tostring(L, -1);
        const char *path = getenv(var);
        if (!path || !*path) {
            lua_pushnil(L);
            return 1;
        }
        if (lapi_sys_read_secret_file(L, var, path) != 0) {
            luaL_pushfail(L);
            lua_insert(L, -2);
            return 2;
        }
    }
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    if (log_redact_add(s, len, NULL) != 0)
        return luaL_error(L, "secret %s: cannot register it for redaction", name);
    return 1;
}

/* isatty(fd) -> boolean. */
static int lapi_sys_isatty(lua_State *L) {
    lua_Integer fd = luaL_checkinteger(L, 1);
    lua_pushboolean(L, fd >= 0 && fd <= INT_MAX && isatty((int)fd));
    return 1;
}

/* pid() -> the process id. */
static int lapi_sys_pid(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

/* exit([code]): does not return. */
static int lapi_sys_exit(lua_State *L) {
    int code;
    if (lua_isnoneornil(L, 1)) code = 0;
    else if (lua_isboolean(L, 1)) code = lua_toboolean(L, 1) ? 0 : 1;
    else code = (int)luaL_checkinteger(L, 1);
    fflush(NULL);
    exit(code);
}

/* hostname() -> string, or nil, err. */
static int lapi_sys_hostname(lua_State *L) {
    char name[256];
    if (gethostname(name, sizeof name) != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, strerror(errno));
        return 2;
    }
    name[sizeof name - 1] = '\0';
    lua_pushstring(L, name);
    return 1;
}

/* rss_bytes() -> resident memory of the process, or nil, err. */
static int lapi_sys_rss_bytes(lua_State *L) {
    unsigned long long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    int ok = f && fscanf(f, "%llu %llu", &size, &resident) == 2;
    if (f) fclose(f);
    if (!ok) {
        luaL_pushfail(L);
        lua_pushliteral(L, "cannot read /proc/self/statm");
        return 2;
    }
    long page = sysconf(_SC_PAGESIZE);
    lua_pushinteger(L, (lua_Integer)(resident * (unsigned long long)(page > 0 ? page : 4096)));
    return 1;
}

/* wall_time() -> seconds since the epoch, microsecond resolution. */
static int lapi_sys_wall_time(lua_State *L) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    lua_pushnumber(L, (lua_Number)tv.tv_sec + (lua_Number)tv.tv_usec / 1e6);
    return 1;
}

/* executable() -> path of the running binary (to start another fox), or nil, err. */
static int lapi_sys_executable(lua_State *L) {
    char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n < 0) {
        luaL_pushfail(L);
        lua_pushfstring(L, "cannot read /proc/self/exe: %s", strerror(errno));
        return 2;
    }
    lua_pushlstring(L, path, (size_t)n);
    return 1;
}

static const luaL_Reg lapi_sys_funcs[] = {
    {"executable", lapi_sys_executable},
    {"getenv", lapi_sys_getenv},
    {"secret", lapi_sys_secret},
    {"isatty", lapi_sys_isatty},
    {"pid", lapi_sys_pid},
    {"exit", lapi_sys_exit},
    {"hostname", lapi_sys_hostname},
    {"rss_bytes", lapi_sys_rss_bytes},
    {"wall_time", lapi_sys_wall_time},
    {NULL, NULL},
};

/* Pushes the `fox.sys` table (+1); `version` is fox's version string. */
int luaopen_fox_sys(lua_State *L) {
    luaL_newlib(L, lapi_sys_funcs);
    lua_pushstring(L, FOX_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}
