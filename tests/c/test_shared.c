/* shared.c: values, add, incr, TTL on an injected clock, LRU eviction under the
 * capacity, many keys, ordered key listing. */
#include "fox/shared.h"
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>

static double fake_now = 1000.0;
static double fake_clock(void) {
    return fake_now;
}

static void fresh(size_t capacity) {
    shared_shutdown();
    shared_set_clock(fake_clock);
    fake_now = 1000.0;
    CHECK_EQ_INT(shared_init(capacity, NULL, 0), 0);
}

static shared_value sv_str(const char *s) {
    shared_value v = {SHARED_STRING, s, strlen(s), 0, 0, 0};
    return v;
}
static shared_value sv_int(int64_t i) {
    shared_value v = {SHARED_INTEGER, NULL, 0, i, 0, 0};
    return v;
}
static shared_value sv_float(double d) {
    shared_value v = {SHARED_FLOAT, NULL, 0, 0, d, 0};
    return v;
}

static int set(const char *k, shared_value v, double ttl) {
    return shared_set(k, strlen(k), &v, ttl, 0, NULL, 0);
}

static shared_value get(const char *k) {
    shared_value v;
    shared_get(k, strlen(k), &v);
    return v;
}

TEST(values_keep_their_type) {
    fresh(0);
    shared_value b = {SHARED_BOOLEAN, NULL, 0, 0, 0, 1};
    CHECK_EQ_INT(set("s", sv_str("hello"), 0), 0);
    CHECK_EQ_INT(set("i", sv_int(-42), 0), 0);
    CHECK_EQ_INT(set("f", sv_float(2.5), 0), 0);
    CHECK_EQ_INT(set("b", b, 0), 0);
    CHECK_EQ_INT(get("s").type, SHARED_STRING);
    CHECK_EQ_STR(get("s").str, "hello");
    CHECK_EQ_INT(get("i").type, SHARED_INTEGER);
    CHECK_EQ_INT(get("i").i, -42);
    CHECK_EQ_INT(get("f").type, SHARED_FLOAT);
    CHECK(get("f").d == 2.5);
    CHECK_EQ_INT(get("b").type, SHARED_BOOLEAN);
    CHECK_EQ_INT(get("b").b, 1);
    CHECK_EQ_INT(get("missing").type, SHARED_NIL);
    /* Overwrite with another type, then delete by storing nil. */
    CHECK_EQ_INT(set("s", sv_int(7), 0), 0);
    CHECK_EQ_INT(get("s").i, 7);
    shared_value nil = {SHARED_NIL, NULL, 0, 0, 0, 0};
    CHECK_EQ_INT(set("s", nil, 0), 0);
    CHECK_EQ_INT(get("s").type, SHARED_NIL);
    CHECK_EQ_INT(shared_count(), 3);
}

TEST(binary_keys_and_values) {
    fresh(0);
    const char key[] = {'a', '\0', 'b'};
    const char val[] = {'x', '\0', 'y', '\0'};
    shared_value v = {SHARED_STRING, val, 4, 0, 0, 0};
    CHECK_EQ_INT(shared_set(key, 3, &v, 0, 0, NULL, 0), 0);
    shared_value out;
    CHECK_EQ_INT(shared_get(key, 3, &out), 1);
    CHECK_EQ_INT(out.len, 4);
    CHECK(memcmp(out.str, val, 4) == 0);
    CHECK_EQ_INT(shared_get("a", 1, &out), 0); /* a prefix is another key */
}

TEST(add_only_when_absent) {
    fresh(0);
    shared_value v = sv_str("first"), w = sv_str("second");
    CHECK_EQ_INT(shared_set("k", 1, &v, 0, 1, NULL, 0), 0);
    CHECK_EQ_INT(shared_set("k", 1, &w, 0, 1, NULL, 0), 1);
    CHECK_EQ_STR(get("k").str, "first");
    /* An expired entry counts as absent. */
    CHECK_EQ_INT(shared_set("t", 1, &v, 5, 1, NULL, 0), 0);
    fake_now += 6;
    CHECK_EQ_INT(shared_set("t", 1, &w, 0, 1, NULL, 0), 0);
    CHECK_EQ_STR(get("t").str, "second");
}

TEST(ttl_expires_and_is_reported) {
    fresh(0);
    CHECK_EQ_INT(set("short", sv_str("v"), 10), 0);
    CHECK_EQ_INT(set("forever", sv_str("v"), 0), 0);
    fake_now += 4;
    CHECK(shared_ttl("short", 5) > 5.9 && shared_ttl("short", 5) < 6.1);
    CHECK(shared_ttl("forever", 7) == 0);
    CHECK(shared_ttl("nope", 4) < 0);
    CHECK_EQ_INT(shared_count(), 2);
    fake_now += 6; /* exactly at expiry: gone */
    CHECK_EQ_INT(get("short").type, SHARED_NIL);
    CHECK(shared_ttl("short", 5) < 0);
    CHECK_EQ_INT(shared_count(), 1);
    shared_stats st;
    shared_get_stats(&st);
    CHECK_EQ_INT(st.expired, 1);
    /* Setting again without ttl removes the expiry. */
    CHECK_EQ_INT(set("x", sv_int(1), 3), 0);
    CHECK_EQ_INT(set("x", sv_int(2), 0), 0);
    fake_now += 100;
    CHECK_EQ_INT(get("x").i, 2);
}

TEST(expired_entries_are_swept_without_access) {
    fresh(0);
    char key[32];
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof key, "tmp:%d", i);
        set(key, sv_int(i), 1);
    }
    fake_now += 2;
    /* Writes to other keys drive the incremental sweep. */
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "live:%d", i % 10);
        set(key, sv_int(i), 0);
    }
    shared_stats st;
    shared_get_stats(&st);
    CHECK(st.expired > 0);
    CHECK_EQ_INT(shared_count(), 10);
}

TEST(incr_semantics) {
    fresh(0);
    shared_value out, one = sv_int(1), init = sv_int(100);
    char err[64];
    CHECK_EQ_INT(shared_incr("n", 1, &one, NULL, 0, &out, err, sizeof err), -1);
    CHECK_EQ_STR(err, "not found");
    CHECK_EQ_INT(shared_incr("n", 1, &one, &init, 0, &out, err, sizeof err), 0);
    CHECK_EQ_INT(out.type, SHARED_INTEGER);
    CHECK_EQ_INT(out.i, 101);
    CHECK_EQ_INT(shared_incr("n", 1, &one, &init, 0, &out, err, sizeof err), 0);
    CHECK_EQ_INT(out.i, 102);
    shared_value half = sv_float(0.5);
    CHECK_EQ_INT(shared_incr("n", 1, &half, NULL, 0, &out, err, sizeof err), 0);
    CHECK_EQ_INT(out.type, SHARED_FLOAT);
    CHECK(out.d == 102.5);
    set("s", sv_str("text"), 0);
    CHECK_EQ_INT(shared_incr("s", 1, &one, &init, 0, &out, err, sizeof err), -1);
    CHECK_EQ_STR(err, "not a number");
    /* Wraps like Lua integers. */
    set("max", sv_int(INT64_MAX), 0);
    CHECK_EQ_INT(shared_incr("max", 3, &one, NULL, 0, &out, err, sizeof err), 0);
    CHECK(out.i == INT64_MIN);
}

TEST(incr_keeps_expiry_and_init_ttl_applies) {
    fresh(0);
    shared_value out, one = sv_int(1), zero = sv_int(0);
    CHECK_EQ_INT(shared_incr("bucket", 6, &one, &zero, 10, &out, NULL, 0), 0);
    fake_now += 5;
    CHECK_EQ_INT(shared_incr("bucket", 6, &one, &zero, 10, &out, NULL, 0), 0);
    CHECK_EQ_INT(out.i, 2);
    fake_now += 5.5; /* 10.5 s after creation: the window ended, counting restarts */
    CHECK_EQ_INT(shared_incr("bucket", 6, &one, &zero, 10, &out, NULL, 0), 0);
    CHECK_EQ_INT(out.i, 1);
}

TEST(capacity_evicts_least_recently_used) {
    /* 1024 buckets * 8 bytes + room for a few hundred small entries. */
    fresh(64 * 1024);
    char key[32];
    CHECK_EQ_INT(set("keep", sv_str("me"), 0), 0);
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "k:%05d", i);
        CHECK_EQ_INT(set(key, sv_str("some value of moderate length"), 0), 0);
        if (i % 50 == 0) CHECK_EQ_STR(get("keep").str, "me"); /* in use: survives */
        shared_stats st;
        shared_get_stats(&st);
        CHECK(st.bytes <= st.capacity);
    }
    shared_stats st;
    shared_get_stats(&st);
    CHECK(st.evictions > 0);
    CHECK(shared_count() < 5000);
    CHECK_EQ_STR(get("keep").str, "me");
    CHECK_EQ_INT(get("k:00000").type, SHARED_NIL);                   /* oldest: evicted */
    CHECK_EQ_STR(get("k:04999").str, "some value of moderate length"); /* newest: kept */
}

TEST(entry_larger_than_capacity_refused) {
    fresh(64 * 1024);
    size_t n = 70 * 1024;
    char *big = malloc(n);
    memset(big, 'x', n);
    shared_value v = {SHARED_STRING, big, n, 0, 0, 0};
    char err[64] = "";
    set("small", sv_str("v"), 0);
    CHECK_EQ_INT(shared_set("big", 3, &v, 0, 0, err, sizeof err), -1);
    CHECK_EQ_STR(err, "no memory");
    CHECK_EQ_STR(get("small").str, "v"); /* nothing was evicted for a hopeless write */
    free(big);
}

TEST(growing_a_value_in_place_evicts_others_not_itself) {
    fresh(32 * 1024);
    char key[32];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "k%d", i);
        set(key, sv_str("0123456789012345678901234567890123456789"), 0);
    }
    size_t n = 20 * 1024;
    char *big = malloc(n);
    memset(big, 'y', n);
    shared_value v = {SHARED_STRING, big, n, 0, 0, 0};
    CHECK_EQ_INT(shared_set("k0", 2, &v, 0, 0, NULL, 0), 0);
    shared_value out;
    CHECK_EQ_INT(shared_get("k0", 2, &out), 1);
    CHECK_EQ_INT(out.len, n);
    shared_stats st;
    shared_get_stats(&st);
    CHECK(st.bytes <= st.capacity);
    CHECK(st.evictions > 0);
    free(big);
}

TEST(many_keys_resize_and_stay_reachable) {
    fresh(0);
    char key[32];
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "incident:%d", i);
        if (set(key, sv_int(i), 0) != 0) {
            CHECK(0);
            break;
        }
    }
    CHECK_EQ_INT(shared_count(), n);
    int wrong = 0;
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "incident:%d", i);
        shared_value v = get(key);
        wrong += v.type != SHARED_INTEGER || v.i != i;
    }
    CHECK_EQ_INT(wrong, 0);
    for (int i = 0; i < n; i += 2) {
        snprintf(key, sizeof key, "incident:%d", i);
        CHECK_EQ_INT(shared_delete(key, strlen(key)), 1) ;
    }
    CHECK_EQ_INT(shared_count(), n / 2);
    CHECK_EQ_INT(shared_delete("incident:0", 10), 0);
}

typedef struct collected {
    char keys[16][32];
    int n;
} collected;

static int collect(const char *key, size_t len, void *ud) {
    collected *c = ud;
    if (c->n < 16) snprintf(c->keys[c->n++], 32, "%.*s", (int)len, key);
    return 0;
}

TEST(keys_prefix_order_and_max) {
    fresh(0);
    set("b:2", sv_int(1), 0);
    set("a:1", sv_int(1), 0);
    set("b:10", sv_int(1), 0);
    set("b:1", sv_int(1), 0);
    set("b:gone", sv_int(1), 1);
    set("c", sv_int(1), 0);
    fake_now += 2;
    collected c = {.n = 0};
    CHECK_EQ_INT(shared_keys("b:", 2, 0, collect, &c, NULL, 0), 0);
    CHECK_EQ_INT(c.n, 3);
    CHECK_EQ_STR(c.keys[0], "b:1");
    CHECK_EQ_STR(c.keys[1], "b:10");
    CHECK_EQ_STR(c.keys[2], "b:2");
    c.n = 0;
    CHECK_EQ_INT(shared_keys("", 0, 2, collect, &c, NULL, 0), 0);
    CHECK_EQ_INT(c.n, 2);
    CHECK_EQ_STR(c.keys[0], "a:1");
    CHECK_EQ_STR(c.keys[1], "b:1");
}

TEST(key_limits) {
    fresh(0);
    char err[64];
    shared_value v = sv_int(1);
    CHECK_EQ_INT(shared_set("", 0, &v, 0, 0, err, sizeof err), -1);
    CHECK_EQ_STR(err, "empty key");
    char *long_key = malloc(SHARED_KEY_MAX + 1);
    memset(long_key, 'k', SHARED_KEY_MAX + 1);
    CHECK_EQ_INT(shared_set(long_key, SHARED_KEY_MAX + 1, &v, 0, 0, err, sizeof err), -1);
    CHECK_EQ_STR(err, "key too long");
    free(long_key);
}

TEST(flush_empties) {
    fresh(0);
    set("a", sv_str("1"), 0);
    set("b", sv_str("2"), 5);
    shared_flush();
    CHECK_EQ_INT(shared_count(), 0);
    CHECK_EQ_INT(get("a").type, SHARED_NIL);
    set("c", sv_str("3"), 0);
    CHECK_EQ_STR(get("c").str, "3");
}

int main(void) {
    int rc = RUN_TESTS();
    shared_shutdown();
    return rc;
}
