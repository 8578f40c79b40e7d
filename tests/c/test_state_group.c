/* Group commit (state_group.c) and multi-row transactions (state_write_many): writers
 * of one loop turn share one commit; nobody hears "durable" before it; a failed commit
 * stores nothing of the group and every member hears the error; a member that leaves
 * writes nothing. */
#include "harness.h"
#include "loop_helpers.h"
#include "fox/state.h"
#include "fox/state_group.h"

#include <sqlite3.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char tmp_root[256];

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *f) {
    (void)sb, (void)flag, (void)f;
    return remove(path);
}

static state *open_fresh(void) {
    if (tmp_root[0]) nftw(tmp_root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    const char *base = getenv("TMPDIR");
    snprintf(tmp_root, sizeof tmp_root, "%s/fox-group-test-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        exit(2);
    }
    char err[512] = "";
    state *st = NULL;
    if (state_open(tmp_root, &st, err, sizeof err) != 0) {
        fprintf(stderr, "state_open: %s\n", err);
        exit(2);
    }
    return st;
}

/* Makes every insert of key "boom" fail, from a second connection (as a disk error
 * would make a commit fail: the group must then store nothing). */
static void inject_failure(state *st) {
    sqlite3 *db = NULL;
    CHECK_EQ_INT(sqlite3_open(state_db_path(st), &db), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db, "CREATE TRIGGER fail_boom BEFORE INSERT ON kv WHEN NEW.key = "
                              "'boom' BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
                          NULL, NULL, &msg);
    if (rc != SQLITE_OK) fprintf(stderr, "  trigger: %s\n", msg ? msg : "?");
    CHECK_EQ_INT(rc, SQLITE_OK);
    sqlite3_free(msg);
    sqlite3_close(db);
}

static int has_row(state *st, const char *ns, const char *key) {
    char *v = NULL;
    char err[256];
    int rc = state_get(st, ns, key, &v, NULL, err, sizeof err);
    free(v);
    return rc;
}

typedef struct outcome {
    int called;
    int ok;
    char err[256];
    int *all_done;   /* counts down to 0 */
} outcome;

static void on_done(void *ud, int ok, const char *err) {
    outcome *o = ud;
    o->called++;
    o->ok = ok;
    snprintf(o->err, sizeof o->err, "%s", err ? err : "");
    if (o->all_done) (*o->all_done)--;
}

static int finished(int remaining) { return remaining == 0; }

TEST(write_many_stores_every_row_or_none) {
    state *st = open_fresh();
    char err[512];
    state_write ok_rows[] = {{"queue", "a", "1", 1, 0}, {"webhooks", "w", "a", 1, 60}};
    CHECK_EQ_INT(state_write_many(st, ok_rows, 2, err, sizeof err), 0);
    CHECK_EQ_INT(has_row(st, "queue", "a"), 1);
    CHECK_EQ_INT(has_row(st, "webhooks", "w"), 1);

    inject_failure(st);
    state_write bad_rows[] = {{"queue", "b", "2", 1, 0}, {"queue", "boom", "3", 1, 0}};
    CHECK_EQ_INT(state_write_many(st, bad_rows, 2, err, sizeof err), -1);
    CHECK(strstr(err, "injected failure") != NULL);
    CHECK_EQ_INT(has_row(st, "queue", "b"), 0);   /* rolled back with the failing row */

    state_write invalid[] = {{"queue", "c", "x", 1, 0}, {"queue", "", "x", 1, 0}};
    CHECK_EQ_INT(state_write_many(st, invalid, 2, err, sizeof err), -1);
    CHECK(strstr(err, "key") != NULL);
    CHECK_EQ_INT(has_row(st, "queue", "c"), 0);   /* checked before anything is written */
    state_close(st);
}

TEST(writers_of_one_turn_share_one_commit_and_hear_after_it) {
    state *st = open_fresh();
    state_group *g = state_group_new(st);
    CHECK(g != NULL);
    int remaining = 3;
    outcome o[3] = {{.all_done = &remaining}, {.all_done = &remaining}, {.all_done = &remaining}};
    const char *keys[3] = {"i1", "i2", "i3"};
    char err[256];
    for (int i = 0; i < 3; i++) {
        state_write rows[] = {{"queue", keys[i], "entry", 5, 0}, {"webhooks", keys[i], "id", 2, 60}};
        CHECK(state_group_join(g, rows, 2, on_done, &o[i], err, sizeof err) != NULL);
    }
    /* Nothing is on disk and nobody has heard anything before the loop turns. */
    CHECK_EQ_INT(has_row(st, "queue", "i1"), 0);
    CHECK_EQ_INT(o[0].called, 0);
    for (int spins = 0; spins < 100 && !finished(remaining); spins++)
        event_base_loop(loop_base(), EVLOOP_ONCE | EVLOOP_NONBLOCK);
    CHECK_EQ_INT(remaining, 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(o[i].called, 1);
        CHECK_EQ_INT(o[i].ok, 1);
        CHECK_EQ_INT(has_row(st, "queue", keys[i]), 1);
        CHECK_EQ_INT(has_row(st, "webhooks", keys[i]), 1);
    }
    state_group_stats s = state_group_get_stats(g);
    CHECK_EQ_INT((int)s.commits, 1);
    CHECK_EQ_INT((int)s.rows, 6);
    CHECK_EQ_INT((int)s.members, 3);
    CHECK_EQ_INT((int)s.failed, 0);
    state_group_free(g);
    state_close(st);
}

TEST(a_failed_commit_fails_every_member_and_stores_nothing) {
    state *st = open_fresh();
    inject_failure(st);
    state_group *g = state_group_new(st);
    int remaining = 2;
    outcome good = {.all_done = &remaining}, bad = {.all_done = &remaining};
    char err[256];
    state_write a[] = {{"queue", "fine", "entry", 5, 0}};
    state_write b[] = {{"queue", "boom", "entry", 5, 0}};
    CHECK(state_group_join(g, a, 1, on_done, &good, err, sizeof err) != NULL);
    CHECK(state_group_join(g, b, 1, on_done, &bad, err, sizeof err) != NULL);
    run_until(&(int){0}, 0.05);
    CHECK_EQ_INT(remaining, 0);
    CHECK_EQ_INT(good.ok, 0);
    CHECK_EQ_INT(bad.ok, 0);
    CHECK(strstr(good.err, "injected failure") != NULL);
    CHECK_EQ_INT(has_row(st, "queue", "fine"), 0);
    CHECK_EQ_INT((int)state_group_get_stats(g).failed, 1);

    /* The next group is independent of the failed one. */
    remaining = 1;
    outcome later = {.all_done = &remaining};
    CHECK(state_group_join(g, a, 1, on_done, &later, err, sizeof err) != NULL);
    CHECK_EQ_INT(state_group_flush(g), 0);
    CHECK_EQ_INT(later.ok, 1);
    CHECK_EQ_INT(has_row(st, "queue", "fine"), 1);
    state_group_free(g);
    state_close(st);
}

TEST(a_member_that_leaves_writes_nothing_and_hears_nothing) {
    state *st = open_fresh();
    state_group *g = state_group_new(st);
    int remaining = 1;
    outcome stays = {.all_done = &remaining}, leaves = {0};
    char err[256];
    state_write a[] = {{"queue", "stays", "v", 1, 0}};
    state_write b[] = {{"queue", "leaves", "v", 1, 0}};
    CHECK(state_group_join(g, a, 1, on_done, &stays, err, sizeof err) != NULL);
    state_group_member *m = state_group_join(g, b, 1, on_done, &leaves, err, sizeof err);
    CHECK(m != NULL);
    state_group_leave(m);
    run_until(&(int){0}, 0.05);
    CHECK_EQ_INT(stays.ok, 1);
    CHECK_EQ_INT(leaves.called, 0);
    CHECK_EQ_INT(has_row(st, "queue", "stays"), 1);
    CHECK_EQ_INT(has_row(st, "queue", "leaves"), 0);

    /* The only member leaving cancels the commit altogether. */
    m = state_group_join(g, b, 1, on_done, &leaves, err, sizeof err);
    state_group_leave(m);
    run_until(&(int){0}, 0.05);
    CHECK_EQ_INT((int)state_group_get_stats(g).commits, 1);
    state_group_free(g);
    state_close(st);
}

TEST(an_invalid_row_is_refused_at_join) {
    state *st = open_fresh();
    state_group *g = state_group_new(st);
    outcome o = {0};
    char err[256] = "";
    state_write rows[] = {{"queue", "ok", "v", 1, 0}, {"queue", "neg", "v", 1, -1}};
    CHECK(state_group_join(g, rows, 2, on_done, &o, err, sizeof err) == NULL);
    CHECK(strstr(err, "ttl") != NULL);
    CHECK_EQ_INT(state_group_flush(g), 0);
    CHECK_EQ_INT(o.called, 0);
    CHECK_EQ_INT(has_row(st, "queue", "ok"), 0);
    state_group_free(g);
    state_close(st);
}

TEST(freeing_a_group_commits_what_is_pending) {
    state *st = open_fresh();
    state_group *g = state_group_new(st);
    outcome o = {0};
    char err[256];
    state_write rows[] = {{"queue", "last", "v", 1, 0}};
    CHECK(state_group_join(g, rows, 1, on_done, &o, err, sizeof err) != NULL);
    state_group_free(g);
    CHECK_EQ_INT(o.called, 1);
    CHECK_EQ_INT(o.ok, 1);
    CHECK_EQ_INT(has_row(st, "queue", "last"), 1);
    state_close(st);
}

/* Joins `rows` one-row members from inside a loop callback, as HTTP handlers do. */
typedef struct join_burst {
    state_group *g;
    int rows;
    outcome *o;
    int remaining;
} join_burst;

static void join_burst_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    join_burst *b = arg;
    char err[256], key[32];
    for (int i = 0; i < b->rows; i++) {
        snprintf(key, sizeof key, "k%d", i);
        state_write rows[] = {{"queue", key, "v", 1, 0}};
        b->o[i].all_done = &b->remaining;
        CHECK(state_group_join(b->g, rows, 1, on_done, &b->o[i], err, sizeof err) != NULL);
    }
}

/* Runs one loop turn in which a callback joins n rows; returns the commits made. */
static int commits_in_the_joining_turn(int n) {
    state *st = open_fresh();
    state_group *g = state_group_new(st);
    join_burst b = {g, n, calloc((size_t)n, sizeof(outcome)), n};
    struct event *ev = event_new(loop_base(), -1, 0, join_burst_cb, &b);
    event_active(ev, 0, 0);
    event_base_loop(loop_base(), EVLOOP_ONCE | EVLOOP_NONBLOCK);
    int commits = (int)state_group_get_stats(g).commits;
    run_until(&(int){0}, 0.02);
    CHECK_EQ_INT(b.remaining, 0);   /* committed by the next turn in any case */
    event_free(ev);
    free(b.o);
    state_group_free(g);
    state_close(st);
    return commits;
}

TEST(a_small_group_waits_for_the_turn_to_end_and_a_full_one_does_not) {
    /* Others joining in the same turn still make it into a small group... */
    CHECK_EQ_INT(commits_in_the_joining_turn(3), 0);
    /* ...but a full one commits before the turn ends (bounded size and latency). */
    CHECK_EQ_INT(commits_in_the_joining_turn(STATE_GROUP_MAX_ROWS), 1);
}

int main(void) {
    char err[256];
    if (loop_init(err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    int rc = RUN_TESTS();
    if (tmp_root[0]) nftw(tmp_root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    loop_free();
    return rc;
}
