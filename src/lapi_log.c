/* Lua module `fox.log` over log.c:
 *   debug/info/warn/error(event [, fields | msg])  fields: strings, numbers, booleans;
 *       nested tables become key.sub fields (3 levels deep); keys are sorted.
 *   redact(secret) -> true (registered) | false (shorter than 6 bytes, ignored)
 *   scrub(s) -> s with every registered secret replaced by [REDACTED]
 *   set_level(name), level() -> name, set_format("logfmt"|"json"), format() -> name,
 *   enabled(name) -> boolean */
#include "fox/lapi.h"
#include "fox/log.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LAPI_LOG_MAX_FIELDS 64
#define LAPI_LOG_KEY_MAX 128
#define LAPI_LOG_MAX_DEPTH 3

/* Everything lives on the C stack, so a Lua error mid-way leaks nothing. */
typedef struct lapi_log_fields {
    log_field fields[LAPI_LOG_MAX_FIELDS + 1];
    char keys[LAPI_LOG_MAX_FIELDS + 1][LAPI_LOG_KEY_MAX];
    char texts[LAPI_LOG_MAX_FIELDS + 1][48];
    size_t n;
    size_t dropped;
} lapi_log_fields;

static const log_level lapi_log_levels[] = {LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN,
                                            LOG_LEVEL_ERROR};

/* Formats a number the way Lua's tostring does (floats keep a ".0"). */
static void lapi_log_format_number(lua_State *L, int idx, char *out, size_t len) {
    if (lua_isinteger(L, idx)) {
        snprintf(out, len, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
        return;
    }
    snprintf(out, len, LUA_NUMBER_FMT, (LUAI_UACNUMBER)lua_tonumber(L, idx));
    if (strspn(out, "-0123456789") == strlen(out)) strncat(out, ".0", len - strlen(out) - 1);
}

/* Writes the text of the key at idx (string or number; else its type name) into out. */
static void lapi_log_key_text(lua_State *L, int idx, char *out, size_t len) {
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: snprintf(out, len, "%s", lua_tostring(L, idx)); break;
    case LUA_TNUMBER: lapi_log_format_number(L, idx, out, len); break;
    default: snprintf(out, len, "%s", luaL_typename(L, idx)); break;
    }
}

/* Adds the value at idx under key. Strings point into Lua (alive for the call). */
static void lapi_log_add(lua_State *L, int idx, const char *key, lapi_log_fields *c) {
    if (c->n == LAPI_LOG_MAX_FIELDS) {
        c->dropped++;
        return;
    }
    log_field *f = &c->fields[c->n];
    char *text = c->texts[c->n];
    snprintf(c->keys[c->n], LAPI_LOG_KEY_MAX, "%s", key);
    f->key = c->keys[c->n];
    f->kind = LOG_FIELD_RAW;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        f->value = lua_tolstring(L, idx, &f->len);
        f->kind = LOG_FIELD_STRING;
        break;
    case LUA_TNUMBER:
        lapi_log_format_number(L, idx, text, sizeof c->texts[0]);
        f->value = text;
        f->len = strlen(text);
        break;
    case LUA_TBOOLEAN:
        f->value = lua_toboolean(L, idx) ? "true" : "false";
        f->len = strlen(f->value);
        break;
    case LUA_TNIL:
        f->value = "null";
        f->len = 4;
        break;
    default: /* tables too deep, functions, userdata: their type, never their contents */
        snprintf(text, sizeof c->texts[0], "%s", luaL_typename(L, idx));
        f->value = text;
        f->len = strlen(text);
        f->kind = LOG_FIELD_STRING;
        break;
    }
    c->n++;
}

/* out = prefix "." name (or just name), cut to fit: long keys are a caller's mistake,
 * not a reason to drop the event. */
static void lapi_log_join_key(char *out, size_t len, const char *prefix, const char *name) {
    size_t n = 0;
    if (prefix) {
        size_t p = strlen(prefix);
        if (p > len - 2) p = len - 2;
        memcpy(out, prefix, p);
        out[p] = '.';
        n = p + 1;
    }
    size_t m = strlen(name);
    if (m > len - 1 - n) m = len - 1 - n;
    memcpy(out + n, name, m);
    out[n + m] = '\0';
}

/* Collects the fields of the table at idx (absolute), flattening nested tables. */
static void lapi_log_collect(lua_State *L, int idx, const char *prefix, int depth,
                             lapi_log_fields *c) {
    luaL_checkstack(L, 4, "log fields");
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        char key[LAPI_LOG_KEY_MAX], name[LAPI_LOG_KEY_MAX];
        lapi_log_key_text(L, -2, name, sizeof name);
        lapi_log_join_key(key, sizeof key, prefix, name);
        if (lua_type(L, -1) == LUA_TTABLE && depth < LAPI_LOG_MAX_DEPTH)
            lapi_log_collect(L, lua_gettop(L), key, depth + 1, c);
        else
            lapi_log_add(L, -1, key, c);
        lua_pop(L, 1);
    }
}

static int lapi_log_compare_fields(const void *a, const void *b) {
    return strcmp(((const log_field *)a)->key, ((const log_field *)b)->key);
}

/* debug/info/warn/error(event [, fields | msg]): upvalue 1 is the level index. */
static int lapi_log_write(lua_State *L) {
    log_level level = lapi_log_levels[lua_tointeger(L, lua_upvalueindex(1))];
    const char *event = luaL_checkstring(L, 1);
    int t = lua_type(L, 2);
    luaL_argexpected(L, t == LUA_TNONE || t == LUA_TNIL || t == LUA_TTABLE || t == LUA_TSTRING,
                     2, "table or string");
    if (!log_enabled(level)) return 0;
    lapi_log_fields c;
    c.n = 0;
    c.dropped = 0;
    if (t == LUA_TTABLE) {
        lapi_log_collect(L, 2, NULL, 1, &c);
        qsort(c.fields, c.n, sizeof c.fields[0], lapi_log_compare_fields);
    } else if (t == LUA_TSTRING) {
        lapi_log_add(L, 2, "msg", &c);
    }
    if (c.dropped) {
        log_field *f = &c.fields[c.n];
        snprintf(c.texts[c.n], sizeof c.texts[0], "%zu", c.dropped);
        f->key = "fields_dropped";
        f->value = c.texts[c.n];
        f->len = strlen(f->value);
        f->kind = LOG_FIELD_RAW;
        c.n++;
    }
    log_emit(level, event, c.fields, c.n);
    return 0;
}

/* redact(secret) -> true when registered (or already known), false when too short to
 * be worth redacting; nil, err when the registry is full. */
static int lapi_log_redact(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    if (len < LOG_REDACT_MIN) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (log_redact_add(s, len, NULL) != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, "cannot register secret: registry full or out of memory");
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* scrub(s) -> s with registered secrets replaced by [REDACTED]. Non-strings are
 * converted with tostring first. */
static int lapi_log_scrub(lua_State *L) {
    size_t len, outlen;
    const char *s = luaL_tolstring(L, 1, &len);
    if (!log_redact_contains(s, len)) return 1;
    char *out = log_redact_string(s, len, &outlen);
    if (!out) return luaL_error(L, "out of memory");
    lua_pushlstring(L, out, outlen);
    free(out);
    return 1;
}

static log_level lapi_log_check_level(lua_State *L, int arg) {
    log_level level;
    if (log_parse_level(luaL_checkstring(L, arg), &level) != 0)
        luaL_argerror(L, arg, "expected \"debug\", \"info\", \"warn\" or \"error\"");
    return level;
}

/* set_level(name): events below it are dropped, process-wide (C core included). */
static int lapi_log_set_level(lua_State *L) {
    log_set_level(lapi_log_check_level(L, 1));
    return 0;
}

/* level() -> "debug" | "info" | "warn" | "error". */
static int lapi_log_level(lua_State *L) {
    lua_pushstring(L, log_level_name(log_get_level()));
    return 1;
}

/* enabled(name) -> whether events at that level are written. */
static int lapi_log_enabled(lua_State *L) {
    lua_pushboolean(L, log_enabled(lapi_log_check_level(L, 1)));
    return 1;
}

/* set_format("logfmt" | "json"), process-wide. */
static int lapi_log_set_format(lua_State *L) {
    log_format format;
    if (log_parse_format(luaL_checkstring(L, 1), &format) != 0)
        return luaL_argerror(L, 1, "expected \"logfmt\" or \"json\"");
    log_set_format(format);
    return 0;
}

/* format() -> "logfmt" | "json". */
static int lapi_log_format(lua_State *L) {
    lua_pushstring(L, log_get_format() == LOG_FORMAT_JSON ? "json" : "logfmt");
    return 1;
}

static const luaL_Reg lapi_log_funcs[] = {
    {"redact", lapi_log_redact},
    {"scrub", lapi_log_scrub},
    {"set_level", lapi_log_set_level},
    {"level", lapi_log_level},
    {"enabled", lapi_log_enabled},
    {"set_format", lapi_log_set_format},
    {"format", lapi_log_format},
    {NULL, NULL},
};

/* Pushes the `fox.log` table (+1). */
int luaopen_fox_log(lua_State *L) {
    static const char *const names[] = {"debug", "info", "warn", "error"};
    luaL_newlib(L, lapi_log_funcs);
    for (int i = 0; i < 4; i++) {
        lua_pushinteger(L, i);
        lua_pushcclosure(L, lapi_log_write, 1);
        lua_setfield(L, -2, names[i]);
    }
    return 1;
}
