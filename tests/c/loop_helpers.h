#ifndef FOX_TEST_LOOP_HELPERS_H
#define FOX_TEST_LOOP_HELPERS_H
/* Driving the event loop from a C test: run until a flag is set or time runs out. */
#include <event2/event.h>

#include "fox/loop.h"

static int loop_helpers_deadline_hit;

static void loop_helpers_on_deadline(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what, (void)arg;
    loop_helpers_deadline_hit = 1;
}

/* Runs the loop until *flag becomes non-zero or seconds pass; returns *flag. */
static inline int run_until(const int *flag, double seconds) {
    loop_helpers_deadline_hit = 0;
    struct event *t = evtimer_new(loop_base(), loop_helpers_on_deadline, NULL);
    struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6)};
    evtimer_add(t, &tv);
    while (!*flag && !loop_helpers_deadline_hit) event_base_loop(loop_base(), EVLOOP_ONCE);
    event_free(t);
    return *flag;
}

/* Runs the loop for seconds. */
static inline void run_for(double seconds) {
    int never = 0;
    run_until(&never, seconds);
}
#endif
