#ifndef FOX_LOOP_H
#define FOX_LOOP_H
/* The process-wide libevent base. One loop per process; everything runs on it. */
#include <event2/event.h>

/* Creates the base (idempotent). Returns 0, or -1 with err filled. */
int loop_init(char *err, size_t errlen);
/* The base; loop_init must have succeeded. */
struct event_base *loop_base(void);
/* Runs until loop_stop() or until no events remain. Returns 0 / -1. */
int loop_run(void);
/* Makes loop_run return after the current callbacks. */
void loop_stop(void);
/* Monotonic clock in seconds. */
double loop_now(void);
/* Frees the base (at exit, after every module released its events). */
void loop_free(void);
#endif
