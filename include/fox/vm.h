#ifndef FOX_VM_H
#define FOX_VM_H
/* Generations: a lua_State with the fox libraries, a memory cap enforced by its
 * allocator, and the scripts' search path. Hot reload builds a new generation and
 * retires the old one, which is closed when its last task ends. */
#include <lua.h>
#include <stddef.h>

typedef struct vm_opts {
    const char *script_dir;  /* scripts/ root (fox.*, policies.*, ...); required */
    size_t mem_limit;        /* bytes; 0 = default (FOX_MEMORY_LIMIT or 512 MiB) */
} vm_opts;

struct vm_gen {
    lua_State *L;
    int id;              /* 1, 2, ... per process */
    size_t mem_used;
    size_t mem_limit;
    size_t mem_peak;
    int refs;            /* tasks and objects that keep this generation alive */
    int retired;         /* no new work; closed when refs drops to 0 */
    char script_dir[4096];
};
typedef struct vm_gen vm_gen;

/* Builds a generation: opens the standard libraries, registers the fox bindings in
 * package.preload, sets package.path to script_dir, and runs fox.runtime. Does no I/O
 * beyond loading scripts. Returns NULL with err filled on failure. */
vm_gen *vm_gen_new(const vm_opts *o, char *err, size_t errlen);
/* The generation new work goes to. */
vm_gen *vm_current(void);
/* Makes g current and retires the previous one. */
void vm_set_current(vm_gen *g);
void vm_gen_retain(vm_gen *g);
void vm_gen_release(vm_gen *g);       /* closes a retired generation at refs 0 */
void vm_gen_retire(vm_gen *g);
/* The generation that owns L (any thread of it). */
vm_gen *vm_gen_of(lua_State *L);
/* Default script directory: FOX_SCRIPT_PATH, else <exe dir>/../scripts when present,
 * else the installed FOX_SCRIPT_DIR. Writes into buf. */
const char *vm_default_script_dir(char *buf, size_t len);
/* Hot reload. The boot module is what a generation runs to become ready:
 * `require(boot).load()` validates and loads everything (no I/O; an error rejects the
 * generation), then `require(boot).start()` runs as a task in the new generation once
 * it is current (it spawns the long-running loops). */
typedef struct vm_reload_status {
    int ok;                 /* last reload succeeded (1 before any reload) */
    char error[2048];       /* its error, file:line: message */
    double at;              /* wall-clock time of the last reload attempt, 0 = never */
    unsigned long reloads, failures;
} vm_reload_status;

/* Sets the boot module (copied); NULL clears it. */
void vm_set_boot(const char *module);
/* Runs the boot module's load() in g (synchronously). 0, or -1 with err. */
int vm_gen_boot(vm_gen *g, char *err, size_t errlen);
/* Builds a new generation like the current one, boots it, makes it current and starts
 * it; on failure keeps the current one. 0 / -1 with err; the status records either. */
int vm_reload(char *err, size_t errlen);
const vm_reload_status *vm_last_reload(void);
/* Calls fn(g, ud) for every live generation (current and retired-but-draining). */
void vm_each_gen(void (*fn)(vm_gen *g, void *ud), void *ud);

/* Pushes debug.traceback-style message for the error on top of L (replaces it). */
void vm_push_traceback(lua_State *L, lua_State *co, int level);
#endif
