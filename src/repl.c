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

#include "fox/log.h"
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
    vm_gen *g;
    fox_task *running;
    volatile sig_atomic_t chunk_running; /* read by the signal handler */
    int failed;
    int terminal;             /* line editing through libedit's callback interface */
    int eof;
    char *pending;            /* an incomplete chunk waiting for more lines */
    struct event *interrupt_ev;
    struct event *stdin_ev;
    int interrupt_pipe[2];
} repl_state;

static repl_state repl;

static void repl_on_sigint(int sig) {
    (void)sig;
    /* A chunk stuck computing is stopped by the instruction hook; everything else
     * (a chunk waiting on I/O, a line being typed) is handled from the loop. */
    if (repl.chunk_running) sched_interrupt_running();
    if (repl.interrupt_pipe[1] >= 0) {
        ssize_t w = write(repl.interrupt_pipe[1], "i", 1);
        (void)w;
    }
}

static void repl_prompt(void);

/* Discards Ctrl-C presses that are already handled (or stale) before a chunk starts. */
static void repl_drain_interrupts(void) {
    char buf[64];
    while (repl.interrupt_pipe[0] >= 0 && read(repl.interrupt_pipe[0], buf, sizeof buf) > 0) {
    }
}

/* Ctrl-C, seen from the loop: cancel the chunk waiting on I/O, or, at the prompt,
 * throw away the line being typed (and any unfinished multi-line chunk). */
static void repl_interrupt_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what, (void)arg;
    repl_drain_interrupts();
    if (repl.running) {
        sched_cancel(repl.running, "interrupted");
    } else if (repl.terminal && !repl.eof) {
        free(repl.pending);
        repl.pending = NULL;
        rl_callback_handler_remove();
        printf("\n");
        repl_prompt();
    }
}

/* Prints an error message on stderr with registered secrets scrubbed: an error raised
 * with a secret in its text must not show it (DESIGN: secrets never reach errors or
 * REPL echo). */
static void repl_print_error(const char *msg) {
    if (!msg) msg = "(error)";
    char *clean = log_redact_string(msg, strlen(msg), NULL);
    fprintf(stderr, "%s\n", clean ? clean : "(error; out of memory while printing it)");
    free(clean);
}

/* Prints the chunk's results through fox.repl.format (tables shown, secrets scrubbed). */
static void repl_print_results(lua_State *L, int nres) {
    if (nres == 0) return;
    int base = lua_gettop(L) - nres;
    lua_getglobal(L, "require");
    lua_pushstring(L, "fox.repl");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        repl_print_error(lua_tostring(L, -1));
        lua_settop(L, base + nres);
        return;
    }
    lua_getfield(L, -1, "format");
    for (int i = 1; i <= nres; i++) lua_pushvalue(L, base + i);
    if (lua_pcall(L, nres, 1, 0) == LUA_OK) {
        printf("%s\n", lua_tostring(L, -1));
    } else {
        repl_print_error(lua_tostring(L, -1));
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
        else repl_print_error(tb ? tb : msg);
        repl.failed = 1;
    }
    repl.running = NULL;
    repl.chunk_running = 0;
    repl_drain_interrupts(); /* the Ctrl-C that stopped this chunk is used up */
    if (repl.terminal) repl_prompt();
    else loop_stop();
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

/* Starts the compiled chunk on top of L as a task; repl_chunk_done reports it. */
static int repl_start_chunk(vm_gen *g) {
    char err[256];
    sched_opts o = {.name = "repl"};
    repl_drain_interrupts();
    sched_interrupt_reset();
    fox_task *t = sched_spawn(g, g->L, 0, &o, err, sizeof err);
    if (!t) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    repl.running = t;
    repl.chunk_running = 1;
    sched_on_done(t, repl_chunk_done, NULL);
    return 0;
}

/* Feeds one line. Returns 1 when more lines are needed, 2 when a chunk started (it
 * reports itself when it ends), 0 otherwise (a compile error was printed). */
static int repl_feed(vm_gen *g, const char *line) {
    size_t old = repl.pending ? strlen(repl.pending) : 0, add = strlen(line);
    char *buf = realloc(repl.pending, old + add + 2);
    if (!buf) return 0;
    if (old) buf[old++] = '\n';
    memcpy(buf + old, line, add + 1);
    repl.pending = buf;
    int status = repl_compile(g->L, buf);
    if (status == 1) return 1;
    free(repl.pending);
    repl.pending = NULL;
    if (status == LUA_OK) return repl_start_chunk(g) == 0 ? 2 : 0;
    repl_print_error(lua_tostring(g->L, -1));
    lua_pop(g->L, 1);
    repl.failed = 1;
    return 0;
}

static int repl_run_piped(vm_gen *g) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        if (n > 0 && line[n - 1] == '\n') line[n - 1] = '\0';
        if (repl_feed(g, line) == 2) {
            while (repl.running) loop_run();
        }
    }
    if (repl.pending) {
        fprintf(stderr, "stdin: incomplete chunk at end of input\n");
        repl.failed = 1;
    }
    free(repl.pending);
    repl.pending = NULL;
    free(line);
    return repl.failed ? 1 : 0;
}

/* libedit calls this with each complete line (NULL at end of input). */
static void repl_on_line(char *line) {
    rl_callback_handler_remove();
    if (!line) {
        repl.eof = 1;
        event_del(repl.stdin_ev);
        printf("\n");
        loop_stop();
        return;
    }
    if (*line) add_history(line);
    repl.failed = 0;
    int fed = repl_feed(repl.g, line);
    free(line);
    if (fed == 2) {
        /* The prompt comes back when the chunk ends; typing meanwhile waits. */
        event_del(repl.stdin_ev);
        return;
    }
    repl_prompt();
}

static void repl_prompt(void) {
    rl_callback_handler_install(repl.pending ? ">> " : "> ", repl_on_line);
    event_add(repl.stdin_ev, NULL);
}

static void repl_stdin_ready(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what, (void)arg;
    rl_callback_read_char();
}

/* The loop runs while the prompt waits, so tasks a chunk started (servers, timers)
 * keep running between chunks. */
static int repl_run_terminal(vm_gen *g) {
    (void)g; /* repl.g */
    char history[4096] = "";
    const char *home = getenv("HOME");
    if (home) snprintf(history, sizeof history, "%s/.fox_history", home);
    using_history();
    if (*history) read_history(history);
    printf("fox %s (%s). Each chunk runs as a task; Ctrl-C interrupts it; Ctrl-D exits.\n",
           FOX_VERSION, LUA_RELEASE);
    repl.terminal = 1;
    repl.stdin_ev = event_new(loop_base(), STDIN_FILENO, EV_READ | EV_PERSIST, repl_stdin_ready, NULL);
    repl_prompt();
    while (!repl.eof) loop_run();
    rl_callback_handler_remove();
    event_free(repl.stdin_ev);
    free(repl.pending);
    repl.pending = NULL;
    if (*history) write_history(history);
    return 0;
}

int repl_run(vm_gen *g) {
    repl.g = g;
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
