/* HTTP/1.1 server on evhttp.
 *
 * Lifetime of a request (struct httpd_request, "w" below): created when evhttp hands
 * us a complete request, owned by the server's callback until httpd_request_reply().
 * libevent may free its evhttp_request before that only by freeing the connection,
 * which first calls the connection's close callback: we point that callback at the
 * pending w, so w learns the request is gone and never touches it again. After a reply
 * w lives on until the reply is written (evhttp's on-complete callback) or the
 * connection dies (close callback again), so a closing server knows when it is idle.
 *
 * evhttp stops reading a connection while its request waits for our reply, so a
 * client that disconnects early is only noticed when the reply is written.
 *
 * Connections (struct httpd_conn, "c" below): libevent 2.1 has no connection limit
 * nor a deadline for reading a whole request, so we follow every connection ourselves.
 * evhttp asks us for each new connection's bufferevent (evhttp_set_bevcb); right after
 * evhttp has set the connection up, and before any of its I/O can run, we "adopt" it:
 * its close callback becomes ours, so c lives exactly as long as the connection. c
 * closes the connection at once when the server already holds max_connections, and
 * when a request is still not read whole request_timeout after it began (slow-loris:
 * the idle timeout alone never fires for a client that drips a byte now and then). */
#include "fox/httpd.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fox/httpc.h"
#include "fox/loop.h"

typedef struct httpd_kv {
    char *name;
    char *value;
} httpd_kv;

typedef struct httpd_conn httpd_conn;

struct httpd_request {
    httpd_server *srv;               /* NULL after httpd_shutdown() */
    struct evhttp_request *req;      /* NULL once libevent freed it */
    struct evhttp_connection *evcon;
    httpd_conn *conn;                /* NULL once the connection is gone */
    int replied;
    const char *method;
    char *uri, *path, *query, *remote, *body;
    size_t path_len, body_len;
    int remote_port;
    httpd_kv *in;
    size_t nin;
    httpd_kv *out;
    size_t nout, out_cap;
    httpd_request *prev, *next;      /* the server's requests */
};

struct httpd_server {
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    struct event *free_ev;           /* deferred final free after close */
    httpd_request_fn fn;
    void *ud;
    char host[256];
    int port;
    int closing;
    httpd_request *reqs;
    httpd_conn *conns;               /* every connection evhttp accepted and still holds */
    size_t nconns;                   /* of them, those within max_connections */
    size_t max_connections;
    struct timeval request_timeout;
    httpd_server *prev, *next;       /* all servers */
};

struct httpd_conn {
    httpd_server *srv;
    struct bufferevent *bev;
    struct evhttp_connection *evcon; /* NULL until adopted */
    struct event *adopt_ev;
    struct event *deadline_ev;       /* pending while a request is being read */
    struct evbuffer_cb_entry *in_cb, *out_cb;
    httpd_request *w;                /* the request with the application, if any */
    int counted;                     /* within max_connections (else closed at once) */
    int got_bytes;                   /* bytes arrived since the deadline started */
    httpd_conn *prev, *next;
};

static httpd_server *httpd_servers;
static size_t httpd_live;
static httpd_stats httpd_counters;
/* The connection whose bytes arrived last: the one evhttp hands a request from. */
static httpd_conn *httpd_last_input;

/* ---- request objects --------------------------------------------------------- */

static void httpd_kv_free(httpd_kv *kv, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(kv[i].name);
        free(kv[i].value);
    }
    free(kv);
}

static void httpd_server_maybe_finish(httpd_server *s);

/* Unlinks and frees w; the server may now be idle. */
static void httpd_request_free(httpd_request *w) {
    httpd_server *s = w->srv;
    if (w->conn) w->conn->w = NULL;
    if (s) {
        if (w->prev) w->prev->next = w->next;
        else s->reqs = w->next;
        if (w->next) w->next->prev = w->prev;
    }
    httpd_kv_free(w->in, w->nin);
    httpd_kv_free(w->out, w->nout);
    free(w->uri);
    free(w->path);
    free(w->query);
    free(w->remote);
    free(w->body);
    free(w);
    httpd_live--;
    if (s) httpd_server_maybe_finish(s);
}

/* ---- connections --------------------------------------------------------------- */

static void httpd_conn_free(httpd_conn *c) {
    httpd_server *s = c->srv;
    if (c->prev) c->prev->next = c->next;
    else if (s) s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    if (c->counted) {
        if (s) s->nconns--;
        httpd_counters.connections_open--;
    }
    if (httpd_last_input == c) httpd_last_input = NULL;
    if (c->adopt_ev) event_free(c->adopt_ev);
    if (c->deadline_ev) event_free(c->deadline_ev);
    free(c);
}

/* evhttp frees the connection (and the request on it, if any): forget both. */
static void httpd_on_conn_close(struct evhttp_connection *evcon, void *arg) {
    httpd_conn *c = arg;
    evhttp_connection_set_closecb(evcon, NULL, NULL);
    if (c->in_cb) evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->in_cb);
    if (c->out_cb) evbuffer_remove_cb_entry(bufferevent_get_output(c->bev), c->out_cb);
    httpd_request *w = c->w;
    if (w) {
        c->w = NULL;
        w->conn = NULL;
        w->req = NULL;
        w->evcon = NULL;
        if (w->replied) httpd_request_free(w);
    }
    httpd_conn_free(c);
}

/* The connection has request_timeout to deliver its (next) request whole. */
static void httpd_conn_start_deadline(httpd_conn *c) {
    c->got_bytes = 0;
    evtimer_add(c->deadline_ev, &c->srv->request_timeout);
}

static void httpd_conn_on_deadline(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    httpd_conn *c = arg;
    if (c->w || !c->evcon) return; /* the request is with the application */
    /* A silent keep-alive connection is simply closed; one that sent part of a request
     * in all that time is a slow (or hostile) client. */
    if (c->got_bytes) httpd_counters.requests_timed_out++;
    evhttp_connection_free(c->evcon); /* its close callback frees c */
}

static void httpd_conn_on_input(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg) {
    (void)b;
    httpd_conn *c = arg;
    if (!info->n_added) return;
    c->got_bytes = 1;
    httpd_last_input = c;
}

/* Counts the replies evhttp writes itself: the first bytes added to an empty output
 * buffer while no request of this connection is with the application (413 for a body
 * over max_body, 400 for a malformed request...). */
static void httpd_conn_on_output(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg) {
    httpd_conn *c = arg;
    if (!info->n_added || info->orig_size || c->w) return;
    char line[16] = {0};
    size_t got = 0;
    int status = 0;
    /* Peek, not copyout: a socket bufferevent freezes the start of its output buffer,
     * and evbuffer_copyout refuses to read a frozen buffer. */
    struct evbuffer_iovec v[4];
    int nv = evbuffer_peek(b, sizeof line - 1, NULL, v, 4);
    for (int i = 0; i < nv && i < 4 && got < sizeof line - 1; i++) {
        size_t take = v[i].iov_len < sizeof line - 1 - got ? v[i].iov_len : sizeof line - 1 - got;
        memcpy(line + got, v[i].iov_base, take);
        got += take;
    }
    if (got < 12) return;
    /* 1xx (100 Continue) is not a reply, only a go-ahead for the body. */
    if (sscanf(line, "HTTP/%*d.%*d %3d", &status) == 1 && status >= 200 && status < 600)
        httpd_counters.listener_replies[status]++;
}

/* Runs right after evhttp set up a connection accepted through httpd_on_accept, before
 * any of its I/O: takes over its close callback, or closes it over max_connections. */
static void httpd_conn_adopt(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    httpd_conn *c = arg;
    struct bufferevent *bev = c->bev;
    void *evcon = NULL;
    bufferevent_getcb(bev, NULL, NULL, NULL, &evcon);
    if (!evcon || evhttp_connection_get_bufferevent(evcon) != bev) {
        /* evhttp could not set the connection up (out of memory) and dropped it. */
        httpd_conn_free(c);
        bufferevent_decref(bev);
        return;
    }
    c->evcon = evcon;
    evhttp_connection_set_closecb(c->evcon, httpd_on_conn_close, c);
    bufferevent_decref(bev); /* evhttp's alone from now on */
    if (!c->counted) {
        httpd_counters.connections_rejected++;
        evhttp_connection_free(c->evcon); /* closed without a word; frees c */
        return;
    }
    httpd_counters.connections_accepted++;
    c->in_cb = evbuffer_add_cb(bufferevent_get_input(bev), httpd_conn_on_input, c);
    c->out_cb = evbuffer_add_cb(bufferevent_get_output(bev), httpd_conn_on_output, c);
    httpd_conn_start_deadline(c);
}

/* evhttp's bufferevent callback: a connection was just accepted. The bufferevent is
 * ours to make; we keep a reference on it until httpd_conn_adopt, which runs in this
 * same pass of the loop, after evhttp has finished setting the connection up (so the
 * bufferevent cannot be freed under us meanwhile, even if evhttp gives up on it). */
static struct bufferevent *httpd_on_accept(struct event_base *base, void *arg) {
    httpd_server *s = arg;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    httpd_conn *c = bev ? calloc(1, sizeof *c) : NULL;
    if (c) {
        c->adopt_ev = event_new(base, -1, 0, httpd_conn_adopt, c);
        c->deadline_ev = evtimer_new(base, httpd_conn_on_deadline, c);
    }
    if (!c || !c->adopt_ev || !c->deadline_ev) {
        /* Out of memory: evhttp makes its own bufferevent; that connection is not
         * followed and its requests get 503 (httpd_on_request). */
        if (c) httpd_conn_free(c);
        if (bev) bufferevent_free(bev);
        return NULL;
    }
    c->srv = s;
    c->bev = bev;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    if (s->nconns < s->max_connections) {
        c->counted = 1;
        s->nconns++;
        httpd_counters.connections_open++;
    }
    bufferevent_incref(bev);
    event_active(c->adopt_ev, 0, 0);
    return bev;
}

/* The followed connection a request came on (NULL: an unfollowed one). */
static httpd_conn *httpd_conn_of(httpd_server *s, struct evhttp_connection *evcon) {
    if (httpd_last_input && httpd_last_input->evcon == evcon) return httpd_last_input;
    for (httpd_conn *c = s->conns; c; c = c->next)
        if (c->evcon == evcon) return c;
    return NULL;
}

/* ---- requests ------------------------------------------------------------------ */

/* The reply was written; evhttp frees its request right after this returns, and the
 * connection either closes or waits for its next request. */
static void httpd_on_reply_written(struct evhttp_request *req, void *arg) {
    (void)req;
    httpd_request *w = arg;
    httpd_conn *c = w->conn;
    if (c) {
        c->w = NULL;
        w->conn = NULL;
        httpd_conn_start_deadline(c);
    }
    w->req = NULL;
    w->evcon = NULL;
    httpd_request_free(w);
}

static const char *httpd_method_name(enum evhttp_cmd_type t) {
    switch (t) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    case EVHTTP_REQ_PATCH: return "PATCH";
    }
    return "UNKNOWN";
}

static char *httpd_strdup0(const char *s) { return strdup(s ? s : ""); }

/* Copies everything the callback may read out of libevent's request. 0 / -1 (ENOMEM). */
static int httpd_request_copy(httpd_request *w, struct evhttp_request *req) {
    w->method = httpd_method_name(evhttp_request_get_command(req));
    w->uri = httpd_strdup0(evhttp_request_get_uri(req));
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    if (!path || !*path) path = "/";
    size_t plen = strlen(path);
    w->path = malloc(plen + 1);
    w->query = httpd_strdup0(u ? evhttp_uri_get_query(u) : NULL);
    if (!w->uri || !w->path || !w->query) return -1;
    w->path_len = httpc_percent_decode(path, plen, w->path, 0);
    w->path[w->path_len] = '\0';

    char *addr = NULL;
    ev_uint16_t port = 0;
    evhttp_connection_get_peer(w->evcon, &addr, &port);
    w->remote = httpd_strdup0(addr);
    w->remote_port = port;
    if (!w->remote) return -1;

    struct evkeyvalq *hs = evhttp_request_get_input_headers(req);
    struct evkeyval *h;
    size_t n = 0;
    for (h = hs->tqh_first; h; h = h->next.tqe_next) n++;
    if (n) {
        w->in = calloc(n, sizeof *w->in);
        if (!w->in) return -1;
        for (h = hs->tqh_first; h; h = h->next.tqe_next) {
            w->in[w->nin].name = httpd_strdup0(h->key);
            w->in[w->nin].value = httpd_strdup0(h->value);
            w->nin++;
            if (!w->in[w->nin - 1].name || !w->in[w->nin - 1].value) return -1;
        }
    }

    struct evbuffer *b = evhttp_request_get_input_buffer(req);
    w->body_len = evbuffer_get_length(b);
    w->body = malloc(w->body_len + 1);
    if (!w->body) return -1;
    if (w->body_len && evbuffer_copyout(b, w->body, w->body_len) != (ev_ssize_t)w->body_len)
        return -1;
    w->body[w->body_len] = '\0';
    return 0;
}

static void httpd_send_plain(struct evhttp_request *req, int status, const char *text) {
    struct evbuffer *b = evbuffer_new();
    if (b) evbuffer_add(b, text, strlen(text));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
    evhttp_send_reply(req, status, NULL, b);
    if (b) evbuffer_free(b);
}

/* evhttp's generic callback: every request that parsed and fits the limits. */
static void httpd_on_request(struct evhttp_request *req, void *arg) {
    httpd_server *s = arg;
    if (s->closing || !s->fn) {
        httpd_send_plain(req, 503, "server is shutting down\n");
        return;
    }
    httpd_conn *c = httpd_conn_of(s, evhttp_request_get_connection(req));
    httpd_request *w = c ? calloc(1, sizeof *w) : NULL;
    if (!w) {
        httpd_send_plain(req, 503, "out of memory\n");
        return;
    }
    httpd_live++;
    w->srv = s;
    w->req = req;
    w->evcon = evhttp_request_get_connection(req);
    w->next = s->reqs;
    if (s->reqs) s->reqs->prev = w;
    s->reqs = w;
    w->conn = c;
    c->w = w;
    evtimer_del(c->deadline_ev); /* read in time */
    if (httpd_request_copy(w, req) != 0) {
        httpd_request_reply(w, 503, "out of memory\n", 14);
        return;
    }
    s->fn(w, s->ud);
}

/* ---- request API ------------------------------------------------------------- */

const char *httpd_request_method(const httpd_request *r) { return r->method; }
const char *httpd_request_uri(const httpd_request *r) { return r->uri; }
const char *httpd_request_path(const httpd_request *r, size_t *len) {
    if (len) *len = r->path_len;
    return r->path;
}
const char *httpd_request_query(const httpd_request *r) { return r->query; }
size_t httpd_request_header_count(const httpd_request *r) { return r->nin; }
void httpd_request_header(const httpd_request *r, size_t i, const char **name,
                          const char **value) {
    *name = i < r->nin ? r->in[i].name : NULL;
    *value = i < r->nin ? r->in[i].value : NULL;
}
const char *httpd_request_body(const httpd_request *r, size_t *len) {
    if (len) *len = r->body_len;
    return r->body;
}
const char *httpd_request_remote_addr(const httpd_request *r) { return r->remote; }
int httpd_request_remote_port(const httpd_request *r) { return r->remote_port; }
int httpd_request_connected(const httpd_request *r) { return r->req != NULL; }

static int httpd_is_token(const char *s) {
    if (!*s) return 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 32 || c >= 127 || strchr("\"(),/:;<=>?@[\\]{}", c)) return 0;
    }
    return 1;
}

int httpd_request_add_header(httpd_request *r, const char *name, const char *value,
                             char *err, size_t errlen) {
    if (!name || !httpd_is_token(name)) {
        snprintf(err, errlen, "invalid response header name '%s'", name ? name : "");
        return -1;
    }
    if (!value) value = "";
    if (strpbrk(value, "\r\n")) {
        snprintf(err, errlen, "response header '%s' contains CR or LF", name);
        return -1;
    }
    if (strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Transfer-Encoding") == 0)
        return 0;
    if (r->nout == r->out_cap) {
        size_t cap = r->out_cap ? r->out_cap * 2 : 8;
        httpd_kv *kv = realloc(r->out, cap * sizeof *kv);
        if (!kv) goto fail;
        r->out = kv;
        r->out_cap = cap;
    }
    char *n = strdup(name), *v = strdup(value);
    if (!n || !v) {
        free(n);
        free(v);
        goto fail;
    }
    r->out[r->nout].name = n;
    r->out[r->nout].value = v;
    r->nout++;
    return 0;
fail:
    snprintf(err, errlen, "out of memory");
    return -1;
}

void httpd_request_clear_headers(httpd_request *r) {
    httpd_kv_free(r->out, r->nout);
    r->out = NULL;
    r->nout = r->out_cap = 0;
}

void httpd_request_reply(httpd_request *r, int status, const char *body, size_t len) {
    if (r->replied) return;
    r->replied = 1;
    struct evhttp_request *req = r->req;
    if (!req) {
        httpd_request_free(r); /* the client is gone */
        return;
    }
    if (status < 100 || status > 599) status = 500;
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    for (size_t i = 0; i < r->nout; i++) evhttp_add_header(out, r->out[i].name, r->out[i].value);
    struct evbuffer *b = evbuffer_new();
    if (b && body && len && evbuffer_add(b, body, len) != 0) {
        evbuffer_free(b);
        b = NULL;
    }
    if (!b) {
        status = 503;
        evhttp_clear_headers(out);
    }
    evhttp_request_set_on_complete_cb(req, httpd_on_reply_written, r);
    /* From here libevent owns req; r follows it through the two callbacks above. */
    evhttp_send_reply(req, status, NULL, b);
    if (b) evbuffer_free(b);
}

/* ---- servers ----------------------------------------------------------------- */

static void httpd_server_free(httpd_server *s) {
    /* Frees connections: their close callbacks free them and tell pending requests. */
    if (s->http) evhttp_free(s->http);
    s->http = NULL;
    /* Left: connections accepted in this very pass, not adopted yet; evhttp let go of
     * their bufferevents, drop our reference too. */
    while (s->conns) {
        httpd_conn *c = s->conns;
        struct bufferevent *bev = c->evcon ? NULL : c->bev;
        httpd_conn_free(c);
        if (bev) bufferevent_decref(bev);
    }
    for (httpd_request *w = s->reqs; w; w = w->next) w->srv = NULL;
    s->reqs = NULL;
    if (s->free_ev) event_free(s->free_ev);
    if (s->prev) s->prev->next = s->next;
    else if (httpd_servers == s) httpd_servers = s->next;
    if (s->next) s->next->prev = s->prev;
    free(s);
}

static void httpd_on_free_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    httpd_server *s = arg;
    if (s->reqs) return; /* a request arrived meanwhile; its end re-arms us */
    httpd_server_free(s);
}

/* Frees a closed server once idle, from its own event: we may be inside evhttp. */
static void httpd_server_maybe_finish(httpd_server *s) {
    if (!s->closing || s->reqs) return;
    struct timeval now = {0, 0};
    evtimer_add(s->free_ev, &now);
}

static void httpd_ignore_sigpipe(void) {
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
}

/* Opens a listening, non-blocking socket on host:port. Returns the fd or -1. */
static int httpd_bind(const char *host, int port, char *err, size_t errlen) {
    int fd = -1, saved = 0;
    char portstr[16];
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(portstr, sizeof portstr, "%d", port);
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "could not listen on %s:%d: %s", host, port, gai_strerror(gai));
        goto cleanup;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0) break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    if (fd < 0)
        snprintf(err, errlen, "could not listen on %s:%d: %s", host, port, strerror(saved));
cleanup:
    if (res) freeaddrinfo(res);
    return fd;
}

/* As many as asked by default, but never so many that accepting one more would fail
 * for want of a descriptor (the rest of fox needs some too). */
static size_t httpd_default_max_connections(void) {
    struct rlimit rl;
    size_t n = HTTPD_DEFAULT_MAX_CONNECTIONS;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        size_t room = rl.rlim_cur > 256 ? (size_t)rl.rlim_cur - 128 : (size_t)rl.rlim_cur / 2;
        if (room < n) n = room;
    }
    return n ? n : 1;
}

httpd_server *httpd_listen(const httpd_opts *o, httpd_request_fn fn, void *ud, char *err,
                           size_t errlen) {
    httpd_server *s = NULL;
    int fd = -1;
    const char *host = o->host && *o->host ? o->host : "127.0.0.1";
    if (!loop_base()) {
        snprintf(err, errlen, "the event loop is not initialised");
        goto fail;
    }
    if (o->port < 0 || o->port > 65535) {
        snprintf(err, errlen, "invalid port %d", o->port);
        goto fail;
    }
    snprintf(err, errlen, "out of memory starting the HTTP server"); /* unless said otherwise */
    s = calloc(1, sizeof *s);
    if (!s) goto fail;
    snprintf(s->host, sizeof s->host, "%s", host);
    s->fn = fn;
    s->ud = ud;
    s->http = evhttp_new(loop_base());
    s->free_ev = evtimer_new(loop_base(), httpd_on_free_timer, s);
    if (!s->http || !s->free_ev) goto fail;

    double timeout = o->timeout > 0 ? o->timeout : HTTPD_DEFAULT_TIMEOUT;
    struct timeval tv = {(time_t)timeout, (suseconds_t)((timeout - (double)(time_t)timeout) * 1e6)};
    evhttp_set_timeout_tv(s->http, &tv);
    evhttp_set_max_body_size(s->http, (ev_ssize_t)(o->max_body ? o->max_body : HTTPD_DEFAULT_MAX_BODY));
    evhttp_set_max_headers_size(s->http,
                                (ev_ssize_t)(o->max_header ? o->max_header : HTTPD_DEFAULT_MAX_HEADER));
    /* Read (and discard) an oversized body before answering 413, so the client sees
     * the status instead of a reset connection. */
    evhttp_set_flags(s->http, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_default_content_type(s->http, "text/plain; charset=utf-8");
    evhttp_set_gencb(s->http, httpd_on_request, s);
    evhttp_set_bevcb(s->http, httpd_on_accept, s);
    double rt = o->request_timeout > 0 ? o->request_timeout : HTTPD_DEFAULT_REQUEST_TIMEOUT;
    s->request_timeout.tv_sec = (time_t)rt;
    s->request_timeout.tv_usec = (suseconds_t)((rt - (double)(time_t)rt) * 1e6);
    s->max_connections = o->max_connections ? o->max_connections : httpd_default_max_connections();

    fd = httpd_bind(host, o->port, err, errlen);
    if (fd < 0) goto fail;
    s->bound = evhttp_accept_socket_with_handle(s->http, fd);
    if (!s->bound) goto fail;
    fd = -1; /* the listener owns it now */

    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(s->bound), (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6) s->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    httpd_ignore_sigpipe();
    s->next = httpd_servers;
    if (httpd_servers) httpd_servers->prev = s;
    httpd_servers = s;
    err[0] = '\0';
    return s;
fail:
    if (fd >= 0) close(fd);
    if (s) {
        if (s->http) evhttp_free(s->http);
        if (s->free_ev) event_free(s->free_ev);
        free(s);
    }
    return NULL;
}

int httpd_server_port(const httpd_server *s) { return s->port; }
const char *httpd_server_host(const httpd_server *s) { return s->host; }

void httpd_close(httpd_server *s) {
    if (!s || s->closing) return;
    s->closing = 1;
    s->fn = NULL;
    if (s->bound) evhttp_del_accept_socket(s->http, s->bound);
    s->bound = NULL;
    httpd_server_maybe_finish(s);
}

size_t httpd_live_requests(void) { return httpd_live; }

const httpd_stats *httpd_get_stats(void) { return &httpd_counters; }

void httpd_shutdown(void) {
    while (httpd_servers) httpd_server_free(httpd_servers);
}
