/* Group commit over a state handle. See include/fox/state_group.h.
 *
 * Timing: the first member of a group arms a zero-delay timer. libevent runs expired
 * timers after the I/O callbacks of a loop turn, so every delivery read in the turn in
 * which the group opened (and the tasks those callbacks made ready) has joined by the
 * time the group commits. While the commit's fsync blocks the loop, new deliveries
 * queue up in the sockets; the next turn reads them all and they form the next group.
 * The group size follows the load by itself, with no added delay when idle. */
#include "fox/state_group.h"

#include <event2/event.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fox/loop.h"

struct state_group_member {
    state_group *g;
    state_write *writes;   /* n rows; their bytes live in the same allocation */
    size_t n;
    state_group_done_fn done;
    void *ud;
    state_group_member *prev, *next;
};

struct state_group {
    state *st;
    struct event *timer;
    state_group_member *head, *tail;
    size_t rows;           /* rows of the open group */
    state_group_stats stats;
};

static void state_group_on_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    state_group_flush(arg);
}

state_group *state_group_new(state *st) {
    if (!loop_base()) return NULL;
    state_group *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->st = st;
    g->timer = evtimer_new(loop_base(), state_group_on_timer, g);
    if (!g->timer) {
        free(g);
        return NULL;
    }
    return g;
}

void state_group_free(state_group *g) {
    if (!g) return;
    state_group_flush(g);
    event_free(g->timer);
    free(g);
}

static void state_group_unlink(state_group *g, state_group_member *m) {
    if (m->prev) m->prev->next = m->next;
    else g->head = m->next;
    if (m->next) m->next->prev = m->prev;
    else g->tail = m->prev;
    m->prev = m->next = NULL;
    g->rows -= m->n;
}

/* One allocation: the member, its row array, then every ns, key and value. */
static state_group_member *state_group_copy(const state_write *writes, size_t n) {
    size_t bytes = sizeof(state_group_member) + n * sizeof(state_write);
    for (size_t i = 0; i < n; i++)
        bytes += strlen(writes[i].ns) + 1 + strlen(writes[i].key) + 1 + writes[i].len;
    state_group_member *m = calloc(1, bytes);
    if (!m) return NULL;
    m->writes = (state_write *)(m + 1);
    m->n = n;
    char *p = (char *)(m->writes + n);
    for (size_t i = 0; i < n; i++) {
        const state_write *w = &writes[i];
        state_write *c = &m->writes[i];
        size_t ns = strlen(w->ns) + 1, key = strlen(w->key) + 1;
        c->ns = memcpy(p, w->ns, ns);
        p += ns;
        c->key = memcpy(p, w->key, key);
        p += key;
        if (w->len) memcpy(p, w->value, w->len);
        c->value = p;
        c->len = w->len;
        c->ttl = w->ttl;
        p += w->len;
    }
    return m;
}

state_group_member *state_group_join(state_group *g, const state_write *writes, size_t n,
                                     state_group_done_fn done, void *ud, char *err,
                                     size_t errlen) {
    for (size_t i = 0; i < n; i++)
        if (state_write_check(&writes[i], err, errlen) < 0) return NULL;
    state_group_member *m = state_group_copy(writes, n);
    if (!m) {
        snprintf(err, errlen, "state: out of memory");
        return NULL;
    }
    m->g = g;
    m->done = done;
    m->ud = ud;
    m->prev = g->tail;
    if (g->tail) g->tail->next = m;
    else g->head = m;
    g->tail = m;
    g->rows += n;
    if (g->rows >= STATE_GROUP_MAX_ROWS) {
        /* Big enough: commit after the current callback rather than next turn. */
        event_active(g->timer, EV_TIMEOUT, 0);
    } else if (!evtimer_pending(g->timer, NULL)) {
        static const struct timeval now = {0, 0};
        evtimer_add(g->timer, &now);
    }
    return m;
}

void state_group_leave(state_group_member *m) {
    state_group *g = m->g;
    state_group_unlink(g, m);
    if (!g->head) evtimer_del(g->timer);
    free(m);
}

int state_group_flush(state_group *g) {
    evtimer_del(g->timer);
    state_group_member *members = g->head;
    size_t rows = g->rows;
    g->head = g->tail = NULL;
    g->rows = 0;
    if (!members) return 0;

    char err[1024] = "";
    int ok = 0;
    state_write *all = malloc((rows ? rows : 1) * sizeof *all);
    if (!all) {
        snprintf(err, sizeof err, "state: out of memory committing %zu rows", rows);
    } else {
        size_t k = 0;
        for (state_group_member *m = members; m; m = m->next)
            for (size_t i = 0; i < m->n; i++) all[k++] = m->writes[i];
        ok = state_write_many(g->st, all, k, err, sizeof err) == 0;
        free(all);
    }
    g->stats.commits++;
    if (!ok) g->stats.failed++;
    g->stats.rows += rows;
    /* Every member hears the outcome; none is told before the commit returned. */
    while (members) {
        state_group_member *m = members;
        members = m->next;
        g->stats.members++;
        m->done(m->ud, ok, err);
        free(m);
    }
    return ok ? 0 : -1;
}

state_group_stats state_group_get_stats(const state_group *g) {
    return g->stats;
}
