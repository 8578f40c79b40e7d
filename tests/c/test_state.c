/* Durable state (state.c): operations, TTLs with an injected clock, claims, persistence,
 * and the clear failures at open (locked directory, corrupt or foreign database). */
#include "harness.h"
#include "fox/state.h"

#include <sqlite3.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t fake_now;
static int64_t fake_clock(void *ud) {
    (void)ud;
    return fake_now;
}

static char tmp_root[256];

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *f) {
    (void)sb, (void)flag, (void)f;
    return remove(path);
}

/* A fresh, empty directory name under a per-test temporary root (not yet created). */
static const char *fresh_dir(const char *name) {
    static char path[512];
    if (tmp_root[0]) nftw(tmp_root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    const char *base = getenv("TMPDIR");
    snprintf(tmp_root, sizeof tmp_root, "%s/fox-state-test-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        exit(2);
    }
    snprintf(path, sizeof path, "%s/%s", tmp_root, name);
    return path;
}

static state *open_ok(const char *dir) {
    char err[512] = "";
    state *st = NULL;
    int rc = state_open(dir, &st, err, sizeof err);
    if (rc != 0) fprintf(stderr, "  state_open(%s): %s\n", dir, err);
    CHECK_EQ_INT(rc, 0);
    if (st) {
        fake_now = 1000000;
        state_set_clock(st, fake_clock, NULL);
    }
    return st;
}

static int file_exists(const char *dir, const char *name) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat sb;
    return stat(p, &sb) == 0;
}

static void write_file(const char *dir, const char *name, const void *data, size_t len) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) {
        perror(p);
        exit(2);
    }
    fwrite(data, 1, len, f);
    fclose(f);
}

/* Runs SQL on <dir>/fox.db with a connection of its own; returns the first column of
 * the first row as a static string ("" when none). */
static const char *raw_sql(const char *dir, const char *sql) {
    static char out[256];
    char p[600];
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    out[0] = '\0';
    snprintf(p, sizeof p, "%s/fox.db", dir);
    if (sqlite3_open(p, &db) != SQLITE_OK) goto cleanup;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
        snprintf(out, sizeof out, "error: %s", sqlite3_errmsg(db));
        goto cleanup;
    }
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
        snprintf(out, sizeof out, "%s", (const char *)sqlite3_column_text(s, 0));
cleanup:
    sqlite3_finalize(s);
    sqlite3_close(db);
    return out;
}

/* The value of (ns, key) as a string, or NULL when absent; caller frees. */
static char *get_str(state *st, const char *ns, const char *key) {
    char err[256] = "";
    char *v = NULL;
    size_t len = 0;
    int rc = state_get(st, ns, key, &v, &len, err, sizeof err);
    CHECK(rc >= 0);
    CHECK(rc == 1 ? v != NULL : v == NULL);
    if (rc < 0) fprintf(stderr, "  state_get: %s\n", err);
    return v;
}

static void set_str(state *st, const char *ns, const char *key, const char *v, int64_t ttl) {
    char err[256] = "";
    int rc = state_set(st, ns, key, v, strlen(v), ttl, err, sizeof err);
    if (rc != 0) fprintf(stderr, "  state_set: %s\n", err);
    CHECK_EQ_INT(rc, 0);
}

/* A VFS that forwards to the default one and counts xSync calls, to observe what
 * reaches the disk before a call returns. */
typedef struct shim_file {
    sqlite3_file base;
    sqlite3_file *real;
} shim_file;
static sqlite3_vfs *shim_real_vfs;
static sqlite3_vfs shim_vfs;
static int shim_syncs;
#define SHIM_REAL(f) (((shim_file *)(f))->real)

static int shim_close(sqlite3_file *f) {
    return SHIM_REAL(f)->pMethods->xClose(SHIM_REAL(f));
}
static int shim_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o) {
    return SHIM_REAL(f)->pMethods->xRead(SHIM_REAL(f), b, n, o);
}
static int shim_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o) {
    return SHIM_REAL(f)->pMethods->xWrite(SHIM_REAL(f), b, n, o);
}
static int shim_truncate(sqlite3_file *f, sqlite3_int64 size) {
    return SHIM_REAL(f)->pMethods->xTruncate(SHIM_REAL(f), size);
}
static int shim_sync(sqlite3_file *f, int flags) {
    shim_syncs++;
    return SHIM_REAL(f)->pMethods->xSync(SHIM_REAL(f), flags);
}
static int shim_file_size(sqlite3_file *f, sqlite3_int64 *size) {
    return SHIM_REAL(f)->pMethods->xFileSize(SHIM_REAL(f), size);
}
static int shim_lock(sqlite3_file *f, int level) {
    return SHIM_REAL(f)->pMethods->xLock(SHIM_REAL(f), level);
}
static int shim_unlock(sqlite3_file *f, int level) {
    return SHIM_REAL(f)->pMethods->xUnlock(SHIM_REAL(f), level);
}
static int shim_check_reserved(sqlite3_file *f, int *out) {
    return SHIM_REAL(f)->pMethods->xCheckReservedLock(SHIM_REAL(f), out);
}
static int shim_file_control(sqlite3_file *f, int op, void *arg) {
    return SHIM_REAL(f)->pMethods->xFileControl(SHIM_REAL(f), op, arg);
}
static int shim_sector_size(sqlite3_file *f) {
    return SHIM_REAL(f)->pMethods->xSectorSize(SHIM_REAL(f));
}
static int shim_device(sqlite3_file *f) {
    return SHIM_REAL(f)->pMethods->xDeviceCharacteristics(SHIM_REAL(f));
}
static int shim_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **p) {
    return SHIM_REAL(f)->pMethods->xShmMap(SHIM_REAL(f), pg, sz, extend, p);
}
static int shim_shm_lock(sqlite3_file *f, int offset, int n, int flags) {
    return SHIM_REAL(f)->pMethods->xShmLock(SHIM_REAL(f), offset, n, flags);
}
static void shim_shm_barrier(sqlite3_file *f) {
    SHIM_REAL(f)->pMethods->xShmBarrier(SHIM_REAL(f));
}
static int shim_shm_unmap(sqlite3_file *f, int del) {
    return SHIM_REAL(f)->pMethods->xShmUnmap(SHIM_REAL(f), del);
}
static int shim_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **p) {
    return SHIM_REAL(f)->pMethods->xFetch(SHIM_REAL(f), o, n, p);
}
static int shim_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p) {
    return SHIM_REAL(f)->pMethods->xUnfetch(SHIM_REAL(f), o, p);
}
static const sqlite3_io_methods shim_io = {
    3, shim_close, shim_read, shim_write, shim_truncate, shim_sync, shim_file_size,
    shim_lock, shim_unlock, shim_check_reserved, shim_file_control, shim_sector_size,
    shim_device, shim_shm_map, shim_shm_lock, shim_shm_barrier, shim_shm_unmap,
    shim_fetch, shim_unfetch,
};
static int shim_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
                     int *out_flags) {
    (void)vfs;
    shim_file *sf = (shim_file *)f;
    sf->real = (sqlite3_file *)(sf + 1);
    int rc = shim_real_vfs->xOpen(shim_real_vfs, name, sf->real, flags, out_flags);
    f->pMethods = sf->real->pMethods ? &shim_io : NULL;
    return rc;
}
static void shim_install(void) {
    shim_real_vfs = sqlite3_vfs_find(NULL);
    shim_vfs = *shim_real_vfs;
    shim_vfs.zName = "fox-test-sync-counter";
    shim_vfs.szOsFile = (int)sizeof(shim_file) + shim_real_vfs->szOsFile;
    shim_vfs.xOpen = shim_open;
    sqlite3_vfs_register(&shim_vfs, 1);
}
static void shim_remove(void) {
    sqlite3_vfs_register(shim_real_vfs, 1);
    sqlite3_vfs_unregister(&shim_vfs);
}

TEST(every_write_is_synced_to_disk_before_it_returns) {
    /* "answer 2xx only once the event is durably recorded": each committed write must
     * have been fsynced when the call returns, not at some later checkpoint. */
    shim_install();
    state *st = open_ok(fresh_dir("sync"));
    if (st) {
        char err[256] = "";
        char *v = NULL;
        shim_syncs = 0;
        set_str(st, "queue", "ev-1", "payload", 0);
        CHECK(shim_syncs >= 1);
        shim_syncs = 0;
        CHECK_EQ_INT(state_claim(st, "inv", "INC-1", "a", 60, NULL, NULL, err, sizeof err), 1);
        CHECK(shim_syncs >= 1);
        shim_syncs = 0;
        CHECK_EQ_INT(state_delete(st, "queue", "ev-1", err, sizeof err), 0);
        CHECK(shim_syncs >= 1);
        shim_syncs = 0;
        CHECK_EQ_INT(state_get(st, "inv", "INC-1", &v, NULL, err, sizeof err), 1);
        free(v);
        CHECK_EQ_INT(shim_syncs, 0);   /* reads cost no fsync */
        state_close(st);
    }
    shim_remove();
}

TEST(open_creates_directory_database_and_lock) {
    const char *dir = fresh_dir("a/b/state");
    state *st = open_ok(dir);
    if (!st) return;
    CHECK(file_exists(dir, "fox.db"));
    CHECK(file_exists(dir, "fox.lock"));
    char *real = realpath(dir, NULL);
    CHECK_EQ_STR(state_dir(st), real);
    CHECK(strstr(state_db_path(st), "/a/b/state/fox.db") != NULL);
    free(real);
    struct stat sb;
    CHECK(stat(dir, &sb) == 0 && (sb.st_mode & 0777) == 0700);
    CHECK_EQ_STR(raw_sql(dir, "PRAGMA journal_mode"), "wal");
    state_close(st);
    /* the WAL mode is recorded in the file, so it holds for the next opener too */
    CHECK_EQ_STR(raw_sql(dir, "PRAGMA journal_mode"), "wal");
}

TEST(schema_version_is_recorded) {
    const char *dir = fresh_dir("s");
    state *st = open_ok(dir);
    if (!st) return;
    char err[256] = "";
    CHECK_EQ_INT(state_schema_version(st, err, sizeof err), STATE_SCHEMA_VERSION);
    CHECK_EQ_STR(raw_sql(dir, "SELECT max(version) FROM schema_version"), "1");
    CHECK_EQ_STR(raw_sql(dir, "SELECT count(*) FROM schema_version"), "1");
    CHECK_EQ_STR(raw_sql(dir, "PRAGMA application_id"), "1718581281");
    state_close(st);
    /* reopening applies nothing twice */
    st = open_ok(dir);
    state_close(st);
    CHECK_EQ_STR(raw_sql(dir, "SELECT count(*) FROM schema_version"), "1");
}

TEST(set_get_delete) {
    state *st = open_ok(fresh_dir("kv"));
    if (!st) return;
    char err[256] = "";
    char *v = get_str(st, "posted", "INC-1");
    CHECK(v == NULL);
    set_str(st, "posted", "INC-1", "{\"ts\":\"1.2\"}", 0);
    v = get_str(st, "posted", "INC-1");
    CHECK_EQ_STR(v, "{\"ts\":\"1.2\"}");
    free(v);
    /* namespaces are separate */
    v = get_str(st, "cursor", "INC-1");
    CHECK(v == NULL);
    set_str(st, "posted", "INC-1", "second", 0);
    v = get_str(st, "posted", "INC-1");
    CHECK_EQ_STR(v, "second");
    free(v);
    CHECK_EQ_INT(state_delete(st, "posted", "INC-1", err, sizeof err), 0);
    v = get_str(st, "posted", "INC-1");
    CHECK(v == NULL);
    /* deleting what is not there is fine */
    CHECK_EQ_INT(state_delete(st, "posted", "INC-1", err, sizeof err), 0);
    state_close(st);
}

TEST(values_are_byte_strings) {
    state *st = open_ok(fresh_dir("bytes"));
    if (!st) return;
    char err[256] = "";
    const char nul[] = {'a', 0, 'b', 0, 0, 'c'};
    CHECK_EQ_INT(state_set(st, "q", "nul", nul, sizeof nul, 0, err, sizeof err), 0);
    char *v = NULL;
    size_t len = 0;
    CHECK_EQ_INT(state_get(st, "q", "nul", &v, &len, err, sizeof err), 1);
    CHECK_EQ_INT(len, sizeof nul);
    CHECK(v && memcmp(v, nul, sizeof nul) == 0);
    free(v);

    /* empty value: present, not absent */
    CHECK_EQ_INT(state_set(st, "q", "empty", NULL, 0, 0, err, sizeof err), 0);
    CHECK_EQ_INT(state_get(st, "q", "empty", &v, &len, err, sizeof err), 1);
    CHECK_EQ_INT(len, 0);
    CHECK_EQ_STR(v, "");
    free(v);

    size_t big = 3u * 1024 * 1024;
    unsigned char *data = malloc(big);
    for (size_t i = 0; i < big; i++) data[i] = (unsigned char)(i * 2654435761u >> 13);
    CHECK_EQ_INT(state_set(st, "q", "big", data, big, 0, err, sizeof err), 0);
    CHECK_EQ_INT(state_get(st, "q", "big", &v, &len, err, sizeof err), 1);
    CHECK_EQ_INT(len, big);
    CHECK(v && memcmp(v, data, big) == 0);
    free(v);
    free(data);

    CHECK_EQ_INT(state_set(st, "q", "huge", "", (size_t)STATE_MAX_VALUE + 1, 0, err,
                           sizeof err), -1);
    CHECK(strstr(err, "limit") != NULL);
    state_close(st);
}

TEST(invalid_arguments_are_refused) {
    state *st = open_ok(fresh_dir("args"));
    if (!st) return;
    char err[256] = "";
    char *v = NULL;
    CHECK_EQ_INT(state_set(st, "", "k", "v", 1, 0, err, sizeof err), -1);
    CHECK(strstr(err, "namespace") != NULL);
    CHECK_EQ_INT(state_get(st, "ns", NULL, &v, NULL, err, sizeof err), -1);
    CHECK(strstr(err, "key") != NULL);
    CHECK_EQ_INT(state_set(st, "ns", "k", "v", 1, -1, err, sizeof err), -1);
    CHECK(strstr(err, "ttl") != NULL);
    CHECK_EQ_INT(state_claim(st, "ns", "k", "", 10, NULL, NULL, err, sizeof err), -1);
    CHECK(strstr(err, "owner") != NULL);
    char *longkey = malloc(STATE_MAX_NAME + 2);
    memset(longkey, 'k', STATE_MAX_NAME + 1);
    longkey[STATE_MAX_NAME + 1] = '\0';
    CHECK_EQ_INT(state_set(st, "ns", longkey, "v", 1, 0, err, sizeof err), -1);
    longkey[STATE_MAX_NAME] = '\0';   /* exactly the limit is fine */
    CHECK_EQ_INT(state_set(st, "ns", longkey, "v", 1, 0, err, sizeof err), 0);
    free(longkey);
    state_close(st);
}

TEST(ttl_expiry_follows_the_clock) {
    state *st = open_ok(fresh_dir("ttl"));
    if (!st) return;
    char *v;
    fake_now = 1000;
    set_str(st, "seen", "wh-1", "1", 10);
    set_str(st, "seen", "forever", "1", 0);
    fake_now = 1009;
    v = get_str(st, "seen", "wh-1");
    CHECK(v != NULL);
    free(v);
    fake_now = 1010;   /* a ttl of 10 lasts at least 10 seconds */
    v = get_str(st, "seen", "wh-1");
    CHECK(v != NULL);
    free(v);
    fake_now = 1011;
    v = get_str(st, "seen", "wh-1");
    CHECK(v == NULL);
    fake_now = 4000000000;
    v = get_str(st, "seen", "forever");
    CHECK(v != NULL);
    free(v);
    /* set again refreshes the expiry */
    set_str(st, "seen", "wh-1", "2", 5);
    fake_now += 5;
    v = get_str(st, "seen", "wh-1");
    CHECK_EQ_STR(v, "2");
    free(v);
    /* an enormous ttl does not wrap around into the past */
    set_str(st, "seen", "far", "1", INT64_MAX);
    v = get_str(st, "seen", "far");
    CHECK(v != NULL);
    free(v);
    state_close(st);
}

TEST(claim_contention_and_takeover) {
    state *st = open_ok(fresh_dir("claim"));
    if (!st) return;
    char err[256] = "";
    char *holder = NULL;
    int64_t exp = -1;
    fake_now = 5000;
    CHECK_EQ_INT(state_claim(st, "inv", "INC-7", "fox-a", 60, &holder, &exp, err,
                             sizeof err), 1);
    CHECK(holder == NULL);
    CHECK_EQ_INT(state_claim(st, "inv", "INC-7", "fox-b", 60, &holder, &exp, err,
                             sizeof err), 0);
    CHECK_EQ_STR(holder, "fox-a");
    CHECK_EQ_INT(exp, 5060);
    free(holder);
    holder = NULL;

    /* the owner re-claiming extends its claim */
    fake_now = 5050;
    CHECK_EQ_INT(state_claim(st, "inv", "INC-7", "fox-a", 60, &holder, &exp, err,
                             sizeof err), 1);
    fake_now = 5100;   /* past the first expiry, within the extended one */
    CHECK_EQ_INT(state_claim(st, "inv", "INC-7", "fox-b", 60, &holder, &exp, err,
                             sizeof err), 0);
    CHECK_EQ_STR(holder, "fox-a");
    CHECK_EQ_INT(exp, 5110);
    free(holder);
    holder = NULL;

    /* an expired claim can be taken over */
    fake_now = 5111;
    CHECK_EQ_INT(state_claim(st, "inv", "INC-7", "fox-b", 60, NULL, NULL, err,
                             sizeof err), 1);
    CHECK_EQ_INT(state_claim(st, "inv", "INC-7", "fox-a", 60, &holder, NULL, err,
                             sizeof err), 0);
    CHECK_EQ_STR(holder, "fox-b");
    free(holder);
    holder = NULL;

    /* other keys are independent */
    CHECK_EQ_INT(state_claim(st, "inv", "INC-8", "fox-a", 60, NULL, NULL, err,
                             sizeof err), 1);

    /* a claim of ttl 0 holds until released */
    CHECK_EQ_INT(state_claim(st, "inv", "INC-9", "fox-a", 0, NULL, NULL, err,
                             sizeof err), 1);
    fake_now = 9000000000;
    CHECK_EQ_INT(state_claim(st, "inv", "INC-9", "fox-b", 0, &holder, &exp, err,
                             sizeof err), 0);
    CHECK_EQ_INT(exp, 0);
    free(holder);

    /* a plain value in the way is a live holder too */
    char *v = get_str(st, "inv", "INC-9");
    CHECK_EQ_STR(v, "fox-a");
    free(v);
    state_close(st);
}

TEST(release_only_by_owner) {
    state *st = open_ok(fresh_dir("release"));
    if (!st) return;
    char err[256] = "";
    fake_now = 100;
    CHECK_EQ_INT(state_claim(st, "inv", "k", "a", 30, NULL, NULL, err, sizeof err), 1);
    CHECK_EQ_INT(state_release(st, "inv", "k", "b", err, sizeof err), 0);
    CHECK_EQ_INT(state_claim(st, "inv", "k", "b", 30, NULL, NULL, err, sizeof err), 0);
    CHECK_EQ_INT(state_release(st, "inv", "k", "a", err, sizeof err), 1);
    CHECK_EQ_INT(state_release(st, "inv", "k", "a", err, sizeof err), 0);
    CHECK_EQ_INT(state_claim(st, "inv", "k", "b", 30, NULL, NULL, err, sizeof err), 1);
    /* releasing an expired claim reports that it was not held */
    fake_now = 131;
    CHECK_EQ_INT(state_release(st, "inv", "k", "b", err, sizeof err), 0);
    /* owner names that differ only after a common prefix are different owners */
    CHECK_EQ_INT(state_claim(st, "inv", "p", "fox", 30, NULL, NULL, err, sizeof err), 1);
    CHECK_EQ_INT(state_release(st, "inv", "p", "fox-2", err, sizeof err), 0);
    CHECK_EQ_INT(state_claim(st, "inv", "p", "fo", 30, NULL, NULL, err, sizeof err), 0);
    state_close(st);
}

TEST(list_by_prefix_in_key_order) {
    state *st = open_ok(fresh_dir("list"));
    if (!st) return;
    char err[256] = "";
    state_entry *e = NULL;
    size_t n = 0;
    fake_now = 100;
    set_str(st, "inv", "b", "vb", 0);
    set_str(st, "inv", "abc", "vabc", 50);
    set_str(st, "inv", "a", "va", 0);
    set_str(st, "inv", "ab", "vab", 0);
    set_str(st, "inv", "ab-expired", "x", 1);
    set_str(st, "other", "ab", "no", 0);
    fake_now = 102;

    CHECK_EQ_INT(state_list(st, "inv", "ab", 0, &e, &n, err, sizeof err), 0);
    CHECK_EQ_INT(n, 2);
    if (n == 2) {
        CHECK_EQ_STR(e[0].key, "ab");
        CHECK_EQ_STR(e[0].value, "vab");
        CHECK_EQ_INT(e[0].value_len, 3);
        CHECK_EQ_INT(e[0].expires_at, 0);
        CHECK_EQ_STR(e[1].key, "abc");
        CHECK_EQ_INT(e[1].expires_at, 150);
    }
    state_entries_free(e, n);

    CHECK_EQ_INT(state_list(st, "inv", NULL, 0, &e, &n, err, sizeof err), 0);
    CHECK_EQ_INT(n, 4);
    if (n == 4) {
        CHECK_EQ_STR(e[0].key, "a");
        CHECK_EQ_STR(e[3].key, "b");
    }
    state_entries_free(e, n);

    CHECK_EQ_INT(state_list(st, "inv", "", 2, &e, &n, err, sizeof err), 0);
    CHECK_EQ_INT(n, 2);
    state_entries_free(e, n);

    CHECK_EQ_INT(state_list(st, "inv", "zzz", 0, &e, &n, err, sizeof err), 0);
    CHECK_EQ_INT(n, 0);
    CHECK(e == NULL);
    CHECK_EQ_INT(state_list(st, "nothing", "", 0, &e, &n, err, sizeof err), 0);
    CHECK_EQ_INT(n, 0);
    state_close(st);
}

TEST(purge_deletes_only_expired_rows) {
    const char *dir = fresh_dir("purge");
    state *st = open_ok(dir);
    if (!st) return;
    char err[256] = "";
    size_t deleted = 99;
    fake_now = 100;
    char key[32];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "old-%d", i);
        set_str(st, "seen", key, "1", 10);
    }
    set_str(st, "seen", "young", "1", 1000);
    set_str(st, "seen", "forever", "1", 0);
    CHECK_EQ_INT(state_purge(st, 0, &deleted, err, sizeof err), 0);
    CHECK_EQ_INT(deleted, 0);
    fake_now = 111;
    CHECK_EQ_INT(state_purge(st, 4, &deleted, err, sizeof err), 0);
    CHECK_EQ_INT(deleted, 4);
    CHECK_EQ_INT(state_purge(st, 0, &deleted, err, sizeof err), 0);
    CHECK_EQ_INT(deleted, 6);
    CHECK_EQ_INT(state_purge(st, 0, &deleted, err, sizeof err), 0);
    CHECK_EQ_INT(deleted, 0);
    state_close(st);
    CHECK_EQ_STR(raw_sql(dir, "SELECT group_concat(key) FROM (SELECT key FROM kv "
                              "ORDER BY key)"), "forever,young");
}

TEST(state_persists_across_close_and_reopen) {
    const char *dir = fresh_dir("persist");
    state *st = open_ok(dir);
    if (!st) return;
    char err[256] = "";
    set_str(st, "cursor", "poll", "2024-05-01T00:00:00Z", 0);
    CHECK_EQ_INT(state_claim(st, "inv", "INC-1", "fox-a", 600, NULL, NULL, err,
                             sizeof err), 1);
    state_close(st);
    CHECK(!file_exists(dir, "fox.db-wal"));   /* checkpointed on close */

    st = open_ok(dir);
    if (!st) return;
    char *v = get_str(st, "cursor", "poll");
    CHECK_EQ_STR(v, "2024-05-01T00:00:00Z");
    free(v);
    char *holder = NULL;
    CHECK_EQ_INT(state_claim(st, "inv", "INC-1", "fox-b", 600, &holder, NULL, err,
                             sizeof err), 0);
    CHECK_EQ_STR(holder, "fox-a");
    free(holder);
    state_close(st);
}

TEST(writes_are_visible_to_another_reader_before_close) {
    /* A committed write is in the WAL on disk, not only in this connection's cache. */
    const char *dir = fresh_dir("committed");
    state *st = open_ok(dir);
    if (!st) return;
    set_str(st, "queue", "ev-1", "payload", 0);
    CHECK_EQ_STR(raw_sql(dir, "SELECT value FROM kv WHERE key = 'ev-1'"), "payload");
    state_close(st);
}

TEST(second_open_of_a_directory_is_refused_as_locked) {
    const char *dir = fresh_dir("locked");
    state *st = open_ok(dir);
    if (!st) return;
    char err[512] = "";
    state *other = (state *)1;
    CHECK_EQ_INT(state_open(dir, &other, err, sizeof err), -1);
    CHECK(other == NULL);
    CHECK(strstr(err, "locked") != NULL);
    CHECK(strstr(err, "fox.db") != NULL);
    char pid[32];
    snprintf(pid, sizeof pid, "pid %ld", (long)getpid());
    CHECK(strstr(err, pid) != NULL);
    CHECK(strstr(err, "stop it") != NULL);
    /* the holder is unaffected */
    set_str(st, "k", "k", "v", 0);
    state_close(st);
    st = open_ok(dir);   /* released on close */
    state_close(st);
}

TEST(another_process_holding_the_directory_is_named_and_a_crash_frees_it) {
    const char *dir = fresh_dir("crash");
    int ready[2], go[2];
    CHECK(pipe(ready) == 0 && pipe(go) == 0);
    pid_t child = fork();
    if (child == 0) {
        /* another fox: opens, waits, commits, then dies without closing anything */
        char err[512], c;
        state *st = NULL;
        if (state_open(dir, &st, err, sizeof err) != 0) _exit(3);
        if (write(ready[1], "r", 1) != 1) _exit(4);
        if (read(go[0], &c, 1) < 0) _exit(5);
        if (state_set(st, "posted", "INC-1", "ts-1", 4, 0, err, sizeof err) != 0) _exit(6);
        if (state_claim(st, "inv", "INC-2", "child", 600, NULL, NULL, err, sizeof err) != 1)
            _exit(7);
        _exit(0);
    }
    close(ready[1]);
    close(go[0]);
    char c;
    CHECK(read(ready[0], &c, 1) == 1);
    char err[512] = "", pid[32];
    state *st = NULL;
    CHECK_EQ_INT(state_open(dir, &st, err, sizeof err), -1);
    snprintf(pid, sizeof pid, "pid %ld", (long)child);
    CHECK(strstr(err, "locked") != NULL);
    CHECK(strstr(err, pid) != NULL);
    CHECK(write(go[1], "g", 1) == 1);
    int status = -1;
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(ready[0]);
    close(go[1]);
    CHECK(file_exists(dir, "fox.db-wal"));   /* it never checkpointed */
    st = open_ok(dir);
    if (!st) return;
    char *v = get_str(st, "posted", "INC-1");
    CHECK_EQ_STR(v, "ts-1");
    free(v);
    fake_now = (int64_t)time(NULL);
    CHECK_EQ_INT(state_claim(st, "inv", "INC-2", "parent", 60, NULL, NULL, err, sizeof err),
                 0);
    state_close(st);
}

TEST(corrupt_database_fails_clearly) {
    const char *dir = fresh_dir("corrupt");
    state *st = open_ok(dir);
    if (!st) return;
    set_str(st, "k", "k", "v", 0);
    state_close(st);
    char garbage[8192];
    for (size_t i = 0; i < sizeof garbage; i++) garbage[i] = (char)("not a database"[i % 14]);
    write_file(dir, "fox.db", garbage, sizeof garbage);

    char err[512] = "";
    st = (state *)1;
    CHECK_EQ_INT(state_open(dir, &st, err, sizeof err), -1);
    CHECK(st == NULL);
    CHECK(strstr(err, "fox.db") != NULL);
    CHECK(strstr(err, "not a database") != NULL);
    CHECK(strstr(err, "move it aside") != NULL);

    /* a short garbage file too */
    write_file(dir, "fox.db", "garbage", 7);
    CHECK_EQ_INT(state_open(dir, &st, err, sizeof err), -1);
    CHECK(strstr(err, "move it aside") != NULL);

    /* a failed open releases the lock: moving the file aside is enough */
    char from[600], to[600];
    snprintf(from, sizeof from, "%s/fox.db", dir);
    snprintf(to, sizeof to, "%s/fox.db.bad", dir);
    CHECK_EQ_INT(rename(from, to), 0);
    st = open_ok(dir);
    state_close(st);
}

TEST(damaged_pages_fail_the_integrity_check) {
    const char *dir = fresh_dir("damaged");
    state *st = open_ok(dir);
    if (!st) return;
    char key[32], val[256];
    memset(val, 'v', sizeof val - 1);
    val[sizeof val - 1] = '\0';
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "key-%04d", i);
        set_str(st, "ns", key, val, 0);
    }
    state_close(st);
    /* scribble over the last pages (rows), which opening alone would never read */
    char p[600];
    snprintf(p, sizeof p, "%s/fox.db", dir);
    int fd = open(p, O_WRONLY);
    CHECK(fd >= 0);
    struct stat sb;
    CHECK(fstat(fd, &sb) == 0 && sb.st_size >= 10 * 4096);
    char junk[4096];
    memset(junk, 0xA5, sizeof junk);
    for (off_t off = sb.st_size - 2 * 4096; off < sb.st_size; off += 4096)
        CHECK(pwrite(fd, junk, sizeof junk, off) == (ssize_t)sizeof junk);
    close(fd);
    char err[512] = "";
    CHECK_EQ_INT(state_open(dir, &st, err, sizeof err), -1);
    CHECK(strstr(err, "fox.db") != NULL);
    CHECK(strstr(err, "move it aside") != NULL);
}

TEST(foreign_database_is_refused) {
    const char *dir = fresh_dir("foreign");
    mkdir(dir, 0700);
    CHECK_EQ_STR(raw_sql(dir, "CREATE TABLE songs (title TEXT)"), "");
    char err[512] = "";
    state *st = NULL;
    CHECK_EQ_INT(state_open(dir, &st, err, sizeof err), -1);
    CHECK(strstr(err, "not fox's state") != NULL);
    CHECK_EQ_STR(raw_sql(dir, "SELECT count(*) FROM sqlite_schema"), "1");   /* untouched */
}

TEST(newer_schema_is_refused) {
    const char *dir = fresh_dir("newer");
    state *st = open_ok(dir);
    if (!st) return;
    state_close(st);
    raw_sql(dir, "INSERT INTO schema_version VALUES (99, 0, '9.9.9')");
    CHECK_EQ_STR(raw_sql(dir, "SELECT max(version) FROM schema_version"), "99");
    char err[512] = "";
    CHECK_EQ_INT(state_open(dir, &st, err, sizeof err), -1);
    CHECK(strstr(err, "newer fox") != NULL);
    CHECK(strstr(err, "99") != NULL);
}

TEST(state_directory_that_is_a_file_is_refused) {
    const char *dir = fresh_dir("file");
    write_file(tmp_root, "file", "x", 1);
    char err[512] = "";
    state *st = NULL;
    CHECK_EQ_INT(state_open(dir, &st, err, sizeof err), -1);
    CHECK(strstr(err, "not a directory") != NULL);
    CHECK_EQ_INT(state_open("", &st, err, sizeof err), -1);
}

int main(void) {
    int rc = RUN_TESTS();
    if (tmp_root[0]) nftw(tmp_root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
