/* HTTP client: one libcurl multi handle driven by libevent.
 *
 * libcurl tells us which sockets to watch (socket callback) and when to call it back
 * (timer callback); both only (re)arm libevent events. When an event fires we hand it
 * to curl_multi_socket_action and then drain curl_multi_info_read: finished transfers
 * are removed from the multi handle first and only then is their completion callback
 * called, so user code never runs inside a libcurl callback and may start or free
 * transfers freely. */
#include "fox/httpc.h"

#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fox/loop.h"

#ifndef FOX_VERSION
#define FOX_VERSION "0.0.0"
#endif

/* libcurl's own connection limits only back up the FIFO below: fox never attaches
 * more transfers than these, so none waits inside libcurl (where its timeout would run
 * and its easy handle would sit allocated). */
#define HTTPC_CONNECTION_CACHE 64L
#define HTTPC_EASY_POOL 32

typedef struct httpc_host httpc_host;

enum httpc_state {
    HTTPC_QUEUED,             /* in its host's FIFO, no easy handle */
    HTTPC_RUNNING,            /* attached to the multi handle */
    HTTPC_FAILING,            /* could not be started; its callback is due (httpc.failing) */
    HTTPC_FINISHED,           /* result set */
};

struct httpc_transfer {
    CURL *easy;               /* only while running */
    httpc_done_fn fn;
    void *ud;
    enum httpc_state state;
    httpc_host *host;         /* while queued or running: the slot it holds or waits for */
    httpc_transfer *prev, *next; /* the host's FIFO, the running list or httpc.failing */
    struct event *queue_timer; /* while queued */
    double queued_at;
    double queue_timeout;

    /* request, kept until the transfer leaves the multi handle */
    char *url;
    char *method;
    char *body;
    size_t body_len;
    struct curl_slist *req_headers;
    double timeout;
    size_t max_body;
    long max_redirects;
    int head_only;
    char *hostname;           /* "host" then "host:port" in one allocation, for messages */
    const char *hostport;

    /* response */
    long status;
    httpc_header *headers;
    size_t nheaders, headers_cap;
    size_t header_bytes;
    char *resp_body;
    size_t resp_len, resp_cap;
    enum { HTTPC_FAIL_NONE, HTTPC_FAIL_BODY, HTTPC_FAIL_HEADERS, HTTPC_FAIL_NOMEM } fail;
    char *errbuf;             /* CURL_ERROR_SIZE bytes while running */
    char *error;              /* the failure sentence, once finished */
    httpc_result result;
};

/* Slot accounting and FIFO of one host:port; freed when nothing holds or waits. */
struct httpc_host {
    char *key;                /* "host:port" */
    int active;               /* its transfers attached to libcurl */
    size_t refs;              /* its transfers queued or running */
    httpc_transfer *qhead, *qtail;
    httpc_host *prev, *next;  /* httpc.hosts, least recently served first */
};

typedef struct httpc_sock {
    struct event *ev;
    curl_socket_t fd;
    struct httpc_sock *prev, *next;
} httpc_sock;

static struct {
    int curl_ready;           /* curl_global_init done */
    CURLM *multi;
    struct event *timer;
    struct event *deliver;    /* runs the callbacks of transfers that could not start */
    CURL *pool[HTTPC_EASY_POOL];
    int npool;
    size_t live, queued, active;
    httpc_transfer *running;
    httpc_transfer *failing;
    httpc_host *hosts, *hosts_tail;
    httpc_sock *socks;
    char *ca_bundle;          /* FOX_CA_BUNDLE: replaces the system CA bundle (private CA, fakes) */
} httpc;

/* ---- percent-encoding -------------------------------------------------------- */

static int httpc_is_unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

size_t httpc_percent_encode(const char *in, size_t inlen, char *out) {
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (size_t i = 0; i < inlen; i++) {
        unsigned char c = (unsigned char)in[i];
        if (httpc_is_unreserved(c)) {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    return n;
}

static int httpc_hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

size_t httpc_percent_decode(const char *in, size_t inlen, char *out, int plus_as_space) {
    size_t n = 0;
    for (size_t i = 0; i < inlen; i++) {
        char c = in[i];
        if (c == '%' && i + 2 < inlen) {
            int hi = httpc_hex_value(in[i + 1]), lo = httpc_hex_value(in[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out[n++] = (char)(hi << 4 | lo);
                i += 2;
                continue;
            }
        }
        out[n++] = (plus_as_space && c == '+') ? ' ' : c;
    }
    return n;
}

/* ---- libevent <-> libcurl glue ----------------------------------------------- */

static void httpc_check_done(void);
static void httpc_deliver_failed(evutil_socket_t fd, short what, void *arg);

static void httpc_on_socket_event(evutil_socket_t fd, short what, void *arg) {
    (void)arg; /* may be freed by the socket callback during socket_action */
    int flags = 0, running = 0;
    if (what & EV_READ) flags |= CURL_CSELECT_IN;
    if (what & EV_WRITE) flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(httpc.multi, fd, flags, &running);
    httpc_check_done();
}

static void httpc_on_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what, (void)arg;
    int running = 0;
    curl_multi_socket_action(httpc.multi, CURL_SOCKET_TIMEOUT, 0, &running);
    httpc_check_done();
}

static void httpc_sock_free(httpc_sock *s) {
    if (s->prev) s->prev->next = s->next;
    else httpc.socks = s->next;
    if (s->next) s->next->prev = s->prev;
    if (s->ev) event_free(s->ev);
    free(s);
}

/* CURLMOPT_SOCKETFUNCTION: only (re)arms events; never calls back into libcurl. */
static int httpc_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
    (void)easy, (void)userp;
    httpc_sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(httpc.multi, fd, NULL);
            httpc_sock_free(s);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) return -1;
        s->fd = fd;
        s->next = httpc.socks;
        if (httpc.socks) httpc.socks->prev = s;
        httpc.socks = s;
        curl_multi_assign(httpc.multi, fd, s);
    }
    if (s->ev) {
        event_free(s->ev);
        s->ev = NULL;
    }
    short kind = EV_PERSIST;
    if (what & CURL_POLL_IN) kind |= EV_READ;
    if (what & CURL_POLL_OUT) kind |= EV_WRITE;
    s->ev = event_new(loop_base(), fd, kind, httpc_on_socket_event, s);
    if (!s->ev || event_add(s->ev, NULL) != 0) return -1;
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: -1 deletes the timer, otherwise fire once after ms. */
static int httpc_timer_cb(CURLM *multi, long ms, void *userp) {
    (void)multi, (void)userp;
    if (ms < 0) {
        evtimer_del(httpc.timer);
        return 0;
    }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return evtimer_add(httpc.timer, &tv) == 0 ? 0 : -1;
}

static int httpc_init(char *err, size_t errlen) {
    if (httpc.multi) return 0;
    if (!loop_base()) {
        snprintf(err, errlen, "the event loop is not initialised");
        return -1;
    }
    if (!httpc.curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            snprintf(err, errlen, "libcurl could not be initialised");
            return -1;
        }
        httpc.curl_ready = 1;
    }
    httpc.timer = evtimer_new(loop_base(), httpc_on_timer, NULL);
    httpc.deliver = event_new(loop_base(), -1, 0, httpc_deliver_failed, NULL);
    httpc.multi = curl_multi_init();
    if (!httpc.timer || !httpc.deliver || !httpc.multi) {
        snprintf(err, errlen, "out of memory starting the HTTP client");
        goto fail;
    }
    curl_multi_setopt(httpc.multi, CURLMOPT_SOCKETFUNCTION, httpc_socket_cb);
    curl_multi_setopt(httpc.multi, CURLMOPT_TIMERFUNCTION, httpc_timer_cb);
    curl_multi_setopt(httpc.multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)HTTPC_MAX_HOST_TRANSFERS);
    curl_multi_setopt(httpc.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)HTTPC_MAX_TRANSFERS);
    curl_multi_setopt(httpc.multi, CURLMOPT_MAXCONNECTS, HTTPC_CONNECTION_CACHE);
    const char *ca = getenv("FOX_CA_BUNDLE");
    httpc.ca_bundle = ca && *ca ? strdup(ca) : NULL;
    return 0;
fail:
    if (httpc.multi) curl_multi_cleanup(httpc.multi);
    if (httpc.timer) event_free(httpc.timer);
    if (httpc.deliver) event_free(httpc.deliver);
    httpc.multi = NULL;
    httpc.timer = NULL;
    httpc.deliver = NULL;
    return -1;
}

/* ---- per-transfer callbacks (run inside libcurl: record only) ----------------- */

static void httpc_headers_clear(httpc_transfer *x) {
    for (size_t i = 0; i < x->nheaders; i++) {
        free(x->headers[i].name);
        free(x->headers[i].value);
    }
    x->nheaders = 0;
}

static char *httpc_strndup_trim(const char *s, size_t len) {
    while (len && (*s == ' ' || *s == '\t')) s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
    char *out = malloc(len + 1);
    if (!out) return NULL;
    memcpy(out, s, len);
    out[len] = '\0';
    return out;
}

/* Content-Length of the response being received, or -1 when absent/invalid. */
static long long httpc_content_length(const httpc_transfer *x) {
    for (size_t i = 0; i < x->nheaders; i++) {
        if (strcasecmp(x->headers[i].name, "content-length") != 0) continue;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(x->headers[i].value, &end, 10);
        if (errno || end == x->headers[i].value || *end) return -1;
        return v > (unsigned long long)0x7fffffffffffffffLL ? 0x7fffffffffffffffLL : (long long)v;
    }
    return -1;
}

/* Reserves room for n more body bytes; never beyond max_body. 0 / -1. */
static int httpc_body_reserve(httpc_transfer *x, size_t n) {
    size_t need = x->resp_len + n;
    if (need <= x->resp_cap) return 0;
    size_t cap = x->resp_cap ? x->resp_cap * 2 : 16384;
    if (cap < need) cap = need;
    if (cap > x->max_body) cap = x->max_body;
    char *p = realloc(x->resp_body, cap);
    if (!p) return -1;
    x->resp_body = p;
    x->resp_cap = cap;
    return 0;
}

/* At the blank line ending a response's headers: refuse a body announced too big and
 * size the buffer once when the length is known. */
static size_t httpc_headers_complete(httpc_transfer *x) {
    if (x->head_only || x->status < 200 || x->status == 204 || x->status == 304) return 0;
    if (x->max_redirects > 0 && x->status >= 300 && x->status < 400) return 0;
    long long len = httpc_content_length(x);
    if (len < 0) return 0;
    if ((unsigned long long)len > x->max_body) {
        x->fail = HTTPC_FAIL_BODY;
        return 1;
    }
    if (len > 0 && httpc_body_reserve(x, (size_t)len) != 0) {
        x->fail = HTTPC_FAIL_NOMEM;
        return 1;
    }
    return 0;
}

static size_t httpc_header_cb(char *buf, size_t size, size_t nitems, void *ud) {
    httpc_transfer *x = ud;
    size_t total = size * nitems, len = total;
    x->header_bytes += total;
    if (x->header_bytes > HTTPC_MAX_HEADER_BYTES) {
        x->fail = HTTPC_FAIL_HEADERS;
        return 0;
    }
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) len--;
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        /* A new response (100 Continue, a followed redirect, the final one). */
        httpc_headers_clear(x);
        x->resp_len = 0;
        const char *sp = memchr(buf, ' ', len);
        x->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        return total;
    }
    if (len == 0) return httpc_headers_complete(x) ? 0 : total;
    if ((buf[0] == ' ' || buf[0] == '\t') && x->nheaders) {
        /* obsolete line folding: continue the previous value */
        httpc_header *h = &x->headers[x->nheaders - 1];
        char *more = httpc_strndup_trim(buf, len);
        if (!more) goto nomem;
        size_t a = strlen(h->value), b = strlen(more);
        char *v = realloc(h->value, a + b + 2);
        if (!v) {
            free(more);
            goto nomem;
        }
        v[a] = ' ';
        memcpy(v + a + 1, more, b + 1);
        h->value = v;
        free(more);
        return total;
    }
    const char *colon = memchr(buf, ':', len);
    if (!colon || colon == buf) return total; /* not a header line: ignore */
    if (x->nheaders == x->headers_cap) {
        size_t cap = x->headers_cap ? x->headers_cap * 2 : 16;
        httpc_header *h = realloc(x->headers, cap * sizeof *h);
        if (!h) goto nomem;
        x->headers = h;
        x->headers_cap = cap;
    }
    char *name = httpc_strndup_trim(buf, (size_t)(colon - buf));
    char *value = httpc_strndup_trim(colon + 1, len - (size_t)(colon - buf) - 1);
    if (!name || !value) {
        free(name);
        free(value);
        goto nomem;
    }
    x->headers[x->nheaders].name = name;
    x->headers[x->nheaders].value = value;
    x->nheaders++;
    return total;
nomem:
    x->fail = HTTPC_FAIL_NOMEM;
    return 0;
}

static size_t httpc_write_cb(char *ptr, size_t size, size_t nmemb, void *ud) {
    httpc_transfer *x = ud;
    size_t n = size * nmemb;
    if (n > x->max_body - x->resp_len) {
        x->fail = HTTPC_FAIL_BODY;
        return 0;
    }
    if (httpc_body_reserve(x, n) != 0) {
        x->fail = HTTPC_FAIL_NOMEM;
        return 0;
    }
    memcpy(x->resp_body + x->resp_len, ptr, n);
    x->resp_len += n;
    return n;
}

/* ---- hosts and their FIFOs ----------------------------------------------------- */

static httpc_host *httpc_host_get(const char *key) {
    for (httpc_host *h = httpc.hosts; h; h = h->next)
        if (strcmp(h->key, key) == 0) return h;
    httpc_host *h = calloc(1, sizeof *h);
    if (!h || !(h->key = strdup(key))) {
        free(h);
        return NULL;
    }
    h->prev = httpc.hosts_tail;
    if (httpc.hosts_tail) httpc.hosts_tail->next = h;
    else httpc.hosts = h;
    httpc.hosts_tail = h;
    return h;
}

static void httpc_host_unlink(httpc_host *h) {
    if (h->prev) h->prev->next = h->next;
    else httpc.hosts = h->next;
    if (h->next) h->next->prev = h->prev;
    else httpc.hosts_tail = h->prev;
    h->prev = h->next = NULL;
}

/* Drops x's hold on its host; the host goes when nothing holds or waits on it. */
static void httpc_host_release(httpc_transfer *x) {
    httpc_host *h = x->host;
    x->host = NULL;
    if (!h || --h->refs) return;
    httpc_host_unlink(h);
    free(h->key);
    free(h);
}

static void httpc_queue_unlink(httpc_transfer *x) {
    httpc_host *h = x->host;
    if (x->prev) x->prev->next = x->next;
    else h->qhead = x->next;
    if (x->next) x->next->prev = x->prev;
    else h->qtail = x->prev;
    x->prev = x->next = NULL;
    if (x->queue_timer) event_free(x->queue_timer);
    x->queue_timer = NULL;
    httpc.queued--;
}

static int httpc_host_has_slot(const httpc_host *h) {
    return h->active < HTTPC_MAX_HOST_TRANSFERS && httpc.active < HTTPC_MAX_TRANSFERS;
}

/* ---- transfers --------------------------------------------------------------- */

static void httpc_list_unlink(httpc_transfer **head, httpc_transfer *x) {
    if (x->prev) x->prev->next = x->next;
    else if (*head == x) *head = x->next;
    if (x->next) x->next->prev = x->prev;
    x->prev = x->next = NULL;
}

static void httpc_list_push(httpc_transfer **head, httpc_transfer *x) {
    x->prev = NULL;
    x->next = *head;
    if (*head) (*head)->prev = x;
    *head = x;
}

/* Detaches x from libcurl, returns its easy handle to the pool and its slot to its
 * host. The caller refills the freed slot with httpc_pump(). */
static void httpc_transfer_detach(httpc_transfer *x) {
    if (x->state == HTTPC_RUNNING) {
        curl_multi_remove_handle(httpc.multi, x->easy);
        httpc_list_unlink(&httpc.running, x);
        x->host->active--;
        httpc.active--;
        httpc_host_release(x);
    }
    if (x->easy) {
        if (httpc.npool < HTTPC_EASY_POOL && httpc.multi) {
            curl_easy_reset(x->easy);
            httpc.pool[httpc.npool++] = x->easy;
        } else {
            curl_easy_cleanup(x->easy);
        }
        x->easy = NULL;
    }
    free(x->errbuf);
    x->errbuf = NULL;
    curl_slist_free_all(x->req_headers);
    x->req_headers = NULL;
    free(x->body);
    x->body = NULL;
}

/* Marks x finished with the failure sentence msg (copied). */
static void httpc_transfer_fail(httpc_transfer *x, const char *msg) {
    memset(&x->result, 0, sizeof x->result);
    free(x->error);
    x->error = strdup(msg);
    x->result.error = x->error ? x->error : "out of memory";
    x->state = HTTPC_FINISHED;
}

/* Writes the sentence for a transfer that ended with rc into e[0..n). */
static void httpc_describe_failure(const httpc_transfer *x, CURLcode rc, long os_errno, char *e,
                                   size_t n) {
    const char *detail = x->errbuf && x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
    const char *host = x->hostname;
    switch (x->fail) {
    case HTTPC_FAIL_BODY:
        snprintf(e, n, "response body exceeds max_body (%zu bytes)", x->max_body);
        return;
    case HTTPC_FAIL_HEADERS:
        snprintf(e, n, "response headers exceed %zu bytes", HTTPC_MAX_HEADER_BYTES);
        return;
    case HTTPC_FAIL_NOMEM:
        snprintf(e, n, "out of memory reading the response from %s", x->hostport);
        return;
    case HTTPC_FAIL_NONE:
        break;
    }
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(e, n, "timed out after %.1f s", x->timeout);
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        snprintf(e, n, "could not resolve host %s", host);
        break;
    case CURLE_COULDNT_RESOLVE_PROXY:
        snprintf(e, n, "could not resolve the proxy: %s", detail);
        break;
    case CURLE_COULDNT_CONNECT:
        if (os_errno == ECONNREFUSED)
            snprintf(e, n, "connection refused (%s)", x->hostport);
        else if (os_errno == ENETUNREACH || os_errno == EHOSTUNREACH)
            snprintf(e, n, "no route to %s", x->hostport);
        else if (os_errno)
            snprintf(e, n, "could not connect to %s: %s", x->hostport, strerror((int)os_errno));
        else
            snprintf(e, n, "could not connect to %s: %s", x->hostport, detail);
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
        snprintf(e, n, "TLS certificate of %s could not be verified: %s", host, detail);
        break;
    case CURLE_SSL_CONNECT_ERROR:
        snprintf(e, n, "TLS handshake with %s failed: %s", x->hostport, detail);
        break;
    case CURLE_GOT_NOTHING:
        snprintf(e, n, "%s closed the connection without a response", x->hostport);
        break;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
        snprintf(e, n, "connection to %s failed mid-transfer: %s", x->hostport, detail);
        break;
    case CURLE_TOO_MANY_REDIRECTS:
        snprintf(e, n, "too many redirects (more than %ld)", x->max_redirects);
        break;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        snprintf(e, n, "invalid HTTP response from %s: %s", x->hostport, detail);
        break;
    case CURLE_OUT_OF_MEMORY:
        snprintf(e, n, "out of memory talking to %s", x->hostport);
        break;
    default:
        snprintf(e, n, "request to %s failed: %s", x->hostport, detail);
        break;
    }
}

static void httpc_pump(void);

static void httpc_transfer_complete(httpc_transfer *x, CURLcode rc) {
    long code = 0, os_errno = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &os_errno);
    if (rc == CURLE_OK && x->fail == HTTPC_FAIL_NONE) {
        httpc_transfer_detach(x);
        httpc_result *r = &x->result;
        memset(r, 0, sizeof *r);
        r->ok = 1;
        r->status = code ? code : x->status;
        r->headers = x->headers;
        r->nheaders = x->nheaders;
        r->body = x->resp_body;
        r->body_len = x->resp_len;
        x->state = HTTPC_FINISHED;
    } else {
        char msg[1024];
        httpc_describe_failure(x, rc, os_errno, msg, sizeof msg); /* reads errbuf */
        httpc_transfer_detach(x);
        httpc_transfer_fail(x, msg);
    }
}

static void httpc_check_done(void) {
    CURLMsg *m;
    int left;
    while (httpc.multi && (m = curl_multi_info_read(httpc.multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE) continue;
        CURL *easy = m->easy_handle;
        CURLcode rc = m->data.result; /* m is invalid once the handle is removed */
        char *priv = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        httpc_transfer *x = (httpc_transfer *)priv;
        if (!x) continue;
        httpc_transfer_complete(x, rc);
        httpc_pump(); /* the freed slot goes to a queued request before x's caller runs */
        x->fn(x, x->ud);
    }
}

/* An HTTP token: the characters RFC 9110 allows in a method or a header name. */
static int httpc_is_token(const char *s) {
    if (!*s) return 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 32 || c >= 127 || strchr("\"(),/:;<=>?@[\\]{}", c)) return 0;
    }
    return 1;
}

/* Parses the URL for validation and error messages (host, host:port). */
static int httpc_parse_url(httpc_transfer *x, char *err, size_t errlen) {
    int rc = -1;
    char *scheme = NULL, *host = NULL, *port = NULL;
    CURLU *u = curl_url();
    if (!u) {
        snprintf(err, errlen, "out of memory");
        goto cleanup;
    }
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, x->url, 0);
    if (uc != CURLUE_OK) {
        snprintf(err, errlen, "invalid URL: %s", curl_url_strerror(uc));
        goto cleanup;
    }
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        snprintf(err, errlen, "unsupported URL scheme '%s' (use http or https)",
                 scheme ? scheme : "");
        goto cleanup;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        snprintf(err, errlen, "invalid URL: no host");
        goto cleanup;
    }
    size_t hl = strlen(host), pl = strlen(port);
    x->hostname = malloc(2 * hl + pl + 3);
    if (!x->hostname) {
        snprintf(err, errlen, "out of memory");
        goto cleanup;
    }
    memcpy(x->hostname, host, hl + 1);
    x->hostport = x->hostname + hl + 1;
    snprintf(x->hostname + hl + 1, hl + pl + 2, "%s:%s", host, port);
    rc = 0;
cleanup:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    if (u) curl_url_cleanup(u);
    return rc;
}

static int httpc_build_headers(httpc_transfer *x, const httpc_request *req, char *err,
                               size_t errlen) {
    int rc = -1;
    char *line = NULL;
    struct curl_slist *l;
    snprintf(err, errlen, "out of memory"); /* unless a better reason is found */
    for (size_t i = 0; i < req->nheaders; i++) {
        const char *name = req->headers[2 * i], *value = req->headers[2 * i + 1];
        if (!name || !httpc_is_token(name)) {
            snprintf(err, errlen, "invalid header name '%s'", name ? name : "");
            goto cleanup;
        }
        if (!value) value = "";
        if (strpbrk(value, "\r\n")) {
            snprintf(err, errlen, "header '%s' contains CR or LF", name);
            goto cleanup;
        }
        size_t len = strlen(name) + strlen(value) + 3;
        line = malloc(len);
        if (!line) goto cleanup;
        /* libcurl sends "Name;" as an empty header ("Name:" would remove it). */
        if (*value) snprintf(line, len, "%s: %s", name, value);
        else snprintf(line, len, "%s;", name);
        l = curl_slist_append(x->req_headers, line);
        if (!l) goto cleanup;
        x->req_headers = l;
        free(line);
        line = NULL;
    }
    /* Do not stall large bodies on "Expect: 100-continue" unless the caller asked. */
    l = curl_slist_append(x->req_headers, "Expect:");
    if (!l) goto cleanup;
    x->req_headers = l;
    err[0] = '\0';
    rc = 0;
cleanup:
    free(line);
    return rc;
}

static void httpc_set_method(httpc_transfer *x) {
    CURL *e = x->easy;
    const char *m = x->method;
    int is_post = strcmp(m, "POST") == 0;
    int wants_body = is_post || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;
    if (strcmp(m, "HEAD") == 0) {
        x->head_only = 1;
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (x->body || wants_body) {
        /* POSTFIELDS with an explicit size: binary-safe, Content-Length always sent. */
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body ? x->body : "");
        if (!is_post) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
    } else if (strcmp(m, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
    }
}

/* Gives x an easy handle and attaches it to libcurl: its timeout starts now. 0 / -1
 * (err filled; x keeps no handle). */
static int httpc_activate(httpc_transfer *x, char *err, size_t errlen) {
    x->errbuf = calloc(1, CURL_ERROR_SIZE);
    x->easy = httpc.npool ? httpc.pool[--httpc.npool] : curl_easy_init();
    if (!x->errbuf || !x->easy) {
        snprintf(err, errlen, "out of memory starting the request to %s", x->hostport);
        goto fail;
    }
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, x->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, httpc_write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, httpc_header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->req_headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "fox/" FOX_VERSION);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (httpc.ca_bundle) curl_easy_setopt(e, CURLOPT_CAINFO, httpc.ca_bundle);
    if (x->timeout > 0) {
        long ms = (long)(x->timeout * 1000.0 + 0.5);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, ms > 0 ? ms : 1L);
    }
    if (x->max_redirects > 0) {
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(e, CURLOPT_MAXREDIRS, x->max_redirects);
    }
    httpc_set_method(x);
    if (curl_multi_add_handle(httpc.multi, e) != CURLM_OK) {
        snprintf(err, errlen, "libcurl refused the transfer to %s", x->hostport);
        goto fail;
    }
    x->state = HTTPC_RUNNING;
    httpc_list_push(&httpc.running, x);
    x->host->active++;
    httpc.active++;
    return 0;
fail:
    if (x->easy) curl_easy_cleanup(x->easy);
    x->easy = NULL;
    free(x->errbuf);
    x->errbuf = NULL;
    return -1;
}

/* A queued request that could not be started: its callback runs from the loop, never
 * from inside the httpc call that tried to start it. */
static void httpc_fail_later(httpc_transfer *x, const char *msg) {
    httpc_host_release(x);
    httpc_transfer_fail(x, msg);
    x->state = HTTPC_FAILING;
    httpc_list_push(&httpc.failing, x);
    event_active(httpc.deliver, EV_TIMEOUT, 0);
}

static void httpc_deliver_failed(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what, (void)arg;
    while (httpc.failing) {
        httpc_transfer *x = httpc.failing;
        httpc_list_unlink(&httpc.failing, x);
        x->state = HTTPC_FINISHED;
        x->fn(x, x->ud);
    }
}

/* Hands free slots to queued requests: the oldest of each host, and hosts waiting on
 * the overall limit in turn (the one served goes to the back of the line). */
static void httpc_pump(void) {
    while (httpc.queued && httpc.active < HTTPC_MAX_TRANSFERS) {
        httpc_host *h = httpc.hosts;
        while (h && !(h->qhead && httpc_host_has_slot(h))) h = h->next;
        if (!h) return;
        httpc_transfer *x = h->qhead;
        httpc_queue_unlink(x);
        httpc_host_unlink(h);
        h->prev = httpc.hosts_tail;
        if (httpc.hosts_tail) httpc.hosts_tail->next = h;
        else httpc.hosts = h;
        httpc.hosts_tail = h;
        char err[512];
        if (httpc_activate(x, err, sizeof err) != 0) httpc_fail_later(x, err);
    }
}

static void httpc_on_queue_timeout(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    httpc_transfer *x = arg;
    char msg[512];
    snprintf(msg, sizeof msg,
             "queued too long: waited %.1f s for a free connection to %s (at most %d at once "
             "per host, %d in all)",
             loop_now() - x->queued_at, x->hostport, HTTPC_MAX_HOST_TRANSFERS,
             HTTPC_MAX_TRANSFERS);
    httpc_queue_unlink(x);
    httpc_host_release(x);
    httpc_transfer_fail(x, msg);
    x->fn(x, x->ud);
}

/* Puts x at the back of its host's FIFO with its queue deadline armed. 0 / -1. */
static int httpc_enqueue(httpc_transfer *x) {
    x->queue_timer = evtimer_new(loop_base(), httpc_on_queue_timeout, x);
    double t = x->queue_timeout;
    struct timeval tv = {(time_t)t, (suseconds_t)((t - (double)(time_t)t) * 1e6)};
    if (!x->queue_timer || evtimer_add(x->queue_timer, &tv) != 0) {
        if (x->queue_timer) event_free(x->queue_timer);
        x->queue_timer = NULL;
        return -1;
    }
    httpc_host *h = x->host;
    x->state = HTTPC_QUEUED;
    x->queued_at = loop_now();
    x->prev = h->qtail;
    x->next = NULL;
    if (h->qtail) h->qtail->next = x;
    else h->qhead = x;
    h->qtail = x;
    httpc.queued++;
    return 0;
}

httpc_transfer *httpc_start(const httpc_request *req, httpc_done_fn fn, void *ud, char *err,
                            size_t errlen) {
    httpc_transfer *x = NULL;
    if (httpc_init(err, errlen) != 0) return NULL;
    if (!req->url || !fn) {
        snprintf(err, errlen, "a URL and a completion callback are required");
        return NULL;
    }
    const char *method = req->method && *req->method ? req->method : "GET";
    if (!httpc_is_token(method)) {
        snprintf(err, errlen, "invalid method '%s'", method);
        return NULL;
    }
    snprintf(err, errlen, "out of memory starting the request"); /* unless said otherwise */
    x = calloc(1, sizeof *x);
    if (!x) goto fail;
    httpc.live++; /* balanced by httpc_transfer_free */
    x->fn = fn;
    x->ud = ud;
    x->state = HTTPC_FINISHED; /* until queued or running: nothing to stop */
    x->timeout = req->timeout > 0 ? req->timeout : 0;
    x->queue_timeout = req->queue_timeout > 0 ? req->queue_timeout : HTTPC_DEFAULT_QUEUE_TIMEOUT;
    x->max_body = req->max_body ? req->max_body : HTTPC_DEFAULT_MAX_BODY;
    x->max_redirects = req->max_redirects > 0 ? req->max_redirects : 0;
    x->url = strdup(req->url);
    x->method = strdup(method);
    if (!x->url || !x->method) goto fail;
    if (req->body) {
        x->body = malloc(req->body_len ? req->body_len : 1);
        if (!x->body) goto fail;
        memcpy(x->body, req->body, req->body_len);
        x->body_len = req->body_len;
    }
    if (httpc_parse_url(x, err, errlen) != 0) goto fail;
    if (httpc_build_headers(x, req, err, errlen) != 0) goto fail;
    x->host = httpc_host_get(x->hostport);
    if (!x->host) goto fail;
    x->host->refs++;
    /* Behind older requests of the same host, or at a limit: wait in the FIFO. */
    if (!x->host->qhead && httpc_host_has_slot(x->host)) {
        if (httpc_activate(x, err, errlen) != 0) goto fail;
    } else if (httpc_enqueue(x) != 0) {
        goto fail;
    }
    err[0] = '\0';
    return x;
fail:
    httpc_transfer_free(x);
    return NULL;
}

const httpc_result *httpc_transfer_result(const httpc_transfer *x) {
    return x && x->state == HTTPC_FINISHED ? &x->result : NULL;
}

void httpc_transfer_free(httpc_transfer *x) {
    if (!x) return;
    int freed_slot = x->state == HTTPC_RUNNING;
    if (x->state == HTTPC_QUEUED) httpc_queue_unlink(x);
    if (x->state == HTTPC_FAILING) httpc_list_unlink(&httpc.failing, x);
    httpc_transfer_detach(x);
    httpc_host_release(x);
    httpc_headers_clear(x);
    free(x->headers);
    free(x->resp_body);
    free(x->url);
    free(x->method);
    free(x->hostname);
    free(x->error);
    free(x);
    httpc.live--;
    if (freed_slot) httpc_pump();
}

size_t httpc_live_transfers(void) { return httpc.live; }
size_t httpc_queued_transfers(void) { return httpc.queued; }
size_t httpc_active_transfers(void) { return httpc.active; }

void httpc_shutdown(void) {
    /* Transfers stay owned by their callers: detach them so a later free is safe. */
    while (httpc.running) {
        httpc_transfer *x = httpc.running;
        httpc_transfer_detach(x);
        x->state = HTTPC_FINISHED;
        x->fn = NULL;
    }
    /* Only queued transfers hold hosts now; releasing a host's last one frees it. */
    while (httpc.hosts && httpc.hosts->qhead) {
        httpc_transfer *x = httpc.hosts->qhead;
        httpc_queue_unlink(x);
        httpc_host_release(x);
        x->state = HTTPC_FINISHED;
        x->fn = NULL;
    }
    while (httpc.failing) {
        httpc_transfer *x = httpc.failing;
        httpc_list_unlink(&httpc.failing, x);
        x->state = HTTPC_FINISHED;
        x->fn = NULL;
    }
    while (httpc.npool) curl_easy_cleanup(httpc.pool[--httpc.npool]);
    if (httpc.multi) curl_multi_cleanup(httpc.multi);
    httpc.multi = NULL;
    while (httpc.socks) httpc_sock_free(httpc.socks);
    if (httpc.timer) event_free(httpc.timer);
    httpc.timer = NULL;
    if (httpc.deliver) event_free(httpc.deliver);
    httpc.deliver = NULL;
    free(httpc.ca_bundle);
    httpc.ca_bundle = NULL;
    if (httpc.curl_ready) curl_global_cleanup();
    httpc.curl_ready = 0;
}
