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
 * client that disconnects early is only noticed when the reply is written. */
#include "fox/httpd.h"

#include <errno.h>
#include <event2/buffer.h>
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
#include <sys/socket.h>
#include <unistd.h>

#include "fox/httpc.h"
#include "fox/loop.h"

typedef struct httpd_kv {
    char *name;
    char *value;
} httpd_kv;

struct httpd_request {
    httpd_server *srv;               /* NULL after httpd_shutdown() */
    struct evhttp_request *req;      /* NULL once libevent freed it */
    struct evhttp_connection *evcon;
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
    httpd_server *prev, *next;       /* all servers */
};

static httpd_server *httpd_servers;
static size_t httpd_live;

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

/* evhttp frees the connection (and with it our request): forget the request. */
static void httpd_on_conn_close(struct evhttp_connection *evcon, void *arg) {
    httpd_request *w = arg;
    evhttp_connection_set_closecb(evcon, NULL, NULL);
    w->req = NULL;
    w->evcon = NULL;
    if (w->replied) httpd_request_free(w);
}

/* The reply was written; evhttp frees its request right after this returns. */
static void httpd_on_reply_written(struct evhttp_request *req, void *arg) {
    (void)req;
    httpd_request *w = arg;
    if (w->evcon) evhttp_connection_set_closecb(w->evcon, NULL, NULL);
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
    httpd_request *w = calloc(1, sizeof *w);
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
    evhttp_connection_set_closecb(w->evcon, httpd_on_conn_close, w);
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
    /* Frees connections: pending requests learn it through their close callback. */
    if (s->http) evhttp_free(s->http);
    s->http = NULL;
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

void httpd_shutdown(void) {
    while (httpd_servers) httpd_server_free(httpd_servers);
}
