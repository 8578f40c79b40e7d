/* Lua module `fox.state`: bindings over state.c (durable state).
 *
 *   local state = require "fox.state"
 *   local st, err = state.open(dir)           -- state object, or nil, err
 *   st:get(ns, key)                 -> value | nil            (nil, err on failure)
 *   st:set(ns, key, value [, ttl])  -> true                   ttl seconds, 0/nil = forever
 *   st:write({ {ns, key, value [, ttl]}, ... }) -> true       all rows in one transaction,
 *                                   committed together with other tasks' (group commit)
 *   st:delete(ns, key)              -> true
 *   st:claim(ns, key, owner, ttl)   -> true | false, holder, holder_expires_at
 *   st:release(ns, key, owner)      -> true (was owner's) | false
 *   st:list(ns [, prefix [, limit]])-> { {key=, value=, expires_at=}, ... } in key order
 *   st:purge([limit])               -> number of expired rows deleted
 *   st:stats()                      -> {commits=, failed=, rows=, writes=} of the group
 *                                   commits so far (writes: st:write calls they held)
 *   st:path()                       -> the database file
 *   st:close()                      (also __gc and __close)
 *
 * The calls are synchronous: SQLite on a local disk, one short transaction each, so they
 * do not yield and work inside or outside a task. Except write: inside a task it joins
 * the handle's open group (state_group.h) and yields until the transaction holding its
 * rows has committed (true) or failed (nil, err: none of its rows were stored); rows
 * of the tasks that write during one loop turn share one commit and one fsync. Outside
 * a task (or where it cannot yield) it commits its rows at once. Every call that writes
 * at once (set, delete, claim, release, purge) first commits the open group, so writes
 * reach the disk in the order they were made. Misuse (wrong types, empty or
 * over-long names, names with NUL bytes, negative ttl, a closed object) raises; disk
 * and database failures return nil, err.
 *
 * Sharing: one process holds a state directory at a time (state.c locks it), but every
 * generation of a hot-reloaded process, and every module in it, may call open(dir).
 * So the C handles are process-wide and reference counted by directory: open(dir) of a
 * directory this process already has open returns a new object over the same handle,
 * and the handle closes when its last object is closed or collected. */
#include "fox/lapi.h"
#include "fox/sched.h"
#include "fox/state.h"
#include "fox/state_group.h"

#include <lauxlib.h>
#include <lua.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define STATE_OBJECT "fox.state"
#define STATE_BOX    "fox.state.box"

/* One open directory, shared by every Lua object over it. */
typedef struct lapi_state_handle {
    state *st;
    state_group *group;   /* created by the first write in a task */
    int refs;             /* Lua objects, and writes waiting for their commit */
    struct lapi_state_handle *next;
} lapi_state_handle;

static lapi_state_handle *lapi_state_handles;

typedef struct lapi_state_obj {
    lapi_state_handle *h;   /* NULL once closed */
} lapi_state_obj;

/* Holds C allocations while Lua values are built from them, so that a Lua memory
 * error (the generation's cap) raised mid-way does not leak them: __gc frees. */
typedef struct lapi_state_box {
    char *bytes;
    state_entry *entries;
    size_t count;
} lapi_state_box;

static void lapi_state_box_clear(lapi_state_box *b) {
    free(b->bytes);
    state_entries_free(b->entries, b->count);
    b->bytes = NULL;
    b->entries = NULL;
    b->count = 0;
}

static int lapi_state_box_gc(lua_State *L) {
    lapi_state_box_clear(luaL_checkudata(L, 1, STATE_BOX));
    return 0;
}

static lapi_state_box *lapi_state_push_box(lua_State *L) {
    lapi_state_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    memset(b, 0, sizeof *b);
    luaL_setmetatable(L, STATE_BOX);
    return b;
}

static void lapi_state_handle_release(lapi_state_handle *h) {
    if (--h->refs > 0) return;
    for (lapi_state_handle **p = &lapi_state_handles; *p; p = &(*p)->next) {
        if (*p == h) {
            *p = h->next;
            break;
        }
    }
    state_group_free(h->group);
    state_close(h->st);
    free(h);
}

static int lapi_state_fail(lua_State *L, const char *err) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    return 2;
}

static state *lapi_state_check(lua_State *L) {
    lapi_state_obj *o = luaL_checkudata(L, 1, STATE_OBJECT);
    if (!o->h) luaL_error(L, "fox.state: object is closed");
    return o->h->st;
}

/* The state of a call that writes at once. The open group (rows other tasks are
 * waiting to commit) is committed first, so that writes reach the disk in the order
 * they were made: a st:set after a st:write of the same key is not undone by the
 * group's later commit. */
static state *lapi_state_check_writer(lua_State *L) {
    state *st = lapi_state_check(L);
    lapi_state_handle *h = ((lapi_state_obj *)lua_touserdata(L, 1))->h;
    if (h->group) state_group_flush(h->group);
    return st;
}

/* A namespace, key or owner: a string of 1..STATE_MAX_NAME bytes without NULs. */
static const char *lapi_state_check_name(lua_State *L, int idx, const char *what) {
    size_t len;
    const char *s = luaL_checklstring(L, idx, &len);
    if (len == 0 || len > STATE_MAX_NAME)
        luaL_argerror(L, idx, lua_pushfstring(L, "%s must be 1 to %d bytes", what,
                                              STATE_MAX_NAME));
    if (strlen(s) != len)
        luaL_argerror(L, idx, lua_pushfstring(L, "%s must not contain NUL bytes", what));
    return s;
}

/* Seconds, rounded up so a fractional ttl never lasts less than asked; 0 = forever. */
static int64_t lapi_state_check_ttl(lua_State *L, int idx, int optional) {
    if (optional && lua_isnoneornil(L, idx)) return 0;
    lua_Number t = luaL_checknumber(L, idx);
    if (!(t >= 0)) luaL_argerror(L, idx, "ttl must be a number of seconds >= 0");
    if (t >= 9.2e18) return INT64_MAX;   /* also inf */
    return (int64_t)ceil(t);
}

/* open(dir) -> state object, or nil, err. */
static int lapi_state_open(lua_State *L) {
    size_t len;
    const char *dir = luaL_checklstring(L, 1, &len);
    if (len == 0 || strlen(dir) != len)
        luaL_argerror(L, 1, "a directory name without NUL bytes expected");
    lapi_state_obj *o = lua_newuserdatauv(L, sizeof *o, 0);
    o->h = NULL;
    luaL_setmetatable(L, STATE_OBJECT);

    lapi_state_handle *h = NULL;
    char *real = realpath(dir, NULL);
    if (real) {
        for (h = lapi_state_handles; h; h = h->next)
            if (strcmp(state_dir(h->st), real) == 0) break;
        free(real);
    }
    if (h) {
        h->refs++;
        o->h = h;
        return 1;
    }
    char err[1024];
    state *st = NULL;
    if (state_open(dir, &st, err, sizeof err) < 0) return lapi_state_fail(L, err);
    h = calloc(1, sizeof *h);
    if (!h) {
        state_close(st);
        return lapi_state_fail(L, "fox.state: out of memory");
    }
    h->st = st;
    h->refs = 1;
    h->next = lapi_state_handles;
    lapi_state_handles = h;
    o->h = h;
    return 1;
}

/* get(ns, key) -> value, or nil when absent or expired; nil, err on failure. */
static int lapi_state_get(lua_State *L) {
    state *st = lapi_state_check(L);
    const char *ns = lapi_state_check_name(L, 2, "namespace");
    const char *key = lapi_state_check_name(L, 3, "key");
    lapi_state_box *box = lapi_state_push_box(L);
    char err[1024];
    size_t len = 0;
    int rc = state_get(st, ns, key, &box->bytes, &len, err, sizeof err);
    if (rc < 0) return lapi_state_fail(L, err);
    if (rc == 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushlstring(L, box->bytes, len);
    lapi_state_box_clear(box);
    return 1;
}

/* set(ns, key, value [, ttl]) -> true, or nil, err. */
static int lapi_state_set(lua_State *L) {
    state *st = lapi_state_check_writer(L);
    const char *ns = lapi_state_check_name(L, 2, "namespace");
    const char *key = lapi_state_check_name(L, 3, "key");
    luaL_checktype(L, 4, LUA_TSTRING);   /* callers encode (JSON); no silent tostring */
    size_t len;
    const char *value = lua_tolstring(L, 4, &len);
    int64_t ttl = lapi_state_check_ttl(L, 5, 1);
    char err[1024];
    if (state_set(st, ns, key, value, len, ttl, err, sizeof err) < 0)
        return lapi_state_fail(L, err);
    lua_pushboolean(L, 1);
    return 1;
}

/* A task waiting in st:write() for its group's commit. */
typedef struct lapi_state_write_op {
    sched_wait wait;
    lapi_state_handle *h;          /* held until release */
    state_group_member *member;    /* NULL once the outcome is known */
    int ok;
    char *err;
} lapi_state_write_op;

static void lapi_state_write_done(void *ud, int ok, const char *err) {
    lapi_state_write_op *op = ud;
    op->member = NULL;
    op->ok = ok;
    if (!ok) op->err = strdup(err && *err ? err : "state: commit failed");
    sched_wake(&op->wait);
}

static int lapi_state_write_push(lua_State *L, sched_wait *w) {
    lapi_state_write_op *op = (lapi_state_write_op *)w;
    if (op->ok) {
        lua_pushboolean(L, 1);
        return 1;
    }
    luaL_pushfail(L);
    lua_pushstring(L, op->err ? op->err : "state: out of memory");
    return 2;
}

static void lapi_state_write_release(sched_wait *w, int cancelled) {
    lapi_state_write_op *op = (lapi_state_write_op *)w;
    (void)cancelled;
    /* A cancelled task's rows leave the group unless it already committed. */
    if (op->member) state_group_leave(op->member);
    lapi_state_handle_release(op->h);
    free(op->err);
    free(op);
}

/* Field i of the row table on top: a name string, checked like the arguments of set. */
static const char *lapi_state_row_name(lua_State *L, int row, int i, const char *what) {
    size_t len = 0;
    const char *s = lua_geti(L, -1, i) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (!s || len == 0 || len > STATE_MAX_NAME || strlen(s) != len)
        luaL_error(L, "fox.state: write: row %d: %s must be a string of 1 to %d bytes "
                   "without NUL bytes", row, what, STATE_MAX_NAME);
    lua_pop(L, 1);   /* still referenced by the row table */
    return s;
}

/* Reads the rows argument at idx into a state_write array in a userdata left on the
 * stack (the strings stay referenced by the rows table). Raises on misuse. */
static state_write *lapi_state_check_rows(lua_State *L, int idx, size_t *count) {
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_Integer n = luaL_len(L, idx);
    if (n < 1 || n > STATE_GROUP_MAX_ROWS)
        luaL_argerror(L, idx, lua_pushfstring(L, "1 to %d rows expected",
                                              STATE_GROUP_MAX_ROWS));
    state_write *rows = lua_newuserdatauv(L, (size_t)n * sizeof *rows, 0);
    for (int i = 1; i <= (int)n; i++) {
        if (lua_geti(L, idx, i) != LUA_TTABLE)
            luaL_error(L, "fox.state: write: row %d is not a table {ns, key, value [, ttl]}", i);
        state_write *w = &rows[i - 1];
        w->ns = lapi_state_row_name(L, i, 1, "the namespace");
        w->key = lapi_state_row_name(L, i, 2, "the key");
        if (lua_geti(L, -1, 3) != LUA_TSTRING)   /* callers encode; no silent tostring */
            luaL_error(L, "fox.state: write: row %d: the value must be a string", i);
        w->value = lua_tolstring(L, -1, &w->len);
        lua_pop(L, 1);
        int isnum = 0;
        lua_Number t = 0;
        if (lua_geti(L, -1, 4) != LUA_TNIL) t = lua_tonumberx(L, -1, &isnum);
        else isnum = 1;
        if (!isnum || !(t >= 0))
            luaL_error(L, "fox.state: write: row %d: ttl must be a number of seconds >= 0", i);
        w->ttl = t >= 9.2e18 ? INT64_MAX : (int64_t)ceil(t);   /* as set's ttl */
        lua_pop(L, 2);
    }
    *count = (size_t)n;
    return rows;
}

/* write(rows) -> true once every row is durable (one transaction), or nil, err when the
 * transaction failed (no row stored). rows: { {ns, key, value [, ttl]}, ... }. */
static int lapi_state_write(lua_State *L) {
    state *st = lapi_state_check(L);
    lapi_state_handle *h = ((lapi_state_obj *)lua_touserdata(L, 1))->h;
    size_t n = 0;
    state_write *rows = lapi_state_check_rows(L, 2, &n);
    char err[1024];
    if (!h->group && sched_current() && lua_isyieldable(L)) h->group = state_group_new(st);
    if (!h->group || !sched_current() || !lua_isyieldable(L)) {
        if (h->group) state_group_flush(h->group);   /* keeps the order of writes */
        if (state_write_many(st, rows, n, err, sizeof err) < 0) return lapi_state_fail(L, err);
        lua_pushboolean(L, 1);
        return 1;
    }
    lapi_state_write_op *op = calloc(1, sizeof *op);
    if (!op) return lapi_state_fail(L, "fox.state: out of memory");
    op->member = state_group_join(h->group, rows, n, lapi_state_write_done, op, err,
                                  sizeof err);
    if (!op->member) {
        free(op);
        return lapi_state_fail(L, err);
    }
    op->h = h;
    h->refs++;
    op->wait.push = lapi_state_write_push;
    op->wait.release = lapi_state_write_release;
    return sched_suspend(L, &op->wait);
}

/* delete(ns, key) -> true, or nil, err. */
static int lapi_state_delete(lua_State *L) {
    state *st = lapi_state_check_writer(L);
    const char *ns = lapi_state_check_name(L, 2, "namespace");
    const char *key = lapi_state_check_name(L, 3, "key");
    char err[1024];
    if (state_delete(st, ns, key, err, sizeof err) < 0) return lapi_state_fail(L, err);
    lua_pushboolean(L, 1);
    return 1;
}

/* claim(ns, key, owner, ttl) -> true, or false, holder, holder_expires_at (0 = never),
 * or nil, err. */
static int lapi_state_claim(lua_State *L) {
    state *st = lapi_state_check_writer(L);
    const char *ns = lapi_state_check_name(L, 2, "namespace");
    const char *key = lapi_state_check_name(L, 3, "key");
    const char *owner = lapi_state_check_name(L, 4, "owner");
    int64_t ttl = lapi_state_check_ttl(L, 5, 0);
    lapi_state_box *box = lapi_state_push_box(L);
    int64_t expires = 0;
    char err[1024];
    int rc = state_claim(st, ns, key, owner, ttl, &box->bytes, &expires, err, sizeof err);
    if (rc < 0) return lapi_state_fail(L, err);
    if (rc == 1) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_pushstring(L, box->bytes ? box->bytes : "");
    lua_pushinteger(L, (lua_Integer)expires);
    lapi_state_box_clear(box);
    return 3;
}

/* release(ns, key, owner) -> true when owner's claim was released, false when owner did
 * not hold it; nil, err on failure. */
static int lapi_state_release(lua_State *L) {
    state *st = lapi_state_check_writer(L);
    const char *ns = lapi_state_check_name(L, 2, "namespace");
    const char *key = lapi_state_check_name(L, 3, "key");
    const char *owner = lapi_state_check_name(L, 4, "owner");
    char err[1024];
    int rc = state_release(st, ns, key, owner, err, sizeof err);
    if (rc < 0) return lapi_state_fail(L, err);
    lua_pushboolean(L, rc);
    return 1;
}

/* list(ns [, prefix [, limit]]) -> array of {key=, value=, expires_at=} in key order
 * (limit nil/0 = all), or nil, err. */
static int lapi_state_list(lua_State *L) {
    state *st = lapi_state_check(L);
    const char *ns = lapi_state_check_name(L, 2, "namespace");
    size_t plen = 0;
    const char *prefix = luaL_optlstring(L, 3, "", &plen);
    if (plen > STATE_MAX_NAME || strlen(prefix) != plen)
        luaL_argerror(L, 3, "prefix must be at most the key size, without NUL bytes");
    lua_Integer limit = luaL_optinteger(L, 4, 0);
    luaL_argcheck(L, limit >= 0, 4, "limit must be >= 0 (0 = no limit)");
    lapi_state_box *box = lapi_state_push_box(L);
    char err[1024];
    if (state_list(st, ns, prefix, (size_t)limit, &box->entries, &box->count, err,
                   sizeof err) < 0)
        return lapi_state_fail(L, err);
    lua_createtable(L, (int)(box->count < INT32_MAX ? box->count : 0), 0);
    for (size_t i = 0; i < box->count; i++) {
        const state_entry *e = &box->entries[i];
        lua_createtable(L, 0, 3);
        lua_pushstring(L, e->key);
        lua_setfield(L, -2, "key");
        lua_pushlstring(L, e->value, e->value_len);
        lua_setfield(L, -2, "value");
        lua_pushinteger(L, (lua_Integer)e->expires_at);
        lua_setfield(L, -2, "expires_at");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lapi_state_box_clear(box);
    return 1;
}

/* purge([limit]) -> number of expired rows deleted (limit nil/0 = all), or nil, err. */
static int lapi_state_purge(lua_State *L) {
    state *st = lapi_state_check_writer(L);
    lua_Integer limit = luaL_optinteger(L, 2, 0);
    luaL_argcheck(L, limit >= 0, 2, "limit must be >= 0 (0 = no limit)");
    size_t deleted = 0;
    char err[1024];
    if (state_purge(st, (size_t)limit, &deleted, err, sizeof err) < 0)
        return lapi_state_fail(L, err);
    lua_pushinteger(L, (lua_Integer)deleted);
    return 1;
}

/* stats() -> {commits=, failed=, rows=, writes=}: the group commits of this directory
 * (process-wide, every object over it), for /metrics and the benchmarks. */
static int lapi_state_stats(lua_State *L) {
    lapi_state_check(L);
    lapi_state_handle *h = ((lapi_state_obj *)lua_touserdata(L, 1))->h;
    state_group_stats s = {0};
    if (h->group) s = state_group_get_stats(h->group);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)s.commits);
    lua_setfield(L, -2, "commits");
    lua_pushinteger(L, (lua_Integer)s.failed);
    lua_setfield(L, -2, "failed");
    lua_pushinteger(L, (lua_Integer)s.rows);
    lua_setfield(L, -2, "rows");
    lua_pushinteger(L, (lua_Integer)s.members);
    lua_setfield(L, -2, "writes");
    return 1;
}

/* path() -> the database file of this state. */
static int lapi_state_path(lua_State *L) {
    lua_pushstring(L, state_db_path(lapi_state_check(L)));
    return 1;
}

/* close(): releases this object's hold on the directory; idempotent. Also __gc and
 * __close (which passes an extra error argument, ignored). */
static int lapi_state_close(lua_State *L) {
    lapi_state_obj *o = luaL_checkudata(L, 1, STATE_OBJECT);
    if (o->h) {
        lapi_state_handle *h = o->h;
        o->h = NULL;
        lapi_state_handle_release(h);
    }
    return 0;
}

static int lapi_state_tostring(lua_State *L) {
    lapi_state_obj *o = luaL_checkudata(L, 1, STATE_OBJECT);
    if (o->h)
        lua_pushfstring(L, "fox.state (%s)", state_db_path(o->h->st));
    else
        lua_pushliteral(L, "fox.state (closed)");
    return 1;
}

static const luaL_Reg lapi_state_funcs[] = {
    {"open", lapi_state_open},
    {NULL, NULL},
};

static const luaL_Reg lapi_state_methods[] = {
    {"get", lapi_state_get},
    {"set", lapi_state_set},
    {"write", lapi_state_write},
    {"delete", lapi_state_delete},
    {"claim", lapi_state_claim},
    {"release", lapi_state_release},
    {"list", lapi_state_list},
    {"purge", lapi_state_purge},
    {"stats", lapi_state_stats},
    {"path", lapi_state_path},
    {"close", lapi_state_close},
    {NULL, NULL},
};

static const luaL_Reg lapi_state_meta[] = {
    {"__gc", lapi_state_close},
    {"__close", lapi_state_close},
    {"__tostring", lapi_state_tostring},
    {NULL, NULL},
};

/* Opens `fox.state`: pushes the module table; registers the object and box metatables
 * in this lua_State's registry. */
int luaopen_fox_state(lua_State *L) {
    if (luaL_newmetatable(L, STATE_BOX)) {
        lua_pushcfunction(L, lapi_state_box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, STATE_OBJECT)) {
        luaL_setfuncs(L, lapi_state_meta, 0);
        luaL_newlib(L, lapi_state_methods);
        lua_setfield(L, -2, "__index");
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");   /* scripts cannot swap the methods */
    }
    lua_pop(L, 1);
    luaL_newlib(L, lapi_state_funcs);
    return 1;
}
