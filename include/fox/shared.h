#ifndef FOX_SHARED_H
#define FOX_SHARED_H
/* The process-wide shared dictionary: owned by the C core, so it outlives every Lua
 * generation (hot reload keeps its contents). No Lua in here.
 *
 * - Keys are byte strings (1..SHARED_KEY_MAX bytes); values are strings, integers,
 *   floats or booleans.
 * - Optional TTL in seconds on a monotonic clock. Expired entries are invisible at
 *   once and reclaimed lazily (on access) and by a small incremental sweep that runs
 *   every few writes.
 * - Capacity: FOX_SHARED_MAX_BYTES (default 64 MiB; suffixes K, M, G accepted) bounds
 *   the accounted memory (entries, keys, string values, buckets). A write that would
 *   exceed it first reclaims expired entries, then evicts least-recently-used entries
 *   (reads and writes count as use) until it fits, like a cache. Only a single entry
 *   larger than the whole capacity is refused ("no memory"). Evictions are counted in
 *   shared_stats so they can be watched.
 * - Keys are hashed with SipHash-1-3 under a per-process random key, so keys chosen by
 *   an attacker (incident titles, client addresses) cannot force collisions. */
#include <stddef.h>
#include <stdint.h>

#define SHARED_KEY_MAX 65535

typedef enum shared_type {
    SHARED_NIL = 0,     /* absent */
    SHARED_STRING,
    SHARED_INTEGER,
    SHARED_FLOAT,
    SHARED_BOOLEAN,
} shared_type;

typedef struct shared_value {
    shared_type type;
    const char *str;    /* SHARED_STRING: bytes (need not be NUL-terminated on input;
                           NUL-terminated on output, owned by the dictionary and valid
                           only until the next call into this module) */
    size_t len;         /* SHARED_STRING: length */
    int64_t i;          /* SHARED_INTEGER */
    double d;           /* SHARED_FLOAT */
    int b;              /* SHARED_BOOLEAN */
} shared_value;

typedef struct shared_stats {
    size_t count;       /* entries held, including expired ones not yet reclaimed */
    size_t bytes;       /* accounted memory */
    size_t capacity;    /* the limit on bytes */
    uint64_t evictions; /* live entries evicted to make room */
    uint64_t expired;   /* expired entries reclaimed */
} shared_stats;

/* Called for each key by shared_keys; return non-zero to stop early. */
typedef int (*shared_key_fn)(const char *key, size_t len, void *ud);

/* Sets the capacity (0: FOX_SHARED_MAX_BYTES or 64 MiB) and creates the table if
 * needed. Every other function initialises lazily, so calling this is optional. Lowering
 * the capacity below current use evicts at once. Returns 0, or -1 with err. */
int shared_init(size_t max_bytes, char *err, size_t errlen);
/* Frees every entry and the table (at exit; the next call starts empty). */
void shared_shutdown(void);

/* Looks up key. Returns 1 and fills *out when present and not expired, else 0 (out
 * type SHARED_NIL). Marks the entry recently used. */
int shared_get(const char *key, size_t klen, shared_value *out);
/* Stores v under key (copied). ttl > 0: expires ttl seconds from now; ttl <= 0: never.
 * v->type SHARED_NIL deletes. only_if_absent: leave an existing live entry alone and
 * return 1. Returns 0 stored, 1 exists (only_if_absent), -1 with err ("no memory",
 * "key too long", ...). */
int shared_set(const char *key, size_t klen, const shared_value *v, double ttl,
               int only_if_absent, char *err, size_t errlen);
/* Adds delta (integer or float) to the number under key, keeping its expiry. When the
 * key is absent: with init (not NULL) stores init + delta with ttl (> 0) and returns it;
 * without init fails with "not found". Integer + integer wraps like Lua; anything with
 * a float gives a float. Result in *out. Returns 0, or -1 with err ("not found",
 * "not a number", "no memory"). */
int shared_incr(const char *key, size_t klen, const shared_value *delta,
                const shared_value *init, double ttl, shared_value *out, char *err,
                size_t errlen);
/* Removes key. Returns 1 when a live entry was removed, else 0. */
int shared_delete(const char *key, size_t klen);
/* Remaining time to live: > 0 seconds; 0 when the entry never expires; -1 when absent. */
double shared_ttl(const char *key, size_t klen);
/* Number of live entries (reclaims expired entries first). */
size_t shared_count(void);
/* Calls fn for up to max (0: all) live keys starting with prefix, in byte order.
 * Returns 0, or -1 with err when out of memory. fn must not modify the dictionary. */
int shared_keys(const char *prefix, size_t plen, size_t max, shared_key_fn fn, void *ud,
                char *err, size_t errlen);
/* Removes every entry. */
void shared_flush(void);
void shared_get_stats(shared_stats *out);

/* Replaces the monotonic clock (seconds) for tests; NULL restores it. */
void shared_set_clock(double (*now)(void));
#endif
