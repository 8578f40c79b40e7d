/* fox.signal: a task waits for process signals (TERM, INT, HUP, USR1, USR2). */
#include <lauxlib.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "fox/lapi.h"
#include "fox/loop.h"
#include "fox/sched.h"

static const struct { const char *name; int signo; } lapi_signal_names[] = {
    {"TERM", SIGTERM}, {"INT", SIGINT}, {"HUP", SIGHUP}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
};
#define LAPI_SIGNAL_MAX 5

typedef struct signal_wait {
    sched_wait wait;
    struct event *events[LAPI_SIGNAL_MAX];
    int nevents;
    const char *received;
} signal_wait;

static void lapi_signal_fired(evutil_socket_t signo, short what, void *arg) {
    (void)what;
    signal_wait *sw = arg;
    for (size_t i = 0; i < LAPI_SIGNAL_MAX; i++)
        if (lapi_signal_names[i].signo == (int)signo) sw->received = lapi_signal_names[i].name;
    sched_wake(&sw->wait);
}

static int lapi_signal_push(lua_State *L, sched_wait *w) {
    lua_pushstring(L, ((signal_wait *)w)->received);
    return 1;
}

static void lapi_signal_release(sched_wait *w, int cancelled) {
    (void)cancelled;
    signal_wait *sw = (signal_wait *)w;
    for (int i = 0; i < sw->nevents; i++) event_free(sw->events[i]);
    free(sw);
}

/* wait(name, ...) -> the name of the first of those signals to arrive. While a task
 * waits, the signal no longer has its default effect. */
static int lapi_signal_wait(lua_State *L) {
    int n = lua_gettop(L);
    if (n < 1 || n > LAPI_SIGNAL_MAX) return luaL_error(L, "signal.wait expects 1 to 5 signal names");
    signal_wait *sw = calloc(1, sizeof *sw);
    if (!sw) return luaL_error(L, "out of memory");
    sw->wait.push = lapi_signal_push;
    sw->wait.release = lapi_signal_release;
    for (int a = 1; a <= n; a++) {
        const char *name = lua_tostring(L, a);
        int signo = 0;
        for (size_t i = 0; name && i < LAPI_SIGNAL_MAX; i++)
            if (strcmp(lapi_signal_names[i].name, name) == 0) signo = lapi_signal_names[i].signo;
        if (!signo) {
            lapi_signal_release(&sw->wait, 1);
            return luaL_argerror(L, a, "expected TERM, INT, HUP, USR1 or USR2");
        }
        sw->events[sw->nevents] = evsignal_new(loop_base(), signo, lapi_signal_fired, sw);
        event_add(sw->events[sw->nevents++], NULL);
    }
    return sched_suspend(L, &sw->wait);
}

int luaopen_fox_signal(lua_State *L) {
    static const luaL_Reg funcs[] = {{"wait", lapi_signal_wait}, {NULL, NULL}};
    luaL_newlib(L, funcs);
    return 1;
}
