/* Returns memory freed by a burst to the kernel once the daemon is quiet again. */
#include "fox/memtrim.h"

#include <event2/event.h>
#include <lua.h>
#include <malloc.h>
#include <stdio.h>
#include <unistd.h>

#include "fox/httpc.h"
#include "fox/httpd.h"
#include "fox/log.h"
#include "fox/loop.h"
#include "fox/vm.h"

static struct {
    struct event *timer;
    int quiet_checks;
    size_t rss_after_last_trim;
    unsigned long trims;
} memtrim;

size_t memtrim_rss(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (!f) return 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    return n == 2 ? (size_t)resident * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

int memtrim_due(int quiet_checks, size_t rss, size_t rss_after_last_trim) {
    return quiet_checks >= 2 && rss > rss_after_last_trim + MEMTRIM_GROWTH;
}

static void memtrim_collect(vm_gen *g, void *ud) {
    (void)ud;
    lua_gc(g->L, LUA_GCCOLLECT);
}

size_t memtrim_now(void) {
    size_t before = memtrim_rss();
    vm_each_gen(memtrim_collect, NULL);
    malloc_trim(0);
    size_t after = memtrim_rss();
    memtrim.rss_after_last_trim = after;
    memtrim.trims++;
    return before > after ? before - after : 0;
}

static void memtrim_on_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what, (void)arg;
    int quiet = httpc_live_transfers() == 0 && httpd_live_requests() == 0;
    memtrim.quiet_checks = quiet ? memtrim.quiet_checks + 1 : 0;
    size_t rss = memtrim_rss();
    if (rss < memtrim.rss_after_last_trim) memtrim.rss_after_last_trim = rss;
    if (!memtrim_due(memtrim.quiet_checks, rss, memtrim.rss_after_last_trim)) return;
    size_t released = memtrim_now();
    char before[32], after[32];
    snprintf(before, sizeof before, "%zu", rss >> 10);
    snprintf(after, sizeof after, "%zu", memtrim.rss_after_last_trim >> 10);
    const char *kv[] = {"rss_before_kib", before, "rss_after_kib", after};
    log_event(released ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG, "memory.trimmed", kv, LOG_PAIRS(kv));
}

int memtrim_watch(char *err, size_t errlen) {
    if (memtrim.timer) return 0;
    if (!loop_base()) {
        snprintf(err, errlen, "the event loop is not initialised");
        return -1;
    }
    memtrim.timer = event_new(loop_base(), -1, EV_PERSIST, memtrim_on_timer, NULL);
    struct timeval tv = {(time_t)MEMTRIM_INTERVAL,
                         (suseconds_t)((MEMTRIM_INTERVAL - (double)(time_t)MEMTRIM_INTERVAL) * 1e6)};
    if (!memtrim.timer || event_add(memtrim.timer, &tv) != 0) {
        memtrim_stop();
        snprintf(err, errlen, "cannot start the memory check (libevent)");
        return -1;
    }
    memtrim.quiet_checks = 0;
    memtrim.rss_after_last_trim = memtrim_rss();
    return 0;
}

void memtrim_stop(void) {
    if (memtrim.timer) event_free(memtrim.timer);
    memtrim.timer = NULL;
}

unsigned long memtrim_count(void) { return memtrim.trims; }
