/* The process-wide shared dictionary (see shared.h): a chained hash table with
 * power-of-two buckets, an LRU list for eviction, and TTLs on a monotonic clock. */
#include "fox/shared.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define SHARED_DEFAULT_MAX_BYTES ((size_t)64 << 20)
#define SHARED_MIN_BUCKETS 1024
#define SHARED_SWEEP_EVERY 64     /* writes between two incremental sweep steps */
#define SHARED_SWEEP_BUCKETS 64   /* buckets examined per sweep step */

typedef struct shared_entry {
    struct shared_entry *hnext;                /* bucket chain */
    struct shared_entry *lru_prev, *lru_next;  /* lru_prev toward the most recent */
    uint64_t hash;
    double expires;                            /* monotonic seconds; 0 = never */
    shared_type type;
    union {
        struct {
            char *p;  /* NUL-terminated copy */
            size_t len;
        } s;
        int64_t i;
        double d;
        int b;
    } v;
    size_t klen;
    char key[];   /* klen bytes and a NUL */
} shared_entry;

static struct {
    shared_entry **buckets;
    size_t nbuckets;        /* power of two, 0 before init */
    size_t count;
    size_t with_ttl;        /* entries that can expire: count() need not sweep when 0 */
    size_t bytes;
    size_t capacity;
    shared_entry *lru_head, *lru_tail;  /* most / least recently used */
    size_t sweep_cursor;
    unsigned writes;
    uint64_t evictions, expired;
    uint64_t seed[2];
    double (*clock)(void);
} shared_dict;

/* ---- hashing: SipHash-1-3 ---------------------------------------------------------- */

static uint64_t shared_rotl(uint64_t x, int b) {
    return (x << b) | (x >> (64 - b));
}

#define SHARED_SIPROUND                                                                 \
    do {                                                                                \
        v0 += v1, v1 = shared_rotl(v1, 13), v1 ^= v0, v0 = shared_rotl(v0, 32);         \
        v2 += v3, v3 = shared_rotl(v3, 16), v3 ^= v2;                                   \
        v0 += v3, v3 = shared_rotl(v3, 21), v3 ^= v0;                                   \
        v2 += v1, v1 = shared_rotl(v1, 17), v1 ^= v2, v2 = shared_rotl(v2, 32);         \
    } while (0)

static uint64_t shared_hash(const char *key, size_t len) {
    const unsigned char *p = (const unsigned char *)key;
    uint64_t k0 = shared_dict.seed[0], k1 = shared_dict.seed[1];
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
    size_t whole = len & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = 0;
        for (int j = 7; j >= 0; j--) m = (m << 8) | p[i + (size_t)j];
        v3 ^= m;
        SHARED_SIPROUND;
        v0 ^= m;
    }
    uint64_t last = (uint64_t)len << 56;
    for (size_t j = 0; j < (len & 7); j++) last |= (uint64_t)p[whole + j] << (8 * j);
    v3 ^= last;
    SHARED_SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    SHARED_SIPROUND;
    SHARED_SIPROUND;
    SHARED_SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static void shared_seed_hash(void) {
    if (getrandom(shared_dict.seed, sizeof shared_dict.seed, GRND_NONBLOCK) ==
        (ssize_t)sizeof shared_dict.seed)
        return;
    /* No entropy yet (early boot): still differ between processes. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    shared_dict.seed[0] = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ULL ^ (uint64_t)getpid();
    shared_dict.seed[1] = (uint64_t)ts.tv_sec * 0xC2B2AE3D27D4EB4FULL ^ (uintptr_t)&ts;
}

/* ---- clock, sizes ----------------------------------------------------------------- */

static double shared_monotonic_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void shared_set_clock(double (*now)(void)) {
    shared_dict.clock = now;
}

static double shared_now(void) {
    return shared_dict.clock ? shared_dict.clock() : shared_monotonic_now();
}

static size_t shared_entry_cost(size_t klen, const shared_value *v) {
    return sizeof(shared_entry) + klen + 1 + (v->type == SHARED_STRING ? v->len + 1 : 0);
}

static size_t shared_entry_size(const shared_entry *e) {
    return sizeof(shared_entry) + e->klen + 1 + (e->type == SHARED_STRING ? e->v.s.len + 1 : 0);
}

/* "64M", "512k", "1G" or plain bytes. Returns 0 on success. */
static int shared_parse_size(const char *s, size_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return -1;
    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: break;
    }
    if (*end == 'B' || *end == 'b') end++;
    if (*end || v == 0 || v > (SIZE_MAX >> shift)) return -1;
    *out = (size_t)(v << shift);
    return 0;
}

/* ---- LRU list and table ----------------------------------------------------------- */

static void shared_lru_unlink(shared_entry *e) {
    if (e->lru_prev) e->lru_prev->lru_next = e->lru_next;
    else shared_dict.lru_head = e->lru_next;
    if (e->lru_next) e->lru_next->lru_prev = e->lru_prev;
    else shared_dict.lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void shared_lru_push_head(shared_entry *e) {
    e->lru_prev = NULL;
    e->lru_next = shared_dict.lru_head;
    if (shared_dict.lru_head) shared_dict.lru_head->lru_prev = e;
    shared_dict.lru_head = e;
    if (!shared_dict.lru_tail) shared_dict.lru_tail = e;
}

static void shared_lru_touch(shared_entry *e) {
    if (shared_dict.lru_head == e) return;
    shared_lru_unlink(e);
    shared_lru_push_head(e);
}

static void shared_entry_free(shared_entry *e) {
    if (e->type == SHARED_STRING) free(e->v.s.p);
    free(e);
}

/* Unlinks e from its bucket chain and the LRU list, fixes the accounts, frees it. */
static void shared_remove(shared_entry *e) {
    shared_entry **pp = &shared_dict.buckets[e->hash & (shared_dict.nbuckets - 1)];
    while (*pp != e) pp = &(*pp)->hnext;
    *pp = e->hnext;
    shared_lru_unlink(e);
    shared_dict.count--;
    if (e->expires > 0) shared_dict.with_ttl--;
    shared_dict.bytes -= shared_entry_size(e);
    shared_entry_free(e);
}

static int shared_expired(const shared_entry *e, double now) {
    return e->expires > 0 && e->expires <= now;
}

static int shared_resize(size_t nbuckets) {
    shared_entry **nb = calloc(nbuckets, sizeof *nb);
    if (!nb) return -1;
    for (size_t i = 0; i < shared_dict.nbuckets; i++) {
        shared_entry *e = shared_dict.buckets[i];
        while (e) {
            shared_entry *next = e->hnext;
            size_t slot = e->hash & (nbuckets - 1);
            e->hnext = nb[slot];
            nb[slot] = e;
            e = next;
        }
    }
    shared_dict.bytes -= shared_dict.nbuckets * sizeof *nb;
    shared_dict.bytes += nbuckets * sizeof *nb;
    free(shared_dict.buckets);
    shared_dict.buckets = nb;
    shared_dict.nbuckets = nbuckets;
    return 0;
}

/* Evicts from the least recently used end (never keep) until bytes + need fits. */
static void shared_make_room(size_t need, const shared_entry *keep, double now) {
    while (shared_dict.bytes + need > shared_dict.capacity && shared_dict.lru_tail &&
           shared_dict.lru_tail != keep) {
        shared_entry *victim = shared_dict.lru_tail;
        if (shared_expired(victim, now)) shared_dict.expired++;
        else shared_dict.evictions++;
        shared_remove(victim);
    }
}

/* Reclaims expired entries in the next n buckets (all buckets when n >= nbuckets). */
static void shared_sweep(size_t n, double now) {
    if (shared_dict.with_ttl == 0 || shared_dict.nbuckets == 0) return;
    if (n > shared_dict.nbuckets) n = shared_dict.nbuckets;
    for (size_t k = 0; k < n; k++) {
        size_t slot = shared_dict.sweep_cursor++ & (shared_dict.nbuckets - 1);
        shared_entry *e = shared_dict.buckets[slot];
        while (e) {
            shared_entry *next = e->hnext;
            if (shared_expired(e, now)) {
                shared_dict.expired++;
                shared_remove(e);
            }
            e = next;
        }
    }
}

int shared_init(size_t max_bytes, char *err, size_t errlen) {
    if (max_bytes == 0) {
        const char *env = getenv("FOX_SHARED_MAX_BYTES");
        max_bytes = SHARED_DEFAULT_MAX_BYTES;
        if (env && *env && shared_parse_size(env, &max_bytes) != 0) {
            if (err && errlen)
                snprintf(err, errlen, "FOX_SHARED_MAX_BYTES: expected bytes like 67108864 or 64M, got '%s'", env);
            return -1;
        }
    }
    if (!shared_dict.buckets) {
        shared_seed_hash();
        shared_dict.buckets = calloc(SHARED_MIN_BUCKETS, sizeof *shared_dict.buckets);
        if (!shared_dict.buckets) {
            if (err && errlen) snprintf(err, errlen, "no memory");
            return -1;
        }
        shared_dict.nbuckets = SHARED_MIN_BUCKETS;
        shared_dict.bytes = SHARED_MIN_BUCKETS * sizeof *shared_dict.buckets;
    }
    shared_dict.capacity = max_bytes;
    shared_make_room(0, NULL, shared_now());
    return 0;
}

static int shared_ready(void) {
    if (shared_dict.buckets) return 0;
    if (shared_init(0, NULL, 0) == 0) return 0;
    /* A bad FOX_SHARED_MAX_BYTES must not disable the dictionary: use the default. */
    return shared_init(SHARED_DEFAULT_MAX_BYTES, NULL, 0);
}

void shared_flush(void) {
    shared_entry *e = shared_dict.lru_head;
    while (e) {
        shared_entry *next = e->lru_next;
        shared_entry_free(e);
        e = next;
    }
    if (shared_dict.buckets)
        memset(shared_dict.buckets, 0, shared_dict.nbuckets * sizeof *shared_dict.buckets);
    shared_dict.lru_head = shared_dict.lru_tail = NULL;
    shared_dict.count = shared_dict.with_ttl = 0;
    shared_dict.bytes = shared_dict.nbuckets * sizeof *shared_dict.buckets;
}

void shared_shutdown(void) {
    shared_flush();
    free(shared_dict.buckets);
    shared_dict.buckets = NULL;
    shared_dict.nbuckets = 0;
    shared_dict.bytes = 0;
    shared_dict.evictions = shared_dict.expired = 0;
}

/* The live entry for key, or NULL; an expired one found on the way is reclaimed. */
static shared_entry *shared_find(const char *key, size_t klen, uint64_t hash, double now) {
    shared_entry *e = shared_dict.buckets[hash & (shared_dict.nbuckets - 1)];
    for (; e; e = e->hnext) {
        if (e->hash == hash && e->klen == klen && memcmp(e->key, key, klen) == 0) {
            if (shared_expired(e, now)) {
                shared_dict.expired++;
                shared_remove(e);
                return NULL;
            }
            return e;
        }
    }
    return NULL;
}

static void shared_export(const shared_entry *e, shared_value *out) {
    memset(out, 0, sizeof *out);
    out->type = e->type;
    switch (e->type) {
    case SHARED_STRING: out->str = e->v.s.p, out->len = e->v.s.len; break;
    case SHARED_INTEGER: out->i = e->v.i; break;
    case SHARED_FLOAT: out->d = e->v.d; break;
    case SHARED_BOOLEAN: out->b = e->v.b; break;
    default: break;
    }
}

int shared_get(const char *key, size_t klen, shared_value *out) {
    memset(out, 0, sizeof *out);
    if (shared_ready() != 0 || klen == 0) return 0;
    shared_entry *e = shared_find(key, klen, shared_hash(key, klen), shared_now());
    if (!e) return 0;
    shared_lru_touch(e);
    shared_export(e, out);
    return 1;
}

static int shared_fail(char *err, size_t errlen, const char *why) {
    if (err && errlen) snprintf(err, errlen, "%s", why);
    return -1;
}

static int shared_check_key(size_t klen, char *err, size_t errlen) {
    if (klen == 0) return shared_fail(err, errlen, "empty key");
    if (klen > SHARED_KEY_MAX) return shared_fail(err, errlen, "key too long");
    return 0;
}

/* Writes v into e (whose previous value is already released or absent). The string copy
 * was made by the caller (newstr), so this cannot fail. */
static void shared_assign(shared_entry *e, const shared_value *v, char *newstr) {
    e->type = v->type;
    switch (v->type) {
    case SHARED_STRING: e->v.s.p = newstr, e->v.s.len = v->len; break;
    case SHARED_INTEGER: e->v.i = v->i; break;
    case SHARED_FLOAT: e->v.d = v->d; break;
    default: e->v.b = v->b != 0; break;
    }
}

static void shared_set_expiry(shared_entry *e, double expires) {
    if (e->expires > 0 && expires <= 0) shared_dict.with_ttl--;
    if (e->expires <= 0 && expires > 0) shared_dict.with_ttl++;
    e->expires = expires;
}

/* Stores v under key; expires 0 = never, < 0 = keep the entry's current expiry. */
static int shared_store(const char *key, size_t klen, uint64_t hash, shared_entry *e,
                        const shared_value *v, double expires, double now, char *err,
                        size_t errlen) {
    size_t cost = shared_entry_cost(klen, v);
    char *newstr = NULL;

    if (cost + shared_dict.nbuckets * sizeof *shared_dict.buckets > shared_dict.capacity)
        return shared_fail(err, errlen, "no memory");
    if (v->type == SHARED_STRING) {
        newstr = malloc(v->len + 1);
        if (!newstr) return shared_fail(err, errlen, "no memory");
        if (v->len) memcpy(newstr, v->str, v->len);
        newstr[v->len] = '\0';
    }
    if (e) {
        size_t old = shared_entry_size(e);
        shared_lru_touch(e);
        if (cost > old) shared_make_room(cost - old, e, now);
        if (e->type == SHARED_STRING) free(e->v.s.p);
        shared_assign(e, v, newstr);
        shared_dict.bytes = shared_dict.bytes - old + cost;
        if (expires >= 0) shared_set_expiry(e, expires);
        return 0;
    }
    if (shared_dict.count >= shared_dict.nbuckets) {
        /* Load factor 1: double. Failing to grow only makes chains longer. */
        size_t extra = shared_dict.nbuckets * sizeof *shared_dict.buckets;
        shared_make_room(extra + cost, NULL, now);
        if (shared_dict.bytes + extra + cost <= shared_dict.capacity)
            (void)shared_resize(shared_dict.nbuckets * 2);
    }
    shared_make_room(cost, NULL, now);
    e = malloc(sizeof *e + klen + 1);
    if (!e) {
        free(newstr);
        return shared_fail(err, errlen, "no memory");
    }
    memset(e, 0, sizeof *e);
    memcpy(e->key, key, klen);
    e->key[klen] = '\0';
    e->klen = klen;
    e->hash = hash;
    shared_assign(e, v, newstr);
    e->expires = 0;
    shared_set_expiry(e, expires > 0 ? expires : 0);
    size_t slot = hash & (shared_dict.nbuckets - 1);
    e->hnext = shared_dict.buckets[slot];
    shared_dict.buckets[slot] = e;
    shared_lru_push_head(e);
    shared_dict.count++;
    shared_dict.bytes += cost;
    return 0;
}

static void shared_note_write(double now) {
    if (++shared_dict.writes % SHARED_SWEEP_EVERY == 0) shared_sweep(SHARED_SWEEP_BUCKETS, now);
}

int shared_set(const char *key, size_t klen, const shared_value *v, double ttl,
               int only_if_absent, char *err, size_t errlen) {
    if (shared_check_key(klen, err, errlen) != 0) return -1;
    if (shared_ready() != 0) return shared_fail(err, errlen, "no memory");
    double now = shared_now();
    uint64_t hash = shared_hash(key, klen);
    shared_entry *e = shared_find(key, klen, hash, now);
    shared_note_write(now);
    if (v->type == SHARED_NIL) {
        if (e && !only_if_absent) shared_remove(e);
        return e && only_if_absent ? 1 : 0;
    }
    if (e && only_if_absent) {
        shared_lru_touch(e);
        return 1;
    }
    return shared_store(key, klen, hash, e, v, ttl > 0 ? now + ttl : 0, now, err, errlen);
}

int shared_incr(const char *key, size_t klen, const shared_value *delta,
                const shared_value *init, double ttl, shared_value *out, char *err,
                size_t errlen) {
    shared_value base, sum;
    double expires = -1; /* keep the existing expiry */

    memset(out, 0, sizeof *out);
    if (shared_check_key(klen, err, errlen) != 0) return -1;
    if (delta->type != SHARED_INTEGER && delta->type != SHARED_FLOAT)
        return shared_fail(err, errlen, "delta is not a number");
    if (shared_ready() != 0) return shared_fail(err, errlen, "no memory");
    double now = shared_now();
    uint64_t hash = shared_hash(key, klen);
    shared_entry *e = shared_find(key, klen, hash, now);
    shared_note_write(now);
    if (e) {
        if (e->type != SHARED_INTEGER && e->type != SHARED_FLOAT)
            return shared_fail(err, errlen, "not a number");
        shared_export(e, &base);
    } else {
        if (!init) return shared_fail(err, errlen, "not found");
        if (init->type != SHARED_INTEGER && init->type != SHARED_FLOAT)
            return shared_fail(err, errlen, "init is not a number");
        base = *init;
        expires = ttl > 0 ? now + ttl : 0;
    }
    memset(&sum, 0, sizeof sum);
    if (base.type == SHARED_INTEGER && delta->type == SHARED_INTEGER) {
        sum.type = SHARED_INTEGER;
        sum.i = (int64_t)((uint64_t)base.i + (uint64_t)delta->i); /* wraps like Lua */
    } else {
        sum.type = SHARED_FLOAT;
        sum.d = (base.type == SHARED_INTEGER ? (double)base.i : base.d) +
                (delta->type == SHARED_INTEGER ? (double)delta->i : delta->d);
    }
    if (shared_store(key, klen, hash, e, &sum, expires, now, err, errlen) != 0) return -1;
    *out = sum;
    return 0;
}

int shared_delete(const char *key, size_t klen) {
    if (klen == 0 || shared_ready() != 0) return 0;
    double now = shared_now();
    shared_entry *e = shared_find(key, klen, shared_hash(key, klen), now);
    if (!e) return 0;
    shared_remove(e);
    return 1;
}

double shared_ttl(const char *key, size_t klen) {
    if (klen == 0 || shared_ready() != 0) return -1;
    double now = shared_now();
    shared_entry *e = shared_find(key, klen, shared_hash(key, klen), now);
    if (!e) return -1;
    return e->expires > 0 ? e->expires - now : 0;
}

size_t shared_count(void) {
    if (shared_ready() != 0) return 0;
    shared_sweep(shared_dict.nbuckets, shared_now());
    return shared_dict.count;
}

static int shared_compare_entries(const void *a, const void *b) {
    const shared_entry *x = *(shared_entry *const *)a, *y = *(shared_entry *const *)b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);
    if (c) return c;
    return x->klen < y->klen ? -1 : x->klen > y->klen;
}

int shared_keys(const char *prefix, size_t plen, size_t max, shared_key_fn fn, void *ud,
                char *err, size_t errlen) {
    shared_entry **list = NULL;
    size_t n = 0;
    int rc = -1;

    if (shared_ready() != 0) return shared_fail(err, errlen, "no memory");
    double now = shared_now();
    shared_sweep(shared_dict.nbuckets, now);
    if (shared_dict.count == 0) return 0;
    list = malloc(shared_dict.count * sizeof *list);
    if (!list) {
        shared_fail(err, errlen, "no memory");
        goto cleanup;
    }
    for (shared_entry *e = shared_dict.lru_head; e; e = e->lru_next)
        if (e->klen >= plen && (plen == 0 || memcmp(e->key, prefix, plen) == 0)) list[n++] = e;
    qsort(list, n, sizeof *list, shared_compare_entries);
    if (max && n > max) n = max;
    for (size_t i = 0; i < n; i++)
        if (fn(list[i]->key, list[i]->klen, ud)) break;
    rc = 0;
cleanup:
    free(list);
    return rc;
}

void shared_get_stats(shared_stats *out) {
    (void)shared_ready();
    out->count = shared_dict.count;
    out->bytes = shared_dict.bytes;
    out->capacity = shared_dict.capacity;
    out->evictions = shared_dict.evictions;
    out->expired = shared_dict.expired;
}
