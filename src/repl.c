/* fox repl: read a chunk, run it as a task on the loop, print its results. */
#include "fox/repl.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>

#include "fox/loop.h"
#include "fox/sched.h"

const char *repl_usage =
    "usage: fox repl\n"
    "\n"
    "An interactive Lua 5.4 prompt inside fox: every chunk runs as a task, so\n"
    "require('fox.http').request{...} and require('fox.task').sleep(1) work at the prompt.\n"
    "Expressions print their values; an incomplete chunk asks for more (>>).\n"
    "Ctrl-C interrupts the running chunk; Ctrl-D exits. History in ~/.fox_history.\n"
    "When stdin is not a terminal, chunks are read from stdin and their results printed:\n"
    "  echo 'return 1+1' | fox repl\n";

typedef struct repl_state {
    fox_task *running;
    int failed;
    struct event *interrupt_ev;
    int interrupt_pipe[2];
} repl_state;

static repl_state repl;

static void repl_on_sigint(int sig) {
    (void)sig;
    sched_interrupt_running();
    if (repl.interrupt_pipe[1] >= 0) {
        ssize_t w = write(repl.interrupt_pipe[1], "i", 1);
        (void)w;
    }
}

/* A Ctrl-C that arrives while the chunk waits on I/O: cancel it from the loop. */
static void repl_interrupt_cb(evutil_socket_t fd, short what, void *arg) {
    (void)what, (void)arg;
    char buf[64];
    while (read(fd, buf, sizeof buf) > 0) {
    }
    if (repl.running) sched_cancel(repl.running, "interrupted");
}

/* Prints the chunk's results through fox.repl.format (tables shown, secrets scrubbed). */
static void repl_print_results(lua_State *L, int nres) {
    if (nres == 0) return;
    int base = lua_gettop(L) - nres;
    lua_getglobal(L, "require");
    lua_pushstring(L, "fox.repl");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        lua_settop(L, base + nres);
        return;
    }
    lua_getfield(L, -1, "format");
    for (int i = 1; i <= nres; i++) lua_pushvalue(L, base + i);
    if (lua_pcall(L, nres, 1, 0) == LUA_OK) {
        printf("%s\n", lua_tostring(L, -1));
    } else {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
    }
    fflush(stdout);
    lua_settop(L, base + nres);
}

static void repl_chunk_done(fox_task *t, int ok, lua_State *L, int nres, void *ud) {
    (void)ud;
    if (ok) {
        repl_print_results(L, nres);
    } else {
        const char *msg = lua_tostring(L, -1);
        const char *tb = sched_task_traceback(t);
        if (msg && strcmp(msg, "interrupted") == 0) fprintf(stderr, "interrupted\n");
        else fprintf(stderr, "%s\n", tb ? tb : (msg ? msg : "(error)"));
        repl.failed = 1;
    }
    repl.running = NULL;
    loop_stop();
}

/* Compiles buf as `return buf` first (so expressions print), then as a statement.
 * Returns LUA_OK with the function pushed, 1 when the chunk is incomplete, or an error
 * status with the message pushed. */
static int repl_compile(lua_State *L, const char *buf) {
    lua_pushfstring(L, "return %s;", buf);
    if (luaL_loadbuffer(L, lua_tostring(L, -1), lua_rawlen(L, -1), "=stdin") == LUA_OK) {
        lua_remove(L, -2);
        return LUA_OK;
    }
    lua_pop(L, 2);
    int status = luaL_loadbuffer(L, buf, strlen(buf), "=stdin");
    if (status == LUA_ERRSYNTAX) {
        size_t len;
        const char *msg = lua_tolstring(L, -1, &len);
        if (len >= 5 && strcmp(msg + len - 5, "<eof>") == 0) {
            lua_pop(L, 1);
            return 1;
        }
    }
    return status;
}

/* Runs the compiled chunk on top of L as a task and drives the loop until it ends. */
static void repl_run_chunk(vm_gen *g) {
    char err[256];
    sched_opts o = {.name = "repl"};
    fox_task *t = sched_spawn(g, g->L, 0, &o, err, sizeof err);
    if (!t) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    repl.running = t;
    sched_on_done(t, repl_chunk_done, NULL);
    while (repl.running) loop_run();
}

/* Feeds one line; returns 1 when more lines are needed for the chunk. */
static int repl_feed(vm_gen *g, char **pending, const char *line) {
    size_t old = *pending ? strlen(*pending) : 0, add = strlen(line);
    char *buf = realloc(*pending, old + add + 2);
    if (!buf) return 0;
    if (old) buf[old++] = '\n';
    memcpy(buf + old, line, add + 1);
    *pending = buf;
    int status = repl_compile(g->L, buf);
    if (status == 1) return 1;
    if (status == LUA_OK) {
        repl_run_chunk(g);
    } else {
        fprintf(stderr, "%s\n", lua_tostring(g->L, -1));
        lua_pop(g->L, 1);
        repl.failed = 1;
    }
    free(*pending);
    *pending = NULL;
    return 0;
}

static int repl_run_piped(vm_gen *g) {
    char *line = NULL, *pending = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        if (n > 0 && line[n - 1] == '\n') line[n - 1] = '\0';
        repl_feed(g, &pending, line);
    }
    if (pending) {
        fprintf(stderr, "stdin: incomplete chunk at end of input\n");
        repl.failed = 1;
    }
    free(pending);
    free(line);
    return repl.failed ? 1 : 0;
}

static int repl_run_terminal(vm_gen *g) {
    char history[4096] = "";
    const char *home = getenv("HOME");
    if (home) snprintf(history, sizeof history, "%s/.fox_history", home);
    using_history();
    if (*history) read_history(history);
    printf("fox %s (%s). Each chunk runs as a task; Ctrl-D exits.\n", FOX_VERSION, LUA_RELEASE);
    char *pending = NULL;
    for (;;) {
        repl.failed = 0;
        char *line = readline(pending ? ">> " : "> ");
        if (!line) break;
        if (*line) add_history(line);
        repl_feed(g, &pending, line);
        free(line);
    }
    printf("\n");
    free(pending);
    if (*history) write_history(history);
    return 0;
}

int repl_run(vm_gen *g) {
    repl.interrupt_pipe[0] = repl.interrupt_pipe[1] = -1;
    if (pipe(repl.interrupt_pipe) == 0) {
        fcntl(repl.interrupt_pipe[0], F_SETFL, O_NONBLOCK);
        fcntl(repl.interrupt_pipe[1], F_SETFL, O_NONBLOCK);
        repl.interrupt_ev = event_new(loop_base(), repl.interrupt_pipe[0], EV_READ | EV_PERSIST,
                                      repl_interrupt_cb, NULL);
        event_add(repl.interrupt_ev, NULL);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = repl_on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    int status = isatty(STDIN_FILENO) ? repl_run_terminal(g) : repl_run_piped(g);
    if (repl.interrupt_ev) event_free(repl.interrupt_ev);
    return status;
}
