/* fox.stdio: line input on fd 0 and buffered output on fd 1 that never block the loop,
 * for protocol servers on stdio (`fox mcp`), where several calls are in flight while the
 * next message is read.
 *
 *   read_line([max_bytes]) -> line (without its "\n")
 *                           | nil, "eof"            end of input (a last line without a
 *                                                   newline is returned first)
 *                           | nil, "line too long"  the line was over max_bytes (default
 *                                                   1 MiB); it was discarded up to and
 *                                                   including its newline
 *                           | nil, message          a read error
 *       Yields the calling task until the line is there. Readers queue: each line goes
 *       to exactly one caller, in the order they asked.
 *   write(s) -> true | nil, message
 *       Queues s whole (two writes never interleave) and returns; yields the caller only
 *       while more than STDIO_HIGH_WATER bytes are waiting to be written.
 *   flush() -> true | nil, message
 *       Yields until everything written so far has reached fd 1.
 *
 * Pipes and sockets are put in non-blocking mode and watched on the loop; their original
 * flags come back at exit, when any output still queued is written out. A terminal
 * keeps its flags (it is shared with the shell): it is read when readable and written
 * directly. Regular files and other devices never block for long and are read and
 * written directly, and so is a stdout that is also stderr (2>&1). Process-wide state:
 * fds 0 and 1 are process-wide. A program using fox.stdio should not also write to
 * stdout with io.write/print, whose bytes would overtake the queued ones. */
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "fox/lapi.h"
#include "fox/loop.h"
#include "fox/sched.h"

#define STDIO_DEFAULT_MAX_LINE (1024 * 1024)
#define STDIO_READ_CHUNK 65536
#define STDIO_HIGH_WATER (1024 * 1024) /* write() yields above this many queued bytes */
#define STDIO_LOW_WATER (256 * 1024)   /* ... until the queue is down to this */
#define STDIO_EXIT_FLUSH_MS 5000       /* at exit, wait this long for a slow reader */

enum stdio_mode {
    STDIO_MODE_UNSET = 0,
    STDIO_MODE_EVENT,  /* watched on the loop */
    STDIO_MODE_DIRECT, /* plain blocking calls (files, devices, a terminal's output) */
};

enum stdio_read_status { STDIO_READ_LINE, STDIO_READ_EOF, STDIO_READ_TOO_LONG, STDIO_READ_ERROR };

typedef struct stdio_read_op {
    sched_wait wait;
    struct stdio_read_op *next;
    size_t max_bytes;
    int status; /* enum stdio_read_status, once done */
    int error;  /* errno for STDIO_READ_ERROR */
    char *line;
    size_t len;
} stdio_read_op;

typedef struct stdio_write_op {
    sched_wait wait;
    struct stdio_write_op *next;
    int until_empty; /* flush(): wait for an empty queue, not just below the low mark */
    int error;       /* errno once done with an error */
} stdio_write_op;

typedef struct stdio_fd {
    int fd;
    int mode;
    int restore_flags; /* we set O_NONBLOCK: put orig_flags back at exit */
    int orig_flags;
    int error; /* sticky errno */
    struct event *ev;
    struct evbuffer *buf;
} stdio_fd;

static stdio_fd stdio_in = {.fd = 0};
static stdio_fd stdio_out = {.fd = 1};
static int stdio_in_eof;
static int stdio_in_discarding; /* inside a line over the limit: drop bytes up to "\n" */
static size_t stdio_in_scanned; /* buffered bytes already known to hold no "\n" */
static stdio_read_op *stdio_readers, **stdio_readers_tail = &stdio_readers;
static stdio_write_op *stdio_writers;
static int stdio_atexit_registered;

static void stdio_in_readable(evutil_socket_t fd, short what, void *arg);
static void stdio_out_writable(evutil_socket_t fd, short what, void *arg);

/* At exit: writes out what is still queued (waiting at most STDIO_EXIT_FLUSH_MS for a
 * reader that does not read), then restores the fds' flags. */
static void stdio_restore_at_exit(void) {
    int waited_ms = 0;
    while (stdio_out.buf && !stdio_out.error && evbuffer_get_length(stdio_out.buf) > 0) {
        if (evbuffer_write(stdio_out.buf, stdio_out.fd) >= 0 || errno == EINTR) continue;
        if ((errno != EAGAIN && errno != EWOULDBLOCK) || waited_ms >= STDIO_EXIT_FLUSH_MS) break;
        struct pollfd p = {.fd = stdio_out.fd, .events = POLLOUT};
        poll(&p, 1, 100);
        waited_ms += 100;
    }
    if (stdio_out.restore_flags) fcntl(stdio_out.fd, F_SETFL, stdio_out.orig_flags);
    if (stdio_in.restore_flags) fcntl(stdio_in.fd, F_SETFL, stdio_in.orig_flags);
}

/* Decides how f is served (once): a watched non-blocking fd or direct calls. Returns 0,
 * or -1 with f->error set when the fd is unusable (closed). */
static int stdio_fd_setup(stdio_fd *f, short events, event_callback_fn cb) {
    if (f->mode != STDIO_MODE_UNSET) return f->error ? -1 : 0;
    f->buf = evbuffer_new();
    if (!f->buf) {
        f->error = ENOMEM;
        f->mode = STDIO_MODE_DIRECT;
        return -1;
    }
    struct stat st;
    if (fstat(f->fd, &st) != 0) {
        f->error = errno;
        f->mode = STDIO_MODE_DIRECT;
        return -1;
    }
    int tty = isatty(f->fd);
    int watch = S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || (tty && (events & EV_READ));
    /* O_NONBLOCK belongs to the open file, not the fd: when stderr is the same pipe as
     * stdout (2>&1), making stdout non-blocking would make log writes fail with EAGAIN,
     * so that output is written directly instead. */
    struct stat st_err;
    if ((events & EV_WRITE) && fstat(2, &st_err) == 0 && st_err.st_dev == st.st_dev &&
        st_err.st_ino == st.st_ino)
        watch = 0;
    f->mode = STDIO_MODE_DIRECT;
    if (!watch) return 0;
    f->ev = event_new(loop_base(), f->fd, (short)(events | EV_PERSIST), cb, NULL);
    if (!f->ev) return 0; /* direct calls still work */
    if (!tty) {
        int flags = fcntl(f->fd, F_GETFL);
        if (flags >= 0 && !(flags & O_NONBLOCK) && fcntl(f->fd, F_SETFL, flags | O_NONBLOCK) == 0) {
            f->orig_flags = flags;
            f->restore_flags = 1;
        }
        if (!stdio_atexit_registered) {
            stdio_atexit_registered = 1;
            atexit(stdio_restore_at_exit);
        }
    }
    f->mode = STDIO_MODE_EVENT;
    return 0;
}

/* ---------------------------------------------------------------- input */

/* Tries to complete op from the buffered input. Returns 1 when op has its result (and
 * the bytes it consumed are gone from the buffer), 0 when it needs more input. */
static int stdio_in_complete(stdio_read_op *op) {
    struct evbuffer *buf = stdio_in.buf;
    for (;;) {
        size_t len = evbuffer_get_length(buf);
        struct evbuffer_ptr start, eol;
        if (evbuffer_ptr_set(buf, &start, stdio_in_scanned, EVBUFFER_PTR_SET) != 0) {
            stdio_in_scanned = 0;
            evbuffer_ptr_set(buf, &start, 0, EVBUFFER_PTR_SET);
        }
        eol = evbuffer_search(buf, "\n", 1, &start);
        if (stdio_in_discarding) {
            if (eol.pos >= 0) {
                evbuffer_drain(buf, (size_t)eol.pos + 1);
                stdio_in_discarding = 0;
            } else {
                evbuffer_drain(buf, len);
                if (!stdio_in_eof && !stdio_in.error) {
                    stdio_in_scanned = 0;
                    return 0;
                }
                stdio_in_discarding = 0;
            }
            stdio_in_scanned = 0;
            op->status = STDIO_READ_TOO_LONG;
            return 1;
        }
        if (eol.pos >= 0) {
            size_t n = (size_t)eol.pos;
            stdio_in_scanned = 0;
            if (n > op->max_bytes) {
                evbuffer_drain(buf, n + 1);
                op->status = STDIO_READ_TOO_LONG;
                return 1;
            }
            op->line = malloc(n + 1);
            if (!op->line) {
                op->status = STDIO_READ_ERROR;
                op->error = ENOMEM;
                return 1;
            }
            evbuffer_remove(buf, op->line, n);
            evbuffer_drain(buf, 1);
            op->len = n;
            op->status = STDIO_READ_LINE;
            return 1;
        }
        stdio_in_scanned = len;
        if (len > op->max_bytes) {
            stdio_in_discarding = 1;
            continue;
        }
        if (stdio_in_eof && len > 0) { /* a last line without its newline */
            op->line = malloc(len + 1);
            if (!op->line) {
                op->status = STDIO_READ_ERROR;
                op->error = ENOMEM;
                return 1;
            }
            evbuffer_remove(buf, op->line, len);
            op->len = len;
            stdio_in_scanned = 0;
            op->status = STDIO_READ_LINE;
            return 1;
        }
        if (stdio_in_eof) {
            op->status = STDIO_READ_EOF;
            return 1;
        }
        if (stdio_in.error) {
            op->status = STDIO_READ_ERROR;
            op->error = stdio_in.error;
            return 1;
        }
        return 0;
    }
}

/* Reads what fd 0 has into the buffer (one read). Sets eof or the sticky error.
 * Returns 0 when the fd had nothing to read yet (EAGAIN), else 1. */
static int stdio_in_fill(void) {
    int n = evbuffer_read(stdio_in.buf, stdio_in.fd, STDIO_READ_CHUNK);
    if (n == 0) stdio_in_eof = 1;
    else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    else if (n < 0 && errno != EINTR) stdio_in.error = errno;
    return 1;
}

/* Waits (blocking) until fd is ready for `events`: for direct calls on an fd that
 * someone else made non-blocking. */
static void stdio_fd_wait(int fd, short events) {
    struct pollfd p = {.fd = fd, .events = events};
    poll(&p, 1, 1000);
}

/* Hands buffered lines to the queued readers in order; stops watching fd 0 when no
 * reader is left or the input has ended. */
static void stdio_in_dispatch(void) {
    while (stdio_readers && stdio_in_complete(stdio_readers)) {
        stdio_read_op *op = stdio_readers;
        stdio_readers = op->next;
        if (!stdio_readers) stdio_readers_tail = &stdio_readers;
        op->next = NULL;
        sched_wake(&op->wait);
    }
    if (stdio_in.ev && (!stdio_readers || stdio_in_eof || stdio_in.error)) event_del(stdio_in.ev);
}

static void stdio_in_readable(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what, (void)arg;
    stdio_in_fill();
    stdio_in_dispatch();
}

/* Pushes op's result (the binding's return values). */
static int stdio_read_push_result(lua_State *L, const stdio_read_op *op) {
    switch (op->status) {
    case STDIO_READ_LINE:
        lua_pushlstring(L, op->line, op->len);
        return 1;
    case STDIO_READ_EOF:
        luaL_pushfail(L);
        lua_pushliteral(L, "eof");
        return 2;
    case STDIO_READ_TOO_LONG:
        luaL_pushfail(L);
        lua_pushliteral(L, "line too long");
        return 2;
    default:
        luaL_pushfail(L);
        lua_pushfstring(L, "stdin: %s", strerror(op->error));
        return 2;
    }
}

static int stdio_read_push(lua_State *L, sched_wait *w) {
    return stdio_read_push_result(L, (stdio_read_op *)w);
}

/* Frees op; when it is still queued (the task was cancelled) it leaves the queue, and fd
 * 0 is no longer watched if nobody else waits. */
static void stdio_read_release(sched_wait *w, int cancelled) {
    stdio_read_op *op = (stdio_read_op *)w;
    if (cancelled) {
        stdio_read_op **pp = &stdio_readers;
        while (*pp && *pp != op) pp = &(*pp)->next;
        if (*pp) {
            *pp = op->next;
            if (!*pp) stdio_readers_tail = pp;
        }
        if (!stdio_readers && stdio_in.ev) event_del(stdio_in.ev);
    }
    free(op->line);
    free(op);
}

/* read_line([max_bytes]) -> line | nil, "eof" | nil, "line too long" | nil, err.
 * Yields until a line is there (see the header). */
static int lapi_stdio_read_line(lua_State *L) {
    lua_Integer max = luaL_optinteger(L, 1, STDIO_DEFAULT_MAX_LINE);
    luaL_argcheck(L, max > 0, 1, "max_bytes must be positive");
    stdio_read_op *op = calloc(1, sizeof *op);
    if (!op) return luaL_error(L, "out of memory");
    op->max_bytes = (size_t)max;
    op->wait.push = stdio_read_push;
    op->wait.release = stdio_read_release;
    int done = 1;
    if (stdio_fd_setup(&stdio_in, EV_READ, stdio_in_readable) != 0) {
        op->status = STDIO_READ_ERROR;
        op->error = stdio_in.error;
    } else if (stdio_readers == NULL) {
        /* Nobody queued ahead: serve from the buffer, or read directly when not watched. */
        done = stdio_in_complete(op);
        while (!done && stdio_in.mode == STDIO_MODE_DIRECT) {
            if (!stdio_in_fill()) stdio_fd_wait(stdio_in.fd, POLLIN);
            done = stdio_in_complete(op);
        }
    } else {
        done = 0;
    }
    if (done) {
        int n = stdio_read_push_result(L, op);
        stdio_read_release(&op->wait, 0);
        return n;
    }
    *stdio_readers_tail = op;
    stdio_readers_tail = &op->next;
    if (stdio_in.ev && !event_pending(stdio_in.ev, EV_READ, NULL)) event_add(stdio_in.ev, NULL);
    return sched_suspend(L, &op->wait); /* on failure it calls release(w, 1) */
}

/* ---------------------------------------------------------------- output */

/* Wakes the writers whose condition holds (or all of them after an error). */
static void stdio_out_wake(void) {
    size_t len = evbuffer_get_length(stdio_out.buf);
    stdio_write_op **pp = &stdio_writers;
    while (*pp) {
        stdio_write_op *op = *pp;
        if (stdio_out.error || (op->until_empty ? len == 0 : len <= STDIO_LOW_WATER)) {
            op->error = stdio_out.error;
            *pp = op->next;
            op->next = NULL;
            sched_wake(&op->wait);
        } else {
            pp = &op->next;
        }
    }
}

/* Writes as much of the queue as fd 1 takes now; watches fd 1 while some is left. On an
 * error (EPIPE: the reader went away) the queue is dropped and the error is sticky. */
static void stdio_out_pump(void) {
    while (!stdio_out.error && evbuffer_get_length(stdio_out.buf) > 0) {
        int n = evbuffer_write(stdio_out.buf, stdio_out.fd);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            stdio_out.error = errno;
        }
    }
    if (stdio_out.error) evbuffer_drain(stdio_out.buf, evbuffer_get_length(stdio_out.buf));
    if (evbuffer_get_length(stdio_out.buf) > 0) {
        if (!event_pending(stdio_out.ev, EV_WRITE, NULL)) event_add(stdio_out.ev, NULL);
    } else {
        event_del(stdio_out.ev);
    }
    stdio_out_wake();
}

static void stdio_out_writable(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what, (void)arg;
    stdio_out_pump();
}

/* Writes all of s to fd 1 with blocking calls. Returns 0 or an errno. */
static int stdio_out_write_direct(const char *s, size_t len) {
    while (len > 0) {
        ssize_t n = write(stdio_out.fd, s, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                stdio_fd_wait(stdio_out.fd, POLLOUT);
                continue;
            }
            return errno;
        }
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

static int stdio_push_error(lua_State *L, int error) {
    luaL_pushfail(L);
    lua_pushfstring(L, "stdout: %s", strerror(error));
    return 2;
}

static int stdio_write_push(lua_State *L, sched_wait *w) {
    stdio_write_op *op = (stdio_write_op *)w;
    if (op->error) return stdio_push_error(L, op->error);
    lua_pushboolean(L, 1);
    return 1;
}

/* Frees op; a cancelled writer leaves the wait list (its bytes stay queued whole). */
static void stdio_write_release(sched_wait *w, int cancelled) {
    stdio_write_op *op = (stdio_write_op *)w;
    if (cancelled) {
        stdio_write_op **pp = &stdio_writers;
        while (*pp && *pp != op) pp = &(*pp)->next;
        if (*pp) *pp = op->next;
    }
    free(op);
}

/* Suspends the caller until the output queue satisfies the op's condition. */
static int stdio_out_wait(lua_State *L, int until_empty) {
    stdio_write_op *op = calloc(1, sizeof *op);
    if (!op) return luaL_error(L, "out of memory");
    op->until_empty = until_empty;
    op->wait.push = stdio_write_push;
    op->wait.release = stdio_write_release;
    op->next = stdio_writers;
    stdio_writers = op;
    return sched_suspend(L, &op->wait); /* on failure it calls release(w, 1) */
}

/* write(s) -> true | nil, err. Stack: s at 1. */
static int lapi_stdio_write(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    if (stdio_fd_setup(&stdio_out, EV_WRITE, stdio_out_writable) != 0 || stdio_out.error)
        return stdio_push_error(L, stdio_out.error);
    if (stdio_out.mode == STDIO_MODE_DIRECT) {
        int e = stdio_out_write_direct(s, len);
        if (e) {
            stdio_out.error = e;
            return stdio_push_error(L, e);
        }
        lua_pushboolean(L, 1);
        return 1;
    }
    if (evbuffer_add(stdio_out.buf, s, len) != 0) return luaL_error(L, "out of memory");
    stdio_out_pump();
    if (stdio_out.error) return stdio_push_error(L, stdio_out.error);
    if (evbuffer_get_length(stdio_out.buf) > STDIO_HIGH_WATER) return stdio_out_wait(L, 0);
    lua_pushboolean(L, 1);
    return 1;
}

/* flush() -> true | nil, err: yields until everything written has reached fd 1. */
static int lapi_stdio_flush(lua_State *L) {
    if (stdio_fd_setup(&stdio_out, EV_WRITE, stdio_out_writable) != 0 || stdio_out.error)
        return stdio_push_error(L, stdio_out.error);
    if (stdio_out.mode == STDIO_MODE_EVENT && evbuffer_get_length(stdio_out.buf) > 0)
        return stdio_out_wait(L, 1);
    lua_pushboolean(L, 1);
    return 1;
}

/* Opens fox.stdio: pushes the module table. Touches no fd until a function is called. */
int luaopen_fox_stdio(lua_State *L) {
    static const luaL_Reg funcs[] = {
        {"read_line", lapi_stdio_read_line},
        {"write", lapi_stdio_write},
        {"flush", lapi_stdio_flush},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    lua_pushinteger(L, STDIO_DEFAULT_MAX_LINE);
    lua_setfield(L, -2, "DEFAULT_MAX_LINE");
    return 1;
}
