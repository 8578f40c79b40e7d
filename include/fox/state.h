#ifndef FOX_STATE_H
#define FOX_STATE_H
/* Durable state: a small key/value store with TTLs and claims, kept in one SQLite file
 * (<dir>/fox.db, WAL mode) by the default backend. It records what must survive a
 * restart: which incidents were investigated and what was posted, the poll cursor,
 * webhook ids seen recently, queued events. Incident data itself is never stored.
 *
 * The interface is deliberately narrow (get/set/delete, claim/release, list, purge) so
 * another backend can implement it. No Lua in here; see lapi_state.c for `fox.state`.
 *
 * Model
 * - A row is (ns, key) -> value with an expiry. ns, key and owner are NUL-terminated
 *   strings of 1..STATE_MAX_NAME bytes; values are byte strings (may hold NULs) of at
 *   most STATE_MAX_VALUE bytes.
 * - ttl is in seconds; 0 means forever. A row set with ttl N at wall-clock second t is
 *   visible up to and including second t+N: a TTL lasts at least N seconds, never
 *   less (a claim must not lapse early). Expired rows are invisible to every call and
 *   are deleted by state_purge.
 * - A claim is a row whose value is the owner: state_claim succeeds when the row is
 *   absent, expired, or already holds the same owner (which extends it). Claims and
 *   values share the key space, so keep claims in their own namespace.
 * - Every write call is one transaction, durable on disk when the call returns
 *   (synchronous=FULL; the reasoning is at the top of state.c); state_write_many
 *   makes several rows one transaction (see state_group.h for committing the writes
 *   of many callers together). Times are wall-clock
 *   seconds (time(NULL)) because they must mean the same thing after a restart.
 * - A handle is used from one thread. Only one process may open a directory at a time.
 *
 * Errors: functions return -1 and write a message (naming the database path) into
 * err[errlen]; err may be NULL when errlen is 0. */
#include <stddef.h>
#include <stdint.h>

#define STATE_MAX_NAME  1024                  /* bytes in an ns, key or owner */
#define STATE_MAX_VALUE (16u * 1024 * 1024)   /* bytes in a value */
#define STATE_SCHEMA_VERSION 1                /* schema this build writes */

typedef struct state state;

/* One row returned by state_list. key and value are malloc'd and NUL-terminated
 * (value may also contain NULs; value_len excludes the terminator). */
typedef struct state_entry {
    char *key;
    char *value;
    size_t value_len;
    int64_t expires_at;   /* wall-clock seconds; 0 = never */
} state_entry;

/* Seconds since the epoch; replaces time(NULL) for tests. */
typedef int64_t (*state_clock_fn)(void *ud);

/* Opens (creating when missing, with mode 0700) the state directory `dir` and the
 * database <dir>/fox.db, applies pending schema migrations and prepares statements.
 * Fails with a message naming the path and what to do when another process holds the
 * directory (lock file <dir>/fox.lock), when fox.db is corrupt or not a fox database,
 * or when it was written by a newer fox. On success *out owns the handle (free it with
 * state_close) and 0 is returned. */
int state_open(const char *dir, state **out, char *err, size_t errlen);

/* Closes the database (checkpointing the WAL) and releases the directory lock.
 * NULL is a no-op. */
void state_close(state *st);

/* The canonical (realpath) state directory of st; owned by st. */
const char *state_dir(const state *st);

/* The database file path of st; owned by st. */
const char *state_db_path(const state *st);

/* Replaces the clock of st (NULL restores time(NULL)). For tests. */
void state_set_clock(state *st, state_clock_fn fn, void *ud);

/* Looks up (ns, key). Returns 1 and a malloc'd NUL-terminated copy in *value (length
 * in *len, which may be NULL) when a live row exists; 0 with *value = NULL when there
 * is none or it expired; -1 on error. The caller frees *value. */
int state_get(state *st, const char *ns, const char *key, char **value, size_t *len,
              char *err, size_t errlen);

/* Stores value[len] under (ns, key), replacing any row (including a claim), expiring
 * after ttl seconds (0 = never). value may be NULL when len is 0. Returns 0 / -1. */
int state_set(state *st, const char *ns, const char *key, const void *value, size_t len,
              int64_t ttl, char *err, size_t errlen);

/* One row to store with state_write_many: what state_set takes. Not owned. */
typedef struct state_write {
    const char *ns;
    const char *key;
    const void *value;   /* may be NULL when len is 0 */
    size_t len;
    int64_t ttl;         /* seconds, 0 = forever */
} state_write;

/* Checks w as state_set would (names, ttl, value size) without touching the database.
 * Returns 0 / -1 with err filled. */
int state_write_check(const state_write *w, char *err, size_t errlen);

/* Stores n rows in one transaction (one commit, one fsync): all of them or none.
 * Every row is checked first; an invalid one fails the call before anything is
 * written. Returns 0 / -1. */
int state_write_many(state *st, const state_write *writes, size_t n, char *err,
                     size_t errlen);

/* Removes (ns, key) if present. Returns 0 / -1. */
int state_delete(state *st, const char *ns, const char *key, char *err, size_t errlen);

/* Atomically claims (ns, key) for owner for ttl seconds (0 = until released).
 * Returns 1 when owner now holds the claim (it was free, expired, or already owner's:
 * then its expiry is extended), 0 when another owner holds an unexpired claim, -1 on
 * error. On 0, when holder is not NULL, *holder receives a malloc'd copy of the
 * current holder's value (caller frees) and, when holder_expires is not NULL,
 * *holder_expires its expiry (0 = never). */
int state_claim(state *st, const char *ns, const char *key, const char *owner,
                int64_t ttl, char **holder, int64_t *holder_expires,
                char *err, size_t errlen);

/* Releases owner's claim on (ns, key). Returns 1 when it was owner's (live) claim and is
 * now gone, 0 when owner did not hold it (absent, expired or someone else's; nothing
 * is changed), -1 on error. */
int state_release(state *st, const char *ns, const char *key, const char *owner,
                  char *err, size_t errlen);

/* Lists live rows of ns whose key starts with prefix (NULL or "" = all), in key order,
 * at most limit rows (0 = no limit). On success *out is a malloc'd array of *count
 * entries (NULL when 0) that the caller frees with state_entries_free. Returns 0 / -1. */
int state_list(state *st, const char *ns, const char *prefix, size_t limit,
               state_entry **out, size_t *count, char *err, size_t errlen);

/* Frees an array returned by state_list. */
void state_entries_free(state_entry *entries, size_t count);

/* Deletes expired rows, at most limit of them (0 = all) so a periodic call stays
 * short. Stores the number deleted in *deleted (may be NULL). Returns 0 / -1. */
int state_purge(state *st, size_t limit, size_t *deleted, char *err, size_t errlen);

/* The schema version recorded in the database (the highest migration applied), or -1
 * with err filled. */
int state_schema_version(state *st, char *err, size_t errlen);
#endif
