#ifndef FOX_SCHED_H
#define FOX_SCHED_H
/* Tasks: every unit of work is a Lua coroutine ("task") resumed from the event loop.
 *
 * A binding that does I/O starts its operation, embeds a sched_wait in it, and ends
 * with `return sched_suspend(L, &op->wait);`. When the operation finishes (in any
 * transport callback) it calls sched_wake(&op->wait); on the next loop turn the
 * scheduler calls wait->push on the task's thread and resumes the task with those
 * values, which become the binding's return values. Lua is never resumed from inside
 * a transport callback. */
#include <lua.h>
#include <stddef.h>

typedef struct fox_task fox_task;
typedef struct vm_gen vm_gen;
typedef struct sched_wait sched_wait;

struct sched_wait {
    /* Pushes the results onto L (the task's main thread); returns how many. Called
     * once, from the loop. */
    int (*push)(lua_State *L, sched_wait *w);
    /* Called exactly once per suspension, after push, or instead of push when the task
     * is cancelled or killed while waiting (cancelled != 0: the operation must also be
     * stopped so that it never calls sched_wake). Frees the operation. */
    void (*release)(sched_wait *w, int cancelled);
    /* Owned by the scheduler. */
    fox_task *task;
    sched_wait *next_ready;
    int queued;
};

typedef struct sched_opts {
    const char *name;   /* shown in errors and logs; copied */
    double timeout;     /* wall-clock deadline in seconds from start; 0 = none */
    double cpu_limit;   /* longest run without yielding, seconds; 0 = default */
} sched_opts;

/* Called when a task ends. ok: 1 success, 0 error. On success the results are the top
 * nres values of L; on error the message (a string, with traceback) is on top. The
 * callback must not pop below those values. */
typedef void (*sched_done_fn)(fox_task *t, int ok, lua_State *L, int nres, void *ud);

int sched_init(char *err, size_t errlen);
void sched_shutdown(void);

/* Starts a task in generation g running the function below nargs arguments on the top
 * of `from` (which must belong to g; both are popped). It first runs on the next loop
 * turn. The task holds a reference on g. Returns the task or NULL (err filled). */
fox_task *sched_spawn(vm_gen *g, lua_State *from, int nargs, const sched_opts *o,
                      char *err, size_t errlen);
/* Registers the single C completion callback of t (called before Lua waiters wake). */
void sched_on_done(fox_task *t, sched_done_fn fn, void *ud);
/* Suspends the running task until sched_wake(w). Tail-call it from a lua_CFunction.
 * Raises a Lua error when L is not inside a task or cannot yield here. */
int sched_suspend(lua_State *L, sched_wait *w);
/* Completes w; its task resumes on the next loop turn. Callable from any callback. */
void sched_wake(sched_wait *w);
/* Ends t with the error `reason` (cancelling what it waits on). No-op if finished. */
void sched_cancel(fox_task *t, const char *reason);
/* Interrupts whichever task is running (from a signal handler context: only sets a
 * flag the instruction hook checks). */
void sched_interrupt_running(void);
/* Forgets an interrupt that no running task received. */
void sched_interrupt_reset(void);

/* The running task, or NULL when no task is running. */
fox_task *sched_current(void);
vm_gen *sched_task_gen(const fox_task *t);
const char *sched_task_name(const fox_task *t);
unsigned long long sched_task_id(const fox_task *t);
lua_State *sched_task_thread(const fox_task *t);
int sched_task_finished(const fox_task *t);
/* Reference counting for holders outside the scheduler (Lua handles, C callers). */
void sched_task_retain(fox_task *t);
void sched_task_release(fox_task *t);
/* Number of live (unfinished) tasks in the process. */
size_t sched_live_tasks(void);

/* "message\ntraceback" of a failed task, or NULL. Owned by t. */
const char *sched_task_traceback(const fox_task *t);
/* "ready", "running", "suspended", "done", "failed" or "cancelled". */
const char *sched_task_status(const fox_task *t);
/* Suspends the running task until target finishes, then returns (to Lua) `true, results...`
 * or `false, err`. Returns at once when target has finished. Tail-call it. */
int sched_join(lua_State *L, fox_task *target);
/* Pushes the outcome of finished target onto L (`true, ...` or `false, err`); returns count. */
int sched_push_outcome(lua_State *L, fox_task *target);
/* The value a binding yields with; fox.runtime's coroutine wrappers pass it up to the task. */
void *sched_io_yield_marker(void);
#endif
