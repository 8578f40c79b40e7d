/* Tasks: Lua coroutines resumed from the event loop. See include/fox/sched.h. */
#include "fox/sched.h"

#include <lauxlib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fox/log.h"
#include "fox/loop.h"
#include "fox/vm.h"

#define SCHED_HOOK_COUNT 10000
#define SCHED_DEFAULT_CPU_LIMIT 5.0

enum task_state { TASK_READY, TASK_RUNNING, TASK_WAITING, TASK_DONE, TASK_FAILED, TASK_CANCELLED };

typedef struct join_waiter join_waiter;

struct fox_task {
    unsigned long long id;
    char *name;
    vm_gen *gen;
    lua_State *L;        /* the task's thread */
    int thread_ref;      /* anchors L in the registry while the task struct lives */
    enum task_state state;
    int refs;            /* the scheduler while unfinished, handles, C holders */
    int start_nargs;     /* arguments of the first resume; -1 once started */
    sched_wait *wait;    /* what it waits on, while TASK_WAITING */
    int woken;           /* wait completed; resume on the ready pass */
    int in_ready;
    fox_task *ready_next;
    double cpu_limit;
    double slice_start;
    char *traceback;     /* "message\ntraceback" of a failed task */
    char *kill_msg;      /* set when the task must die; the hook keeps raising it */
    struct event *deadline_ev;
    double timeout;
    sched_done_fn done_fn;
    void *done_ud;
    join_waiter *joiners;
    int nres;            /* results (or 1 error) left on top of L when finished */
    int observed;        /* someone waited for the outcome (a failure is theirs to report) */
};

/* A task waiting in task.wait() for another task. */
struct join_waiter {
    sched_wait wait;
    fox_task *target;
    join_waiter *next;
};

static fox_task *sched_running;
static fox_task *ready_head, *ready_tail;
/* The rest of the batch sched_process_ready is running: a task in it can still be
 * cancelled by one that runs before it, and must then leave this list, not the ready
 * list (else the tasks behind it would be cut off and never run). */
static fox_task *batch_head;
static struct event *ready_event;
static unsigned long long next_task_id = 1;
static size_t live_tasks;
static double default_cpu_limit = SCHED_DEFAULT_CPU_LIMIT;
static volatile sig_atomic_t interrupt_requested;
static char io_yield_sentinel;

static void sched_process_ready(evutil_socket_t fd, short what, void *arg);
static void sched_deadline_fired(evutil_socket_t fd, short what, void *arg);

int sched_init(char *err, size_t errlen) {
    if (ready_event) return 0;
    ready_event = event_new(loop_base(), -1, 0, sched_process_ready, NULL);
    if (!ready_event) {
        snprintf(err, errlen, "cannot create the scheduler event");
        return -1;
    }
    const char *limit = getenv("FOX_TASK_CPU_LIMIT");
    if (limit && atof(limit) > 0) default_cpu_limit = atof(limit);
    return 0;
}

void sched_shutdown(void) {
    if (ready_event) event_free(ready_event);
    ready_event = NULL;
}

static void sched_enqueue(fox_task *t) {
    if (t->in_ready) return;
    t->in_ready = 1;
    t->ready_next = NULL;
    if (ready_tail) ready_tail->ready_next = t;
    else ready_head = t;
    ready_tail = t;
    if (ready_event) event_active(ready_event, 0, 0);
}

/* Unlinks t from the singly linked list at *head (and *tail when given); 1 if found. */
static int sched_unlink(fox_task **head, fox_task **tail, fox_task *t) {
    fox_task **pp = head, *prev = NULL;
    while (*pp && *pp != t) {
        prev = *pp;
        pp = &(*pp)->ready_next;
    }
    if (!*pp) return 0;
    *pp = t->ready_next;
    if (tail && *tail == t) *tail = prev;
    return 1;
}

static void sched_dequeue(fox_task *t) {
    if (!t->in_ready) return;
    if (!sched_unlink(&ready_head, &ready_tail, t)) sched_unlink(&batch_head, NULL, t);
    t->in_ready = 0;
    t->ready_next = NULL;
}

/* Instruction hook: ends a task that ran too long without yielding, or was killed or
 * interrupted. It keeps raising on every call, so a pcall cannot swallow the kill. */
static void sched_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    fox_task *t = sched_running;
    if (!t) return;
    if (interrupt_requested) {
        interrupt_requested = 0;
        if (!t->kill_msg) t->kill_msg = strdup("interrupted");
    }
    if (!t->kill_msg && t->cpu_limit > 0 && loop_now() - t->slice_start > t->cpu_limit) {
        char buf[256];
        snprintf(buf, sizeof buf,
                 "task '%s' (#%llu) ran for more than %.1f s without yielding and was stopped "
                 "(runaway loop?)",
                 t->name, t->id, t->cpu_limit);
        t->kill_msg = strdup(buf);
    }
    if (t->kill_msg) {
        /* From now on check every instruction, so that code which catches the error
         * (pcall in a loop) hits it again at once in the catching frame. */
        lua_sethook(L, sched_hook, LUA_MASKCOUNT, 1);
        luaL_error(L, "%s", t->kill_msg);
    }
}

void sched_interrupt_running(void) { interrupt_requested = 1; }

void sched_interrupt_reset(void) { interrupt_requested = 0; }

/* Creates a thread anchored in the registry; returns the thread and its ref. */
static int sched_new_thread(lua_State *L) {
    lua_newthread(L);
    lua_pushvalue(L, -1);
    lua_pushinteger(L, luaL_ref(L, LUA_REGISTRYINDEX));
    return 2;
}

fox_task *sched_spawn(vm_gen *g, lua_State *from, int nargs, const sched_opts *o, char *err,
                      size_t errlen) {
    fox_task *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        lua_pop(from, nargs + 1);
        return NULL;
    }
    /* Allocating can fail at the memory cap: do it protected, never panic. */
    lua_pushcfunction(from, sched_new_thread);
    if (lua_pcall(from, 0, 2, 0) != LUA_OK) {
        snprintf(err, errlen, "cannot start a task: %s", lua_tostring(from, -1));
        lua_pop(from, nargs + 2);
        free(t);
        return NULL;
    }
    lua_State *co = lua_tothread(from, -2);
    t->thread_ref = (int)lua_tointeger(from, -1);
    lua_pop(from, 2);
    lua_xmove(from, co, nargs + 1);
    lua_sethook(co, sched_hook, LUA_MASKCOUNT, SCHED_HOOK_COUNT);
    t->id = next_task_id++;
    char fallback[32];
    snprintf(fallback, sizeof fallback, "task-%llu", t->id);
    t->name = strdup(o && o->name && *o->name ? o->name : fallback);
    t->gen = g;
    t->L = co;
    t->state = TASK_READY;
    t->refs = 1;
    t->start_nargs = nargs;
    t->cpu_limit = o && o->cpu_limit > 0 ? o->cpu_limit : default_cpu_limit;
    t->timeout = o ? o->timeout : 0;
    vm_gen_retain(g);
    live_tasks++;
    if (t->timeout > 0) {
        t->deadline_ev = evtimer_new(loop_base(), sched_deadline_fired, t);
        struct timeval tv = {(time_t)t->timeout, (suseconds_t)((t->timeout - (time_t)t->timeout) * 1e6)};
        evtimer_add(t->deadline_ev, &tv);
    }
    sched_enqueue(t);
    return t;
}

void sched_on_done(fox_task *t, sched_done_fn fn, void *ud) {
    t->done_fn = fn;
    t->done_ud = ud;
}

void sched_task_retain(fox_task *t) { t->refs++; }

void sched_task_release(fox_task *t) {
    if (--t->refs > 0) return;
    if (t->state == TASK_FAILED && !t->observed) {
        /* Nobody ever looked at this failure: report it so that it is not lost. */
        log_msgf(LOG_LEVEL_WARN, "task.failed", "task '%s' (#%llu) failed: %s", t->name, t->id,
                 t->traceback ? t->traceback : "?");
    }
    vm_gen *g = t->gen;
    luaL_unref(g->L, LUA_REGISTRYINDEX, t->thread_ref);
    if (t->deadline_ev) event_free(t->deadline_ev);
    free(t->kill_msg);
    free(t->traceback);
    free(t->name);
    free(t);
    vm_gen_release(g);
}

/* Runs on the generation's main thread, protected: "message\ntraceback" of the dead
 * coroutine (arg 1, a light userdata) for the error value (arg 2). */
static int sched_traceback(lua_State *L) {
    lua_State *co = lua_touserdata(L, 1);
    const char *msg = luaL_tolstring(L, 2, NULL);
    luaL_traceback(L, co, msg, 0);
    return 1;
}

/* After a task failed: records its traceback, resets its thread (dropping everything
 * the dead stack held, which matters after a memory error) and leaves only the error
 * value on it. A memory error becomes a message naming the task. */
static void sched_record_error(fox_task *t, int status) {
    lua_State *co = t->L, *main = t->gen->L;
    int base = lua_gettop(main);
    lua_xmove(co, main, 1); /* the error value, kept on the main thread meanwhile */
    if (status != LUA_ERRMEM) {
        lua_pushcfunction(main, sched_traceback);
        lua_pushlightuserdata(main, co);
        lua_pushvalue(main, base + 1);
        if (lua_pcall(main, 2, 1, 0) == LUA_OK) {
            free(t->traceback);
            t->traceback = strdup(lua_tostring(main, -1));
        }
        lua_settop(main, base + 1);
    }
    lua_resetthread(co);
    lua_settop(co, 0);
    if (status == LUA_ERRMEM) {
        lua_settop(main, base);
        lua_gc(main, LUA_GCCOLLECT);
        char msg[256];
        snprintf(msg, sizeof msg,
                 "task '%s' (#%llu) ran out of memory: the generation's limit of %zu MiB is reached",
                 t->name, t->id, t->gen->mem_limit >> 20);
        free(t->traceback);
        t->traceback = strdup(msg);
        lua_pushstring(main, msg);
    }
    lua_xmove(main, co, 1);
    lua_settop(main, base);
}

static void sched_finish(fox_task *t, enum task_state final, int nres) {
    t->state = final;
    t->nres = nres;
    live_tasks--;
    if (t->deadline_ev) evtimer_del(t->deadline_ev);
    if (t->done_fn || t->joiners) t->observed = 1;
    if (t->done_fn) t->done_fn(t, final == TASK_DONE, t->L, nres, t->done_ud);
    for (join_waiter *j = t->joiners; j; j = j->next) sched_wake(&j->wait);
    t->joiners = NULL;
    sched_task_release(t);
}

static void sched_resume(fox_task *t, int nargs) {
    fox_task *prev = sched_running;
    sched_running = t;
    t->state = TASK_RUNNING;
    t->slice_start = loop_now();
    int nres = 0;
    int status = lua_resume(t->L, NULL, nargs, &nres);
    sched_running = prev;
    if (status == LUA_YIELD) {
        lua_pop(t->L, nres);
        if (t->wait) {
            t->state = TASK_WAITING;
        } else {
            /* A plain coroutine.yield at the top of a task: run again next turn. */
            t->state = TASK_READY;
            t->start_nargs = 0;
            sched_enqueue(t);
        }
        return;
    }
    if (status == LUA_OK) {
        sched_finish(t, TASK_DONE, nres);
        return;
    }
    sched_record_error(t, status);
    sched_finish(t, t->kill_msg && strcmp(t->kill_msg, "cancelled") == 0 ? TASK_CANCELLED : TASK_FAILED, 1);
}

static void sched_process_ready(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what, (void)arg;
    /* Only the tasks ready now: tasks made ready meanwhile re-arm the event. */
    batch_head = ready_head;
    ready_head = ready_tail = NULL;
    while (batch_head) {
        fox_task *t = batch_head;
        batch_head = t->ready_next;
        t->ready_next = NULL;
        t->in_ready = 0;
        sched_task_retain(t);
        if (t->state == TASK_READY && t->start_nargs >= 0) {
            int nargs = t->start_nargs;
            t->start_nargs = -1;
            sched_resume(t, nargs);
        } else if (t->state == TASK_WAITING && t->woken && t->wait) {
            sched_wait *w = t->wait;
            t->wait = NULL;
            t->woken = 0;
            int n = w->push(t->L, w);
            w->release(w, 0);
            sched_resume(t, n);
        }
        sched_task_release(t);
    }
}

int sched_suspend(lua_State *L, sched_wait *w) {
    fox_task *t = sched_running;
    const char *problem = NULL;
    if (!t) problem = "this call must run inside a fox task";
    else if (t->kill_msg) problem = t->kill_msg;
    else if (!lua_isyieldable(L))
        problem = "cannot wait here: the call is inside a metamethod, an iterator or a C "
                  "function that cannot yield";
    if (problem) {
        lua_pushstring(L, problem);
        w->release(w, 1);
        return lua_error(L);
    }
    w->task = t;
    w->queued = 0;
    t->wait = w;
    t->woken = 0;
    lua_pushlightuserdata(L, &io_yield_sentinel);
    return lua_yield(L, 1);
}

void sched_wake(sched_wait *w) {
    fox_task *t = w->task;
    if (!t || t->wait != w || w->queued) return;
    w->queued = 1;
    t->woken = 1;
    sched_enqueue(t);
}

void sched_cancel(fox_task *t, const char *reason) {
    if (t->state == TASK_DONE || t->state == TASK_FAILED || t->state == TASK_CANCELLED) return;
    if (!reason) reason = "cancelled";
    if (t == sched_running || t->state == TASK_RUNNING) {
        /* Cannot unwind a running coroutine from here: the hook raises at its next check. */
        if (!t->kill_msg) t->kill_msg = strdup(reason);
        return;
    }
    sched_task_retain(t);
    sched_dequeue(t);
    if (t->wait) {
        sched_wait *w = t->wait;
        t->wait = NULL;
        w->release(w, 1);
    }
    if (!t->kill_msg) t->kill_msg = strdup(reason);
    /* Closes pending to-be-closed variables and empties the stack. */
    lua_resetthread(t->L);
    lua_settop(t->L, 0);
    lua_pushstring(t->L, reason);
    sched_finish(t, TASK_CANCELLED, 1);
    sched_task_release(t);
}

static void sched_deadline_fired(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    fox_task *t = arg;
    char buf[256];
    snprintf(buf, sizeof buf, "task '%s' (#%llu) exceeded its deadline of %.3g s", t->name, t->id,
             t->timeout);
    sched_cancel(t, buf);
}

fox_task *sched_current(void) { return sched_running; }
vm_gen *sched_task_gen(const fox_task *t) { return t->gen; }
const char *sched_task_name(const fox_task *t) { return t->name; }
unsigned long long sched_task_id(const fox_task *t) { return t->id; }
lua_State *sched_task_thread(const fox_task *t) { return t->L; }
size_t sched_live_tasks(void) { return live_tasks; }

int sched_task_finished(const fox_task *t) {
    return t->state == TASK_DONE || t->state == TASK_FAILED || t->state == TASK_CANCELLED;
}

const char *sched_task_traceback(const fox_task *t) { return t->traceback; }

const char *sched_task_status(const fox_task *t) {
    static const char *names[] = {"ready", "running", "suspended", "done", "failed", "cancelled"};
    return names[t->state];
}

void *sched_io_yield_marker(void) { return &io_yield_sentinel; }

int sched_push_outcome(lua_State *L, fox_task *target) {
    lua_State *src = target->L;
    int ok = target->state == TASK_DONE;
    int n = target->nres;
    luaL_checkstack(L, n + 2, "too many results");
    lua_pushboolean(L, ok);
    for (int i = 0; i < n; i++) {
        lua_pushvalue(src, -n + i);
        lua_xmove(src, L, 1);
    }
    return n + 1;
}

/* task.wait support: copies the finished target's outcome onto L. */
static int sched_join_push(lua_State *L, sched_wait *w) {
    join_waiter *j = (join_waiter *)w;
    return sched_push_outcome(L, j->target);
}

static void sched_join_release(sched_wait *w, int cancelled) {
    join_waiter *j = (join_waiter *)w;
    if (cancelled) {
        join_waiter **pp = &j->target->joiners;
        while (*pp && *pp != j) pp = &(*pp)->next;
        if (*pp) *pp = j->next;
    }
    sched_task_release(j->target);
    free(j);
}

int sched_join(lua_State *L, fox_task *target) {
    target->observed = 1;
    if (sched_task_finished(target)) return sched_push_outcome(L, target);
    if (target == sched_running) return luaL_error(L, "a task cannot wait for itself");
    join_waiter *j = calloc(1, sizeof *j);
    if (!j) return luaL_error(L, "out of memory");
    j->wait.push = sched_join_push;
    j->wait.release = sched_join_release;
    j->target = target;
    sched_task_retain(target);
    j->next = target->joiners;
    target->joiners = j;
    return sched_suspend(L, &j->wait);
}
