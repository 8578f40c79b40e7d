#ifndef FOX_STATE_GROUP_H
#define FOX_STATE_GROUP_H
/* Group commit over a state handle: the rows of many callers that arrive close
 * together are stored in ONE transaction (one WAL commit, one fsync), and each caller
 * is told once that transaction is durable.
 *
 * A durable commit costs an fsync (a millisecond or more on a busy disk) while the rows
 * cost microseconds, so committing webhook deliveries one by one caps fox at about one
 * delivery per fsync. Here a caller joins the open group with its rows and waits; the
 * group is committed on the next loop turn (after every callback of this turn, so the
 * deliveries read together are committed together), or at once when it holds
 * STATE_GROUP_MAX_ROWS rows. A failed commit stores none of the group's rows and every
 * member hears the same error; no member is told "durable" before the commit returned.
 *
 * Runs on the loop thread (the commit is synchronous SQLite on the state handle).
 * No Lua in here; lapi_state.c's st:write() is the binding. */
#include <stddef.h>

#include "fox/state.h"

#define STATE_GROUP_MAX_ROWS 1024   /* rows in one transaction before it commits at once */

typedef struct state_group state_group;
typedef struct state_group_member state_group_member;

/* Called once per member after its group's commit: ok 1 (durable) or 0 (nothing of
 * the group was stored; err says why, valid only during the call). Called from a loop
 * callback (or from state_group_free); it must not free the group. */
typedef void (*state_group_done_fn)(void *ud, int ok, const char *err);

/* A group committer for st, which must outlive it. Returns NULL when out of memory or
 * when the loop is not initialised. */
state_group *state_group_new(state *st);

/* Commits what is pending (members hear the outcome), then frees g. NULL: no-op. */
void state_group_free(state_group *g);

/* Adds n rows (copied; each checked as state_set would) to the open group; done(ud, ...)
 * is called after the commit. Returns the member, or NULL with err filled when a row is
 * invalid or memory ran out (then nothing joined and done is never called). */
state_group_member *state_group_join(state_group *g, const state_write *writes, size_t n,
                                     state_group_done_fn done, void *ud, char *err,
                                     size_t errlen);

/* Withdraws a member that has not heard its outcome: its rows are not written (if the
 * group has not committed yet) and done is never called. */
void state_group_leave(state_group_member *m);

/* Commits the open group now. Returns 0 (also when nothing was pending) / -1. */
int state_group_flush(state_group *g);

/* Transactions committed (or failed) by g and the rows they held: for tests and
 * metrics. */
typedef struct state_group_stats {
    unsigned long long commits;
    unsigned long long failed;
    unsigned long long rows;
    unsigned long long members;
} state_group_stats;
state_group_stats state_group_get_stats(const state_group *g);
#endif
