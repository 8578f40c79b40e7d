/* The scheduler and generations, driven from C as the HTTP server and CLI drive them. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "fox/loop.h"
#include "fox/sched.h"
#include "fox/vm.h"
#include "harness.h"

static vm_gen *test_gen(size_t mem_limit) {
    char err[1024];
    static int ready;
    if (!ready) {
        CHECK(loop_init(err, sizeof err) == 0);
        CHECK(sched_init(err, sizeof err) == 0);
        ready = 1;
    }
    vm_opts o = {.script_dir = "scripts", .mem_limit = mem_limit};
    vm_gen *g = vm_gen_new(&o, err, sizeof err);
    if (!g) fprintf(stderr, "vm_gen_new: %s\n", err);
    return g;
}

typedef struct outcome {
    int done, ok;
    char value[512];
} outcome;

static void record_outcome(fox_task *t, int ok, lua_State *L, int nres, void *ud) {
    (void)t;
    outcome *o = ud;
    o->done = 1;
    o->ok = ok;
    if (nres > 0 || !ok) snprintf(o->value, sizeof o->value, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
}

/* Runs chunk as a task of g until it ends. */
static outcome run_chunk(vm_gen *g, const char *chunk, double timeout) {
    outcome o = {0};
    char err[256];
    CHECK(luaL_loadstring(g->L, chunk) == LUA_OK);
    sched_opts opts = {.name = "chunk", .timeout = timeout};
    fox_task *t = sched_spawn(g, g->L, 0, &opts, err, sizeof err);
    CHECK(t != NULL);
    if (!t) return o;
    sched_on_done(t, record_outcome, &o);
    loop_run();
    return o;
}

TEST(spawned_task_returns_its_value) {
    vm_gen *g = test_gen(0);
    outcome o = run_chunk(g, "return 'hello ' .. 42", 0);
    CHECK(o.done && o.ok);
    CHECK_EQ_STR(o.value, "hello 42");
    vm_gen_retire(g);
}

TEST(task_error_carries_the_message) {
    vm_gen *g = test_gen(0);
    outcome o = run_chunk(g, "error('went wrong')", 0);
    CHECK(o.done && !o.ok);
    CHECK(strstr(o.value, "went wrong") != NULL);
    vm_gen_retire(g);
}

TEST(sleeping_task_resumes_from_the_loop) {
    vm_gen *g = test_gen(0);
    double t0 = loop_now();
    outcome o = run_chunk(g, "require('fox.task').sleep(0.05) return 'woke'", 0);
    CHECK(o.ok);
    CHECK_EQ_STR(o.value, "woke");
    CHECK(loop_now() - t0 >= 0.045);
    vm_gen_retire(g);
}

TEST(deadline_cancels_a_waiting_task) {
    vm_gen *g = test_gen(0);
    outcome o = run_chunk(g, "require('fox.task').sleep(10)", 0.05);
    CHECK(o.done && !o.ok);
    CHECK(strstr(o.value, "exceeded its deadline") != NULL);
    vm_gen_retire(g);
}

TEST(memory_cap_is_enforced_by_the_allocator) {
    vm_gen *g = test_gen((size_t)8 << 20);
    CHECK_EQ_INT(g->mem_limit, (size_t)8 << 20);
    outcome o = run_chunk(g, "local t = {} for i = 1, 1e9 do t[i] = ('x'):rep(100) .. i end", 0);
    CHECK(o.done && !o.ok);
    CHECK(strstr(o.value, "ran out of memory") != NULL);
    CHECK(g->mem_used <= g->mem_limit);
    /* The generation is usable afterwards. */
    outcome again = run_chunk(g, "return tostring(#('y'):rep(1000))", 0);
    CHECK(again.ok);
    CHECK_EQ_STR(again.value, "1000");
    vm_gen_retire(g);
}

TEST(reload_keeps_the_old_generation_when_the_new_one_fails) {
    vm_gen *g = test_gen(0);
    vm_set_current(g);
    char err[2048];
    vm_set_boot("no.such.module");
    CHECK(vm_reload(err, sizeof err) == -1);
    CHECK(strstr(err, "no.such.module") != NULL);
    CHECK(vm_current() == g);
    CHECK(!vm_last_reload()->ok);
    vm_set_boot(NULL);
    int old_id = g->id;
    CHECK(vm_reload(err, sizeof err) == 0); /* g is retired and closed: no tasks hold it */
    CHECK(vm_current() != NULL);
    CHECK(vm_current()->id > old_id);
    CHECK(vm_last_reload()->ok);
    vm_gen_retire(vm_current());
}

int main(void) { return RUN_TESTS(); }
