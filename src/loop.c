/* The process-wide libevent base. */
#include "fox/loop.h"

#include <stdio.h>
#include <time.h>

static struct event_base *loop_event_base;

int loop_init(char *err, size_t errlen) {
    if (loop_event_base) return 0;
    loop_event_base = event_base_new();
    if (!loop_event_base) {
        snprintf(err, errlen, "cannot create the event loop (libevent)");
        return -1;
    }
    return 0;
}

struct event_base *loop_base(void) { return loop_event_base; }

int loop_run(void) { return event_base_dispatch(loop_event_base) < 0 ? -1 : 0; }

void loop_stop(void) {
    if (loop_event_base) event_base_loopbreak(loop_event_base);
}

double loop_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void loop_free(void) {
    if (loop_event_base) event_base_free(loop_event_base);
    loop_event_base = NULL;
}
