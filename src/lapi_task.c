/* fox.task.core: spawn, wait, sleep, now, cancel, current. Bindings only. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "fox/lapi.h"
#include "fox/loop.h"
#include "fox/sched.h"
#include "fox/vm.h"

#define TASK_HANDLE "fox.task.handle"

typedef struct task_handle {
    fox_task *task;
} task_handle;

/* Pushes a handle for t (takes a reference on t). */
static void lapi_task_push_handle(lua_State *L, fox_task *t) {
    task_handle *h = lua_newuserdatauv(L, sizeof *h, 0);
    h->task = t;
    sched_task_retain(t);
    luaL_setmetatable(L, TASK_HANDLE);
}

static fox_task *lapi_task_check(lua_State *L, int idx) {
    task_handle *h = luaL_checkudata(L, idx, TASK_HANDLE);
    return h->task;
}

static double lapi_task_optnum(lua_State *L, int idx, const char *key) {
    lua_getfield(L, idx, key);
    double v = luaL_optnumber(L, -1, 0);
    lua_pop(L, 1);
    return v;
}

/* spawn([opts,] fn, ...) -> handle. Stack: the function and its arguments are moved
 * into the new task. */
static int lapi_task_spawn(lua_State *L) {
    sched_opts o = {0};
    int first = 1;
    if (lua_istable(L, 1)) {
        lua_getfield(L, 1, "name");
        o.name = lua_tostring(L, -1); /* stays alive: the opts table holds it */
        lua_pop(L, 1);
        o.timeout = lapi_task_optnum(L, 1, "timeout");
        o.cpu_limit = lapi_task_optnum(L, 1, "cpu_limit");
        first = 2;
    }
    luaL_checktype(L, first, LUA_TFUNCTION);
    int nargs = lua_gettop(L) - first;
    char err[256];
    /* The function and its arguments are the top nargs + 1 values; spawn moves them. */
    fox_task *t = sched_spawn(vm_gen_of(L), L, nargs, &o, err, sizeof err);
    if (!t) return luaL_error(L, "%s", err);
    lapi_task_push_handle(L, t);
    return 1;
}

/* wait(t) -> true, results... | false, err */
static int lapi_task_wait(lua_State *L) {
    fox_task *t = lapi_task_check(L, 1);
    return sched_join(L, t);
}

/* cancel(t [, reason]) -> true if it was running */
static int lapi_task_cancel(lua_State *L) {
    fox_task *t = lapi_task_check(L, 1);
    const char *reason = luaL_optstring(L, 2, "cancelled");
    int was_live = !sched_task_finished(t);
    if (t == sched_current()) return luaL_error(L, "%s", reason);
    sched_cancel(t, reason);
    lua_pushboolean(L, was_live);
    return 1;
}

typedef struct sleep_op {
    sched_wait wait;
    struct event *timer;
} sleep_op;

static void lapi_task_sleep_fired(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    sleep_op *op = arg;
    sched_wake(&op->wait);
}

static int lapi_task_sleep_push(lua_State *L, sched_wait *w) {
    (void)L, (void)w;
    return 0;
}

static void lapi_task_sleep_release(sched_wait *w, int cancelled) {
    (void)cancelled;
    sleep_op *op = (sleep_op *)w;
    event_free(op->timer); /* also removes a pending timer */
    free(op);
}

/* sleep(seconds): yields the task for at least that long (0 = next loop turn). */
static int lapi_task_sleep(lua_State *L) {
    double s = luaL_checknumber(L, 1);
    if (s < 0) s = 0;
    sleep_op *op = calloc(1, sizeof *op);
    if (!op) return luaL_error(L, "out of memory");
    op->wait.push = lapi_task_sleep_push;
    op->wait.release = lapi_task_sleep_release;
    op->timer = evtimer_new(loop_base(), lapi_task_sleep_fired, op);
    struct timeval tv = {(time_t)s, (suseconds_t)((s - (double)(time_t)s) * 1e6)};
    evtimer_add(op->timer, &tv);
    return sched_suspend(L, &op->wait);
}

/* Named notifications: process-wide (not per generation), so a request handled by a
 * new generation can wake a loop of the old one, and the other way round. */
typedef struct notify_wait {
    sched_wait wait;
    struct event *timer;
    struct notify_wait *next, **prevp;
    int notified;
    char name[64];
} notify_wait;

static notify_wait *notify_waiters;

static void lapi_task_notify_unlink(notify_wait *nw) {
    if (!nw->prevp) return;
    *nw->prevp = nw->next;
    if (nw->next) nw->next->prevp = nw->prevp;
    nw->prevp = NULL;
    nw->next = NULL;
}

static void lapi_task_notify_timeout(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    notify_wait *nw = arg;
    lapi_task_notify_unlink(nw);
    sched_wake(&nw->wait);
}

static int lapi_task_notify_push(lua_State *L, sched_wait *w) {
    lua_pushboolean(L, ((notify_wait *)w)->notified);
    return 1;
}

static void lapi_task_notify_release(sched_wait *w, int cancelled) {
    (void)cancelled;
    notify_wait *nw = (notify_wait *)w;
    lapi_task_notify_unlink(nw);
    if (nw->timer) event_free(nw->timer);
    free(nw);
}

/* wait_for(name [, timeout]) -> true when notify(name) came, false on timeout. */
static int lapi_task_wait_for(lua_State *L) {
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    double timeout = luaL_optnumber(L, 2, -1);
    luaL_argcheck(L, len > 0 && len < sizeof(((notify_wait *)0)->name), 1, "name must be 1 to 63 bytes");
    notify_wait *nw = calloc(1, sizeof *nw);
    if (!nw) return luaL_error(L, "out of memory");
    memcpy(nw->name, name, len);
    nw->wait.push = lapi_task_notify_push;
    nw->wait.release = lapi_task_notify_release;
    nw->next = notify_waiters;
    if (notify_waiters) notify_waiters->prevp = &nw->next;
    nw->prevp = &notify_waiters;
    notify_waiters = nw;
    if (timeout >= 0) {
        nw->timer = evtimer_new(loop_base(), lapi_task_notify_timeout, nw);
        struct timeval tv = {(time_t)timeout, (suseconds_t)((timeout - (double)(time_t)timeout) * 1e6)};
        evtimer_add(nw->timer, &tv);
    }
    return sched_suspend(L, &nw->wait);
}

/* notify(name) -> how many waiting tasks were woken. */
static int lapi_task_notify(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    int woken = 0;
    notify_wait *nw = notify_waiters;
    while (nw) {
        notify_wait *next = nw->next;
        if (strcmp(nw->name, name) == 0) {
            lapi_task_notify_unlink(nw);
            if (nw->timer) evtimer_del(nw->timer);
            nw->notified = 1;
            sched_wake(&nw->wait);
            woken++;
        }
        nw = next;
    }
    lua_pushinteger(L, woken);
    return 1;
}

static int lapi_task_now(lua_State *L) {
    lua_pushnumber(L, loop_now());
    return 1;
}

static int lapi_task_current(lua_State *L) {
    fox_task *t = sched_current();
    if (!t) return 0;
    lapi_task_push_handle(L, t);
    return 1;
}

static int lapi_task_handle_gc(lua_State *L) {
    task_handle *h = luaL_checkudata(L, 1, TASK_HANDLE);
    if (h->task) sched_task_release(h->task);
    h->task = NULL;
    return 0;
}

static int lapi_task_handle_index(lua_State *L) {
    fox_task *t = lapi_task_check(L, 1);
    const char *key = luaL_checkstring(L, 2);
    if (strcmp(key, "id") == 0) lua_pushinteger(L, (lua_Integer)sched_task_id(t));
    else if (strcmp(key, "name") == 0) lua_pushstring(L, sched_task_name(t));
    else if (strcmp(key, "status") == 0) lua_pushstring(L, sched_task_status(t));
    else lua_pushnil(L);
    return 1;
}

static int lapi_task_handle_tostring(lua_State *L) {
    fox_task *t = lapi_task_check(L, 1);
    lua_pushfstring(L, "task '%s' (#%d, %s)", sched_task_name(t), (int)sched_task_id(t),
                    sched_task_status(t));
    return 1;
}

static int lapi_task_handle_eq(lua_State *L) {
    lua_pushboolean(L, lapi_task_check(L, 1) == lapi_task_check(L, 2));
    return 1;
}

static int lapi_task_live(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)sched_live_tasks());
    return 1;
}

int luaopen_fox_task(lua_State *L) {
    static const luaL_Reg handle_meta[] = {
        {"__gc", lapi_task_handle_gc},
        {"__index", lapi_task_handle_index},
        {"__tostring", lapi_task_handle_tostring},
        {"__eq", lapi_task_handle_eq},
        {NULL, NULL},
    };
    static const luaL_Reg funcs[] = {
        {"spawn", lapi_task_spawn}, {"wait", lapi_task_wait},       {"cancel", lapi_task_cancel},
        {"sleep", lapi_task_sleep}, {"now", lapi_task_now},         {"current", lapi_task_current},
        {"live", lapi_task_live},   {"wait_for", lapi_task_wait_for}, {"notify", lapi_task_notify},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, TASK_HANDLE)) luaL_setfuncs(L, handle_meta, 0);
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    lua_pushlightuserdata(L, sched_io_yield_marker());
    lua_setfield(L, -2, "io_yield");
    return 1;
}
