/* Durable state, default backend: one SQLite database <dir>/fox.db in WAL mode.
 *
 * Durability: synchronous=FULL. fox answers a webhook 2xx only once the event is
 * recorded, and incident.io does not redeliver after a 2xx, so "recorded" has to mean
 * "survives a power cut or kernel crash", not just "survives fox crashing". In WAL mode
 * synchronous=NORMAL fsyncs only at checkpoints: a commit that returned can still be
 * lost with the OS (and a claim or "posted" marker lost that way means a duplicate
 * post). FULL fsyncs the WAL on every commit; that costs one fsync per write (well
 * under a millisecond to a few ms on an SSD), which fox's write rate — a handful per
 * incident — never notices.
 *
 * Exclusion: an flock(2)ed lock file <dir>/fox.lock holding the owner's pid, taken
 * before SQLite opens the database. It fails at once with a message naming the other
 * process, even when the second opener is the same process (flock locks belong to the
 * open file description). PRAGMA locking_mode=EXCLUSIVE was rejected: in WAL mode it
 * takes its locks only on first access, reports a conflict as a generic SQLITE_BUSY
 * after the busy timeout, and keeps operators' read-only tools (sqlite3 fox.db) out.
 *
 * Every statement is prepared once per handle. Every write is a single autocommit
 * statement, except claim, which reads and writes inside one BEGIN IMMEDIATE, and
 * write_many, which puts many rows in one BEGIN IMMEDIATE ... COMMIT: one WAL commit and
 * one fsync for all of them. That is what state_group.c builds group commit on: the
 * fsync, not the statements, is what a durable write costs. */
#include "fox/state.h"

#include <sqlite3.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef FOX_VERSION
#define FOX_VERSION "dev"
#endif

#define STATE_DB_NAME   "fox.db"
#define STATE_LOCK_NAME "fox.lock"
#define STATE_APP_ID    0x666f7821       /* "fox!" in the database header */
#define STATE_BUSY_MS   5000             /* external readers hold locks only briefly */

/* Migration i takes the schema from version i to i + 1; each runs in one transaction
 * together with its schema_version row. Append only: never edit a released one. */
static const char *const state_migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE schema_version ("
    "  version    INTEGER PRIMARY KEY,"
    "  applied_at INTEGER NOT NULL,"
    "  fox        TEXT NOT NULL"
    ");"
    "CREATE TABLE kv ("
    "  ns         TEXT NOT NULL,"
    "  key        TEXT NOT NULL,"
    "  value      BLOB NOT NULL,"
    "  expires_at INTEGER NOT NULL DEFAULT 0," /* wall-clock seconds; 0 = never */
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY (ns, key)"
    ");"   /* a rowid table: values (queued events) may be larger than a page */
    "CREATE INDEX kv_expiry ON kv (expires_at) WHERE expires_at > 0;"
    "PRAGMA application_id = 1718581281;", /* STATE_APP_ID */
};
#define STATE_MIGRATION_COUNT ((int)(sizeof state_migrations / sizeof state_migrations[0]))
_Static_assert(STATE_MIGRATION_COUNT == STATE_SCHEMA_VERSION,
               "one migration per schema version");
_Static_assert(STATE_APP_ID == 1718581281, "application_id in migration 1");

enum {
    STMT_GET,
    STMT_SET,
    STMT_DELETE,
    STMT_READ,
    STMT_RELEASE,
    STMT_LIST,
    STMT_PURGE,
    STMT_BEGIN,
    STMT_COMMIT,
    STMT_ROLLBACK,
    STMT_VERSION,
    STMT_COUNT
};

/* A row is live when expires_at = 0 or expires_at >= now (see state.h). */
static const char *const state_sql[STMT_COUNT] = {
    [STMT_GET] = "SELECT value FROM kv WHERE ns = ?1 AND key = ?2"
                 " AND (expires_at = 0 OR expires_at >= ?3)",
    [STMT_SET] = "INSERT OR REPLACE INTO kv (ns, key, value, expires_at, updated_at)"
                 " VALUES (?1, ?2, ?3, ?4, ?5)",
    [STMT_DELETE] = "DELETE FROM kv WHERE ns = ?1 AND key = ?2",
    [STMT_READ] = "SELECT value, expires_at FROM kv WHERE ns = ?1 AND key = ?2",
    [STMT_RELEASE] = "DELETE FROM kv WHERE ns = ?1 AND key = ?2 AND value = ?3"
                     " AND (expires_at = 0 OR expires_at >= ?4)",
    [STMT_LIST] = "SELECT key, value, expires_at FROM kv WHERE ns = ?1 AND key >= ?2"
                  " AND (expires_at = 0 OR expires_at >= ?3) ORDER BY key",
    [STMT_PURGE] = "DELETE FROM kv WHERE rowid IN (SELECT rowid FROM kv"
                   " WHERE expires_at > 0 AND expires_at < ?1 LIMIT ?2)",
    [STMT_BEGIN] = "BEGIN IMMEDIATE",
    [STMT_COMMIT] = "COMMIT",
    [STMT_ROLLBACK] = "ROLLBACK",
    [STMT_VERSION] = "SELECT max(version) FROM schema_version",
};

struct state {
    sqlite3 *db;
    sqlite3_stmt *stmt[STMT_COUNT];
    int lock_fd;
    char *dir;        /* realpath of the state directory */
    char *db_path;
    char *lock_path;
    state_clock_fn clock;
    void *clock_ud;
};

static void state_errorf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void state_errorf(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static char *state_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + 1 + b + 1);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* What an operator should do about an SQLite failure, by primary result code. */
static const char *state_hint(int rc) {
    switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return "; the file is damaged or not fox's: stop fox and move it aside (fox then "
               "starts with empty state and may re-investigate recent incidents), or "
               "restore it from a backup";
    case SQLITE_FULL: return "; free disk space on that filesystem";
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN:
    case SQLITE_AUTH:
        return "; check that the fox user can write the state directory and its files";
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return "; another program holds a lock on the database (an open sqlite3 shell "
               "or backup?)";
    case SQLITE_IOERR: return "; check the disk and the kernel log";
    default: return "";
    }
}

/* Formats "state: <what> <path>: <sqlite message><hint>" and returns -1. */
static int state_fail_sqlite(sqlite3 *db, const char *path, int rc, const char *what,
                             char *err, size_t errlen) {
    const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    /* errmsg is only about rc when rc is the connection's latest error */
    if (db && sqlite3_extended_errcode(db) != rc) msg = sqlite3_errstr(rc);
    state_errorf(err, errlen, "state: %s %s: %s%s", what, path, msg, state_hint(rc));
    return -1;
}

static int state_fail(state *st, int rc, const char *what, char *err, size_t errlen) {
    return state_fail_sqlite(st->db, st->db_path, rc, what, err, errlen);
}

static int state_check_name(const char *what, const char *s, char *err, size_t errlen) {
    if (!s) {
        state_errorf(err, errlen, "state: %s is missing", what);
        return -1;
    }
    size_t n = strnlen(s, STATE_MAX_NAME + 1);
    if (n == 0 || n > STATE_MAX_NAME) {
        state_errorf(err, errlen, "state: %s must be 1 to %d bytes", what, STATE_MAX_NAME);
        return -1;
    }
    return 0;
}

/* ns and key, validated; owner too when not NULL. */
static int state_check_args(const char *ns, const char *key, const char *owner,
                            char *err, size_t errlen) {
    if (state_check_name("namespace", ns, err, errlen) < 0) return -1;
    if (state_check_name("key", key, err, errlen) < 0) return -1;
    if (owner && state_check_name("owner", owner, err, errlen) < 0) return -1;
    return 0;
}

static int64_t state_now(const state *st) {
    return st->clock ? st->clock(st->clock_ud) : (int64_t)time(NULL);
}

/* The expiry of a row written now with ttl; ttl must be >= 0. */
static int64_t state_expiry(int64_t now, int64_t ttl) {
    if (ttl == 0) return 0;
    if (now > INT64_MAX - ttl) return INT64_MAX;
    return now + ttl;
}

static int state_check_ttl(int64_t ttl, char *err, size_t errlen) {
    if (ttl < 0) {
        state_errorf(err, errlen, "state: ttl must be >= 0 seconds (0 = forever)");
        return -1;
    }
    return 0;
}

/* Ready for the next use: statements keep no read transaction open between calls. */
static void state_stmt_done(sqlite3_stmt *s) {
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

static void state_bind_names(sqlite3_stmt *s, const char *ns, const char *key) {
    sqlite3_bind_text(s, 1, ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
}

/* Values are always bound as BLOBs so that comparisons (release's value = owner) compare
 * like with like; SQLite binds NULL for a NULL pointer, so pass "" for empty values. */
static void state_bind_value(sqlite3_stmt *s, int idx, const void *v, size_t len) {
    sqlite3_bind_blob64(s, idx, len ? v : "", (sqlite3_uint64)len, SQLITE_STATIC);
}

static char *state_copy_bytes(const void *p, size_t len) {
    char *c = malloc(len + 1);
    if (!c) return NULL;
    if (len) memcpy(c, p, len);
    c[len] = '\0';
    return c;
}

/* Runs a statement that returns no rows we need. */
static int state_run(state *st, int which, const char *what, char *err, size_t errlen) {
    sqlite3_stmt *s = st->stmt[which];
    int rc = sqlite3_step(s);
    int ret = 0;
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) ret = state_fail(st, rc, what, err, errlen);
    state_stmt_done(s);
    return ret;
}

/* Rolls back the transaction an error left open, if any. */
static void state_abort_txn(state *st) {
    if (!sqlite3_get_autocommit(st->db)) {
        sqlite3_step(st->stmt[STMT_ROLLBACK]);
        state_stmt_done(st->stmt[STMT_ROLLBACK]);
    }
}

/* mkdir -p with mode 0700 for what it creates; fsyncs the parent of each new directory
 * so the directory entries survive a crash along with the data written into them. */
static int state_make_dir(const char *dir, char *err, size_t errlen) {
    int ret = -1;
    char *path = strdup(dir);
    if (!path) {
        state_errorf(err, errlen, "state: out of memory");
        goto cleanup;
    }
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') path[--n] = '\0';
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(path, 0700) == 0) {
            char *slash = strrchr(path, '/');
            char *parent = slash == path ? strdup("/")
                         : slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
            int fd = parent ? open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
            if (fd >= 0) {
                fsync(fd);
                close(fd);
            }
            free(parent);
        } else if (errno != EEXIST) {
            state_errorf(err, errlen, "state: cannot create state directory %s: %s",
                         path, strerror(errno));
            goto cleanup;
        }
        *p = saved;
        if (saved == '\0') break;
    }
    struct stat sb;
    if (stat(path, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
        state_errorf(err, errlen, "state: state directory %s is not a directory", path);
        goto cleanup;
    }
    ret = 0;
cleanup:
    free(path);
    return ret;
}

/* Takes the directory lock, or explains who holds it. */
static int state_lock_dir(state *st, char *err, size_t errlen) {
    int fd = open(st->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        state_errorf(err, errlen, "state: cannot open lock file %s: %s; check that the "
                     "fox user can write the state directory", st->lock_path,
                     strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        if (e == EWOULDBLOCK) {
            char buf[32] = {0};
            ssize_t r = pread(fd, buf, sizeof buf - 1, 0);
            long pid = r > 0 ? strtol(buf, NULL, 10) : 0;
            if (pid > 0)
                state_errorf(err, errlen, "state: %s is locked: another fox (pid %ld) is "
                             "using the state directory %s; stop it, or give this fox "
                             "its own state directory", st->db_path, pid, st->dir);
            else
                state_errorf(err, errlen, "state: %s is locked: another fox holds %s; "
                             "stop it, or give this fox its own state directory",
                             st->db_path, st->lock_path);
        } else {
            state_errorf(err, errlen, "state: cannot lock %s: %s", st->lock_path,
                         strerror(e));
        }
        close(fd);
        return -1;
    }
    /* The pid is for the message above and for operators; the lock is what counts. */
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)len, 0) < 0) {
        /* harmless: only the message above loses the pid */
    }
    st->lock_fd = fd;
    return 0;
}

/* Runs one SQL text (possibly several statements) during open; tags errors with what. */
static int state_exec(state *st, const char *sql, const char *what, char *err,
                      size_t errlen) {
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) return state_fail(st, rc, what, err, errlen);
    return 0;
}

/* Runs a one-row, one-column query during open and copies the text of its result. */
static int state_query_text(state *st, const char *sql, const char *what, char *out,
                            size_t outlen, char *err, size_t errlen) {
    sqlite3_stmt *s = NULL;
    int ret = -1;
    int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK) {
        state_fail(st, rc, what, err, errlen);
        goto cleanup;
    }
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        state_fail(st, rc == SQLITE_DONE ? SQLITE_CORRUPT : rc, what, err, errlen);
        goto cleanup;
    }
    const unsigned char *t = sqlite3_column_text(s, 0);
    snprintf(out, outlen, "%s", t ? (const char *)t : "");
    ret = 0;
cleanup:
    sqlite3_finalize(s);
    return ret;
}

/* Refuses damaged databases and other programs' databases, then migrates. */
static int state_prepare_schema(state *st, char *err, size_t errlen) {
    char buf[256];
    if (state_query_text(st, "PRAGMA quick_check", "cannot check", buf, sizeof buf, err,
                         errlen) < 0)
        return -1;
    if (strcmp(buf, "ok") != 0) {
        state_errorf(err, errlen, "state: %s is corrupt (integrity check: %s)%s",
                     st->db_path, buf, state_hint(SQLITE_CORRUPT));
        return -1;
    }
    if (state_query_text(st, "PRAGMA application_id", "cannot read", buf, sizeof buf, err,
                         errlen) < 0)
        return -1;
    long app_id = strtol(buf, NULL, 10);
    if (state_query_text(st, "SELECT count(*) FROM sqlite_schema", "cannot read", buf,
                         sizeof buf, err, errlen) < 0)
        return -1;
    long objects = strtol(buf, NULL, 10);
    int version = 0;
    if (app_id != STATE_APP_ID && (app_id != 0 || objects != 0)) {
        state_errorf(err, errlen, "state: %s is an SQLite database but not fox's state "
                     "(application_id %ld); point fox at its own state directory, or move "
                     "the file aside", st->db_path, app_id);
        return -1;
    }
    if (app_id == STATE_APP_ID) {
        if (state_query_text(st, "SELECT max(version) FROM schema_version",
                             "cannot read the schema version of", buf, sizeof buf, err,
                             errlen) < 0)
            return -1;
        version = (int)strtol(buf, NULL, 10);
    }
    if (version > STATE_SCHEMA_VERSION) {
        state_errorf(err, errlen, "state: %s has schema version %d, written by a newer fox "
                     "(this fox %s knows up to %d); run the newer fox, or move the file "
                     "aside", st->db_path, version, FOX_VERSION, STATE_SCHEMA_VERSION);
        return -1;
    }
    for (; version < STATE_SCHEMA_VERSION; version++) {
        char *record = sqlite3_mprintf("INSERT INTO schema_version (version, applied_at,"
                                       " fox) VALUES (%d, %lld, %Q);", version + 1,
                                       (long long)state_now(st), FOX_VERSION);
        if (!record) {
            state_errorf(err, errlen, "state: out of memory");
            return -1;
        }
        int failed =
            state_exec(st, "BEGIN IMMEDIATE", "cannot migrate", err, errlen) < 0 ||
            state_exec(st, state_migrations[version], "cannot migrate", err, errlen) < 0 ||
            state_exec(st, record, "cannot migrate", err, errlen) < 0 ||
            state_exec(st, "COMMIT", "cannot migrate", err, errlen) < 0;
        sqlite3_free(record);
        if (failed) {
            if (!sqlite3_get_autocommit(st->db)) sqlite3_exec(st->db, "ROLLBACK", 0, 0, 0);
            return -1;
        }
    }
    return 0;
}

static int state_open_db(state *st, char *err, size_t errlen) {
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(st->db_path, &st->db, flags, NULL);
    if (rc != SQLITE_OK) {
        if (!st->db) {
            state_errorf(err, errlen, "state: cannot open %s: out of memory", st->db_path);
            return -1;
        }
        return state_fail(st, rc, "cannot open", err, errlen);
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, STATE_BUSY_MS);
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);

    /* The first statement reads the header: a garbage file fails here. */
    char mode[32];
    if (state_query_text(st, "PRAGMA journal_mode=WAL", "cannot open", mode, sizeof mode,
                         err, errlen) < 0)
        return -1;
    if (strcmp(mode, "wal") != 0) {
        state_errorf(err, errlen, "state: cannot put %s in WAL mode (journal mode is %s); "
                     "the state directory must be on a local filesystem", st->db_path,
                     mode);
        return -1;
    }
    /* FULL: see the top of this file. journal_size_limit trims the WAL after a
     * checkpoint so a burst of writes does not leave a large file behind. */
    if (state_exec(st, "PRAGMA synchronous=FULL; PRAGMA journal_size_limit=4194304;",
                   "cannot configure", err, errlen) < 0)
        return -1;
    if (state_prepare_schema(st, err, errlen) < 0) return -1;
    for (int i = 0; i < STMT_COUNT; i++) {
        rc = sqlite3_prepare_v3(st->db, state_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                &st->stmt[i], NULL);
        if (rc != SQLITE_OK) return state_fail(st, rc, "cannot prepare statements for",
                                               err, errlen);
    }
    return 0;
}

int state_open(const char *dir, state **out, char *err, size_t errlen) {
    state *st = NULL;
    int ret = -1;
    *out = NULL;
    if (!dir || !*dir) {
        state_errorf(err, errlen, "state: no state directory given");
        goto cleanup;
    }
    if (state_make_dir(dir, err, errlen) < 0) goto cleanup;
    st = calloc(1, sizeof *st);
    if (!st) {
        state_errorf(err, errlen, "state: out of memory");
        goto cleanup;
    }
    st->lock_fd = -1;
    st->dir = realpath(dir, NULL);
    if (!st->dir) {
        state_errorf(err, errlen, "state: cannot resolve state directory %s: %s", dir,
                     strerror(errno));
        goto cleanup;
    }
    st->db_path = state_join(st->dir, STATE_DB_NAME);
    st->lock_path = state_join(st->dir, STATE_LOCK_NAME);
    if (!st->db_path || !st->lock_path) {
        state_errorf(err, errlen, "state: out of memory");
        goto cleanup;
    }
    if (state_lock_dir(st, err, errlen) < 0) goto cleanup;
    if (state_open_db(st, err, errlen) < 0) goto cleanup;
    /* Make a newly created fox.db (and fox.db-wal) entry durable too. */
    int dfd = open(st->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    *out = st;
    st = NULL;
    ret = 0;
cleanup:
    state_close(st);
    return ret;
}

void state_close(state *st) {
    if (!st) return;
    for (int i = 0; i < STMT_COUNT; i++) sqlite3_finalize(st->stmt[i]);
    if (st->db) {
        /* Lets the query planner keep statistics for the next run; cheap when idle. */
        if (st->stmt[STMT_GET]) sqlite3_exec(st->db, "PRAGMA optimize", NULL, NULL, NULL);
        sqlite3_close_v2(st->db);   /* checkpoints and removes the WAL */
    }
    if (st->lock_fd >= 0) close(st->lock_fd);   /* releases the flock */
    free(st->dir);
    free(st->db_path);
    free(st->lock_path);
    free(st);
}

const char *state_dir(const state *st) {
    return st->dir;
}

const char *state_db_path(const state *st) {
    return st->db_path;
}

void state_set_clock(state *st, state_clock_fn fn, void *ud) {
    st->clock = fn;
    st->clock_ud = ud;
}

int state_get(state *st, const char *ns, const char *key, char **value, size_t *len,
              char *err, size_t errlen) {
    sqlite3_stmt *s = st->stmt[STMT_GET];
    int ret = -1;
    *value = NULL;
    if (len) *len = 0;
    if (state_check_args(ns, key, NULL, err, errlen) < 0) return -1;
    state_bind_names(s, ns, key);
    sqlite3_bind_int64(s, 3, state_now(st));
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        ret = 0;
        goto cleanup;
    }
    if (rc != SQLITE_ROW) {
        state_fail(st, rc, "cannot read from", err, errlen);
        goto cleanup;
    }
    const void *v = sqlite3_column_blob(s, 0);
    size_t n = (size_t)sqlite3_column_bytes(s, 0);
    *value = state_copy_bytes(v, n);
    if (!*value) {
        state_errorf(err, errlen, "state: out of memory reading %zu bytes", n);
        goto cleanup;
    }
    if (len) *len = n;
    ret = 1;
cleanup:
    state_stmt_done(s);
    return ret;
}

int state_write_check(const state_write *w, char *err, size_t errlen) {
    if (state_check_args(w->ns, w->key, NULL, err, errlen) < 0) return -1;
    if (state_check_ttl(w->ttl, err, errlen) < 0) return -1;
    if (w->len > STATE_MAX_VALUE) {
        state_errorf(err, errlen, "state: value of %zu bytes is larger than the %u byte "
                     "limit", w->len, STATE_MAX_VALUE);
        return -1;
    }
    return 0;
}

/* Stores one checked row (inside whatever transaction is open). */
static int state_put(state *st, const state_write *w, int64_t now, char *err,
                     size_t errlen) {
    sqlite3_stmt *s = st->stmt[STMT_SET];
    int ret = 0;
    state_bind_names(s, w->ns, w->key);
    state_bind_value(s, 3, w->value, w->len);
    sqlite3_bind_int64(s, 4, state_expiry(now, w->ttl));
    sqlite3_bind_int64(s, 5, now);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE) ret = state_fail(st, rc, "cannot write to", err, errlen);
    state_stmt_done(s);
    return ret;
}

int state_set(state *st, const char *ns, const char *key, const void *value, size_t len,
              int64_t ttl, char *err, size_t errlen) {
    state_write w = {ns, key, value, len, ttl};
    if (state_write_check(&w, err, errlen) < 0) return -1;
    return state_put(st, &w, state_now(st), err, errlen);
}

int state_write_many(state *st, const state_write *writes, size_t n, char *err,
                     size_t errlen) {
    for (size_t i = 0; i < n; i++)
        if (state_write_check(&writes[i], err, errlen) < 0) return -1;
    if (n == 0) return 0;
    if (n == 1) return state_put(st, &writes[0], state_now(st), err, errlen);
    if (state_run(st, STMT_BEGIN, "cannot write to", err, errlen) < 0) return -1;
    int64_t now = state_now(st);
    for (size_t i = 0; i < n; i++) {
        if (state_put(st, &writes[i], now, err, errlen) < 0) {
            state_abort_txn(st);
            return -1;
        }
    }
    if (state_run(st, STMT_COMMIT, "cannot commit to", err, errlen) < 0) {
        state_abort_txn(st);
        return -1;
    }
    return 0;
}

int state_delete(state *st, const char *ns, const char *key, char *err, size_t errlen) {
    if (state_check_args(ns, key, NULL, err, errlen) < 0) return -1;
    state_bind_names(st->stmt[STMT_DELETE], ns, key);
    return state_run(st, STMT_DELETE, "cannot delete from", err, errlen);
}

int state_claim(state *st, const char *ns, const char *key, const char *owner,
                int64_t ttl, char **holder, int64_t *holder_expires,
                char *err, size_t errlen) {
    sqlite3_stmt *rd = st->stmt[STMT_READ], *wr = st->stmt[STMT_SET];
    int ret = -1, rc;
    if (holder) *holder = NULL;
    if (holder_expires) *holder_expires = 0;
    if (state_check_args(ns, key, owner, err, errlen) < 0) return -1;
    if (state_check_ttl(ttl, err, errlen) < 0) return -1;
    if (state_run(st, STMT_BEGIN, "cannot claim in", err, errlen) < 0) return -1;

    int64_t now = state_now(st);
    size_t owner_len = strlen(owner);
    state_bind_names(rd, ns, key);
    rc = sqlite3_step(rd);
    if (rc == SQLITE_ROW) {
        const void *cur = sqlite3_column_blob(rd, 0);
        size_t cur_len = (size_t)sqlite3_column_bytes(rd, 0);
        int64_t cur_exp = sqlite3_column_int64(rd, 1);
        int live = cur_exp == 0 || cur_exp >= now;
        int mine = cur_len == owner_len && memcmp(cur, owner, owner_len) == 0;
        if (live && !mine) {
            if (holder && !(*holder = state_copy_bytes(cur, cur_len))) {
                state_errorf(err, errlen, "state: out of memory");
                goto cleanup;
            }
            if (holder_expires) *holder_expires = cur_exp;
            ret = 0;
            goto cleanup;
        }
    } else if (rc != SQLITE_DONE) {
        state_fail(st, rc, "cannot claim in", err, errlen);
        goto cleanup;
    }
    state_stmt_done(rd);

    state_bind_names(wr, ns, key);
    state_bind_value(wr, 3, owner, owner_len);
    sqlite3_bind_int64(wr, 4, state_expiry(now, ttl));
    sqlite3_bind_int64(wr, 5, now);
    rc = sqlite3_step(wr);
    state_stmt_done(wr);
    if (rc != SQLITE_DONE) {
        state_fail(st, rc, "cannot claim in", err, errlen);
        goto cleanup;
    }
    ret = 1;
cleanup:
    state_stmt_done(rd);
    if (ret >= 0 && state_run(st, STMT_COMMIT, "cannot commit a claim in", err,
                              errlen) < 0) {
        ret = -1;
    }
    if (ret < 0) {
        state_abort_txn(st);
        if (holder) {
            free(*holder);
            *holder = NULL;
        }
    }
    return ret;
}

int state_release(state *st, const char *ns, const char *key, const char *owner,
                  char *err, size_t errlen) {
    sqlite3_stmt *s = st->stmt[STMT_RELEASE];
    int ret = -1;
    if (state_check_args(ns, key, owner, err, errlen) < 0) return -1;
    state_bind_names(s, ns, key);
    state_bind_value(s, 3, owner, strlen(owner));
    sqlite3_bind_int64(s, 4, state_now(st));
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE) {
        state_fail(st, rc, "cannot release a claim in", err, errlen);
        goto cleanup;
    }
    ret = sqlite3_changes(st->db) > 0 ? 1 : 0;
cleanup:
    state_stmt_done(s);
    return ret;
}

void state_entries_free(state_entry *entries, size_t count) {
    if (!entries) return;
    for (size_t i = 0; i < count; i++) {
        free(entries[i].key);
        free(entries[i].value);
    }
    free(entries);
}

int state_list(state *st, const char *ns, const char *prefix, size_t limit,
               state_entry **out, size_t *count, char *err, size_t errlen) {
    sqlite3_stmt *s = st->stmt[STMT_LIST];
    state_entry *list = NULL;
    size_t n = 0, cap = 0;
    int ret = -1;
    *out = NULL;
    *count = 0;
    if (!prefix) prefix = "";
    if (state_check_name("namespace", ns, err, errlen) < 0) return -1;
    size_t plen = strnlen(prefix, STATE_MAX_NAME + 1);
    if (plen > STATE_MAX_NAME) {
        state_errorf(err, errlen, "state: prefix is longer than %d bytes", STATE_MAX_NAME);
        return -1;
    }
    sqlite3_bind_text(s, 1, ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, prefix, (int)plen, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, state_now(st));
    while (limit == 0 || n < limit) {
        int rc = sqlite3_step(s);
        if (rc == SQLITE_DONE) break;
        if (rc != SQLITE_ROW) {
            state_fail(st, rc, "cannot list from", err, errlen);
            goto cleanup;
        }
        /* Keys sort bytewise, so the keys with the prefix are one run from `prefix`. */
        const char *k = (const char *)sqlite3_column_text(s, 0);
        size_t klen = (size_t)sqlite3_column_bytes(s, 0);
        if (!k || klen < plen || memcmp(k, prefix, plen) != 0) break;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            state_entry *grown = realloc(list, ncap * sizeof *grown);
            if (!grown) {
                state_errorf(err, errlen, "state: out of memory listing %s", ns);
                goto cleanup;
            }
            list = grown;
            cap = ncap;
        }
        state_entry *e = &list[n];
        e->value_len = (size_t)sqlite3_column_bytes(s, 1);
        e->key = state_copy_bytes(k, klen);
        e->value = state_copy_bytes(sqlite3_column_blob(s, 1), e->value_len);
        e->expires_at = sqlite3_column_int64(s, 2);
        n++;
        if (!e->key || !e->value) {
            state_errorf(err, errlen, "state: out of memory listing %s", ns);
            goto cleanup;
        }
    }
    *out = list;
    *count = n;
    list = NULL;
    ret = 0;
cleanup:
    state_stmt_done(s);
    state_entries_free(list, n);
    return ret;
}

int state_purge(state *st, size_t limit, size_t *deleted, char *err, size_t errlen) {
    sqlite3_stmt *s = st->stmt[STMT_PURGE];
    int ret = -1;
    if (deleted) *deleted = 0;
    sqlite3_bind_int64(s, 1, state_now(st));
    sqlite3_bind_int64(s, 2, limit == 0 || limit > INT64_MAX ? -1 : (sqlite3_int64)limit);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE) {
        state_fail(st, rc, "cannot purge", err, errlen);
        goto cleanup;
    }
    if (deleted) *deleted = (size_t)sqlite3_changes(st->db);
    ret = 0;
cleanup:
    state_stmt_done(s);
    return ret;
}

int state_schema_version(state *st, char *err, size_t errlen) {
    sqlite3_stmt *s = st->stmt[STMT_VERSION];
    int ret = -1;
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        state_fail(st, rc == SQLITE_DONE ? SQLITE_CORRUPT : rc, "cannot read the schema "
                   "version of", err, errlen);
        goto cleanup;
    }
    ret = sqlite3_column_int(s, 0);
cleanup:
    state_stmt_done(s);
    return ret;
}
