/* httpc: percent-encoding, and the client against a canned server on 127.0.0.1 that
 * answers every request with fixed bytes (so we can send what evhttp never would:
 * chunked bodies, folded headers, 100 Continue, huge headers, nothing at all). */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fox/httpc.h"
#include "fox/loop.h"
#include "harness.h"
#include "loop_helpers.h"

/* ---- the canned server ----------------------------------------------------------- */

#define CANNED_MAX_CONNS 16

typedef struct canned {
    struct evconnlistener *listener;
    int port;
    const char *response;     /* NULL: never answer */
    size_t response_len;
    int answered;
    char request[8192];       /* the last request's bytes (headers and what followed) */
    size_t request_len;
    struct bufferevent *conns[CANNED_MAX_CONNS];
    int nconns;
} canned;

static void canned_on_read(struct bufferevent *bev, void *arg) {
    canned *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n = evbuffer_get_length(in);
    if (n > sizeof c->request - 1 - c->request_len) n = sizeof c->request - 1 - c->request_len;
    evbuffer_remove(in, c->request + c->request_len, n);
    c->request_len += n;
    c->request[c->request_len] = '\0';
    evbuffer_drain(in, evbuffer_get_length(in));
    if (!c->response || c->answered || !strstr(c->request, "\r\n\r\n")) return;
    c->answered = 1; /* one answer per test, then the connection is closed */
    if (c->response_len) bufferevent_write(bev, c->response, c->response_len);
    else shutdown(bufferevent_getfd(bev), SHUT_WR);
}

static void canned_on_write(struct bufferevent *bev, void *arg) {
    canned *c = arg;
    if (c->answered) shutdown(bufferevent_getfd(bev), SHUT_WR);
}

/* A listener on 127.0.0.1 at a free port (stored in *port), or NULL. */
static struct evconnlistener *listen_loopback(evconnlistener_cb cb, void *arg, int backlog, int *port) {
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct evconnlistener *l = evconnlistener_new_bind(loop_base(), cb, arg, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                                       backlog, (struct sockaddr *)&sa, sizeof sa);
    if (!l) return NULL;
    struct sockaddr_in bound;
    socklen_t bl = sizeof bound;
    getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&bound, &bl);
    *port = ntohs(bound.sin_port);
    return l;
}

static void canned_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                             int salen, void *arg) {
    (void)l, (void)sa, (void)salen;
    canned *c = arg;
    if (c->nconns == CANNED_MAX_CONNS) {
        close(fd);
        return;
    }
    struct bufferevent *bev = bufferevent_socket_new(loop_base(), fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, canned_on_read, canned_on_write, NULL, c);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    c->conns[c->nconns++] = bev;
}

static int canned_start(canned *c, const char *response, size_t len) {
    memset(c, 0, sizeof *c);
    c->response = response;
    c->response_len = len;
    c->listener = listen_loopback(canned_on_accept, c, 16, &c->port);
    return c->listener ? 0 : -1;
}

static void canned_stop(canned *c) {
    for (int i = 0; i < c->nconns; i++) bufferevent_free(c->conns[i]);
    if (c->listener) evconnlistener_free(c->listener);
    c->listener = NULL;
    c->nconns = 0;
}

/* ---- a client call ----------------------------------------------------------------- */

typedef struct call {
    int done;
    int calls;
    int ok;
    long status;
    char body[8192];
    size_t body_len;
    char error[512];
    char headers[4096];       /* "name=value;" in order */
    double started, finished;
} call;

static void on_done(httpc_transfer *x, void *ud) {
    call *c = ud;
    const httpc_result *r = httpc_transfer_result(x);
    c->calls++;
    c->ok = r->ok;
    c->status = r->status;
    c->finished = loop_now();
    if (r->ok) {
        c->body_len = r->body_len < sizeof c->body - 1 ? r->body_len : sizeof c->body - 1;
        if (c->body_len) memcpy(c->body, r->body, c->body_len);
        c->body[c->body_len] = '\0';
        size_t used = 0;
        for (size_t i = 0; i < r->nheaders && used < sizeof c->headers; i++)
            used += (size_t)snprintf(c->headers + used, sizeof c->headers - used, "%s=%s;",
                                     r->headers[i].name, r->headers[i].value);
    } else {
        snprintf(c->error, sizeof c->error, "%s", r->error);
    }
    httpc_transfer_free(x);
    c->done = 1;
}

static httpc_transfer *start(call *c, const char *method, int port, double timeout,
                             size_t max_body, const char *const *headers, size_t nheaders,
                             const char *body) {
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/path?q=1", port);
    httpc_request req = {0};
    req.method = method;
    req.url = url;
    req.timeout = timeout;
    req.max_body = max_body;
    req.headers = headers;
    req.nheaders = nheaders;
    req.body = body;
    req.body_len = body ? strlen(body) : 0;
    memset(c, 0, sizeof *c);
    c->started = loop_now();
    char err[256];
    httpc_transfer *x = httpc_start(&req, on_done, c, err, sizeof err);
    if (!x) fprintf(stderr, "httpc_start: %s\n", err);
    return x;
}

/* Runs one request against a canned response and waits for it. */
static void fetch_canned(call *c, canned *srv, const char *response, size_t max_body) {
    CHECK_EQ_INT(canned_start(srv, response, strlen(response)), 0);
    start(c, "GET", srv->port, 5, max_body, NULL, 0, NULL);
    CHECK(run_until(&c->done, 5));
}

/* ---- the holding server: answers only when told, one request per connection ------ */

#define HELD_MAX 320

typedef struct held held;
typedef struct held_conn {
    held *h;
    struct bufferevent *bev;
    char head[1024];
    size_t len;
    int arrived;              /* the request is complete; index in h->arrivals */
} held_conn;

struct held {
    struct evconnlistener *listener;
    int port;
    int auto_answer;          /* answer new requests at once */
    held_conn *conns[HELD_MAX];
    int nconns;
    int arrivals[HELD_MAX];   /* the request number (the URL path /N) in arrival order */
    held_conn *arrived[HELD_MAX];
    int narrived;
};

static void held_answer_conn(held_conn *k) {
    char resp[128];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
    bufferevent_write(k->bev, resp, (size_t)n);
}

static void held_on_read(struct bufferevent *bev, void *arg) {
    held_conn *k = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n = evbuffer_get_length(in);
    if (n > sizeof k->head - 1 - k->len) n = sizeof k->head - 1 - k->len;
    evbuffer_remove(in, k->head + k->len, n);
    k->len += n;
    k->head[k->len] = '\0';
    evbuffer_drain(in, evbuffer_get_length(in));
    if (k->arrived || !strstr(k->head, "\r\n\r\n")) return;
    held *h = k->h;
    k->arrived = 1;
    const char *slash = strchr(k->head, '/');
    h->arrivals[h->narrived] = slash ? atoi(slash + 1) : -1;
    h->arrived[h->narrived++] = k;
    if (h->auto_answer) held_answer_conn(k);
}

static void held_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                           int salen, void *arg) {
    (void)l, (void)sa, (void)salen;
    held *h = arg;
    held_conn *k = calloc(1, sizeof *k);
    if (h->nconns == HELD_MAX || !k) {
        free(k);
        close(fd);
        return;
    }
    k->h = h;
    k->bev = bufferevent_socket_new(loop_base(), fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(k->bev, held_on_read, NULL, NULL, k);
    bufferevent_enable(k->bev, EV_READ | EV_WRITE);
    h->conns[h->nconns++] = k;
}

static int held_start(held *h) {
    memset(h, 0, sizeof *h);
    h->listener = listen_loopback(held_on_accept, h, 512, &h->port);
    return h->listener ? 0 : -1;
}

/* Answers the i-th request that arrived. */
static void held_answer(held *h, int i) { held_answer_conn(h->arrived[i]); }

static void held_stop(held *h) {
    for (int i = 0; i < h->nconns; i++) {
        bufferevent_free(h->conns[i]->bev);
        free(h->conns[i]);
    }
    if (h->listener) evconnlistener_free(h->listener);
    h->listener = NULL;
    h->nconns = 0;
}

/* Runs the loop until h has seen n requests (or seconds pass); returns whether it did. */
static int held_wait_arrivals(held *h, int n, double seconds) {
    double end = loop_now() + seconds;
    while (h->narrived < n && loop_now() < end) run_for(0.02);
    return h->narrived >= n;
}

/* Starts request number n (path /n) to h; queue_timeout 0 = the default. */
static httpc_transfer *start_held(call *c, held *h, int n, double timeout, double queue_timeout) {
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/%d", h->port, n);
    httpc_request req = {0};
    req.url = url;
    req.timeout = timeout;
    req.queue_timeout = queue_timeout;
    memset(c, 0, sizeof *c);
    c->started = loop_now();
    char err[256];
    httpc_transfer *x = httpc_start(&req, on_done, c, err, sizeof err);
    if (!x) fprintf(stderr, "httpc_start: %s\n", err);
    return x;
}

/* ---- percent-encoding ---------------------------------------------------------- */

static const char *enc(const char *s) {
    static char out[1024];
    size_t n = httpc_percent_encode(s, strlen(s), out);
    out[n] = '\0';
    return out;
}

static const char *dec(const char *s, int plus) {
    static char out[1024];
    size_t n = httpc_percent_decode(s, strlen(s), out, plus);
    out[n] = '\0';
    return out;
}

TEST(encode_keeps_only_unreserved) {
    CHECK_EQ_STR(enc(""), "");
    CHECK_EQ_STR(enc("AZaz09-._~"), "AZaz09-._~");
    CHECK_EQ_STR(enc("a b&c=d/e?f#g"), "a%20b%26c%3Dd%2Fe%3Ff%23g");
    CHECK_EQ_STR(enc("status_category[one_of]"), "status_category%5Bone_of%5D");
    CHECK_EQ_STR(enc("+%\x01\x7f"), "%2B%25%01%7F");
    CHECK_EQ_STR(enc("\xc3\xa9"), "%C3%A9");
}

TEST(encode_handles_embedded_nul) {
    char out[16];
    size_t n = httpc_percent_encode("a\0b", 3, out);
    CHECK_EQ_INT(n, 5);
    CHECK(memcmp(out, "a%00b", 5) == 0);
}

TEST(decode_reverses_encode_and_keeps_malformed_escapes) {
    CHECK_EQ_STR(dec("a%20b%2Fc%5B0%5D", 0), "a b/c[0]");
    CHECK_EQ_STR(dec("%c3%A9", 0), "\xc3\xa9");
    CHECK_EQ_STR(dec("100%", 0), "100%");
    CHECK_EQ_STR(dec("%2", 0), "%2");
    CHECK_EQ_STR(dec("%zz%4", 0), "%zz%4");
    CHECK_EQ_STR(dec("a+b", 0), "a+b");
    CHECK_EQ_STR(dec("a+b%2B", 1), "a b+");
    const char *all = "a b&c=d/e?f#g[0]\xc3\xa9~";
    CHECK_EQ_STR(dec(enc(all), 0), all);
}

/* ---- client -------------------------------------------------------------------------- */

TEST(get_returns_status_headers_and_body) {
    canned srv;
    call c;
    fetch_canned(&c, &srv,
                 "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Dup: 1\r\nx-dup: 2\r\n"
                 "X-Space:   padded   \r\n\r\nhello", 0);
    CHECK(c.ok);
    CHECK_EQ_INT(c.status, 200);
    CHECK_EQ_STR(c.body, "hello");
    CHECK_EQ_STR(c.headers, "Content-Length=5;X-Dup=1;x-dup=2;X-Space=padded;");
    CHECK(strstr(srv.request, "GET /path?q=1 HTTP/1.1\r\n") == srv.request);
    CHECK(strstr(srv.request, "User-Agent: fox/") != NULL);
    canned_stop(&srv);
}

TEST(request_sends_method_body_and_headers) {
    canned srv;
    call c;
    CHECK_EQ_INT(canned_start(&srv, "HTTP/1.1 204 No Content\r\n\r\n", 27), 0);
    const char *h[] = {"Content-Type", "application/json", "X-Empty", "", "Authorization", "Bearer t"};
    start(&c, "PUT", srv.port, 5, 0, h, 3, "{\"a\":1}");
    CHECK(run_until(&c.done, 5));
    CHECK(c.ok);
    CHECK_EQ_INT(c.status, 204);
    CHECK_EQ_INT(c.body_len, 0);
    CHECK(strstr(srv.request, "PUT /path?q=1 HTTP/1.1\r\n") == srv.request);
    CHECK(strstr(srv.request, "\r\nContent-Length: 7\r\n") != NULL);
    CHECK(strstr(srv.request, "\r\nContent-Type: application/json\r\n") != NULL);
    CHECK(strstr(srv.request, "\r\nX-Empty:\r\n") != NULL || strstr(srv.request, "\r\nX-Empty: \r\n") != NULL);
    CHECK(strstr(srv.request, "\r\nAuthorization: Bearer t\r\n") != NULL);
    CHECK(strstr(srv.request, "Expect:") == NULL);
    CHECK(strstr(srv.request, "\r\n\r\n{\"a\":1}") != NULL);
    canned_stop(&srv);
}

TEST(folded_headers_and_100_continue) {
    canned srv;
    call c;
    fetch_canned(&c, &srv,
                 "HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\n"
                 "HTTP/1.1 200 OK\r\nX-Long: first\r\n  second\r\nContent-Length: 2\r\n\r\nok", 0);
    CHECK(c.ok);
    CHECK_EQ_INT(c.status, 200);
    CHECK_EQ_STR(c.headers, "X-Long=first second;Content-Length=2;");
    CHECK_EQ_STR(c.body, "ok");
    canned_stop(&srv);
}

TEST(chunked_body_over_max_body_fails_on_the_running_total) {
    static char resp[4096];
    int n = snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        n += snprintf(resp + n, sizeof resp - (size_t)n, "1f4\r\n");
        memset(resp + n, 'a' + i, 500);
        n += 500;
        n += snprintf(resp + n, sizeof resp - (size_t)n, "\r\n");
    }
    snprintf(resp + n, sizeof resp - (size_t)n, "0\r\n\r\n");
    canned srv;
    call c;
    fetch_canned(&c, &srv, resp, 1000);
    CHECK(!c.ok);
    CHECK_EQ_STR(c.error, "response body exceeds max_body (1000 bytes)");
    canned_stop(&srv);
    fetch_canned(&c, &srv, resp, 1500); /* exactly at the limit is fine */
    CHECK(c.ok);
    CHECK_EQ_INT(c.body_len, 1500);
    canned_stop(&srv);
}

TEST(announced_content_length_over_max_body_fails_at_once) {
    canned srv;
    call c;
    fetch_canned(&c, &srv, "HTTP/1.1 200 OK\r\nContent-Length: 5000000000\r\n\r\nabc", 1 << 20);
    CHECK(!c.ok);
    CHECK_EQ_STR(c.error, "response body exceeds max_body (1048576 bytes)");
    CHECK(c.finished - c.started < 1.0);
    canned_stop(&srv);
}

TEST(huge_response_headers_are_an_error) {
    size_t cap = HTTPC_MAX_HEADER_BYTES + 65536;
    char *resp = malloc(cap);
    size_t n = (size_t)snprintf(resp, cap, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; n + 1100 < cap - 64; i++) {
        n += (size_t)snprintf(resp + n, cap - n, "X-H%d: ", i);
        memset(resp + n, 'v', 1000);
        n += 1000;
        n += (size_t)snprintf(resp + n, cap - n, "\r\n");
    }
    snprintf(resp + n, cap - n, "Content-Length: 0\r\n\r\n");
    canned srv;
    call c;
    fetch_canned(&c, &srv, resp, 0);
    CHECK(!c.ok);
    CHECK(strstr(c.error, "response headers exceed") == c.error);
    canned_stop(&srv);
    free(resp);
}

TEST(timeout_names_the_limit) {
    canned srv;
    call c;
    CHECK_EQ_INT(canned_start(&srv, NULL, 0), 0);
    start(&c, "GET", srv.port, 0.3, 0, NULL, 0, NULL);
    CHECK(run_until(&c.done, 5));
    CHECK(!c.ok);
    CHECK_EQ_STR(c.error, "timed out after 0.3 s");
    double dt = c.finished - c.started;
    CHECK(dt >= 0.25 && dt < 1.0);
    canned_stop(&srv);
}

TEST(connection_refused_names_the_address) {
    canned srv;
    CHECK_EQ_INT(canned_start(&srv, NULL, 0), 0);
    int port = srv.port;
    canned_stop(&srv);
    call c;
    start(&c, "GET", port, 5, 0, NULL, 0, NULL);
    CHECK(run_until(&c.done, 5));
    CHECK(!c.ok);
    char want[64];
    snprintf(want, sizeof want, "connection refused (127.0.0.1:%d)", port);
    CHECK_EQ_STR(c.error, want);
}

TEST(closed_without_response) {
    canned srv;
    call c;
    fetch_canned(&c, &srv, "", 0);
    CHECK(!c.ok);
    CHECK(strstr(c.error, "closed the connection without a response") != NULL);
    canned_stop(&srv);
}

TEST(invalid_requests_are_refused_up_front) {
    char err[256];
    call c = {0};
    httpc_request req = {0};
    req.url = "not a url";
    CHECK(httpc_start(&req, on_done, &c, err, sizeof err) == NULL);
    CHECK(strstr(err, "invalid URL") == err);
    req.url = "ftp://127.0.0.1/";
    CHECK(httpc_start(&req, on_done, &c, err, sizeof err) == NULL);
    CHECK_EQ_STR(err, "unsupported URL scheme 'ftp' (use http or https)");
    req.url = "http://127.0.0.1:1/";
    const char *crlf[] = {"X-A", "v\r\nInjected: 1"};
    req.headers = crlf;
    req.nheaders = 1;
    CHECK(httpc_start(&req, on_done, &c, err, sizeof err) == NULL);
    CHECK_EQ_STR(err, "header 'X-A' contains CR or LF");
    const char *badname[] = {"X A", "v"};
    req.headers = badname;
    CHECK(httpc_start(&req, on_done, &c, err, sizeof err) == NULL);
    req.headers = NULL;
    req.nheaders = 0;
    req.method = "GE T";
    CHECK(httpc_start(&req, on_done, &c, err, sizeof err) == NULL);
    CHECK_EQ_STR(err, "invalid method 'GE T'");
    CHECK_EQ_INT(c.calls, 0);
    CHECK_EQ_INT(httpc_live_transfers(), 0);
}

TEST(freeing_a_running_transfer_cancels_it) {
    canned srv;
    call c;
    CHECK_EQ_INT(canned_start(&srv, NULL, 0), 0);
    httpc_transfer *x = start(&c, "GET", srv.port, 5, 0, NULL, 0, NULL);
    CHECK(x != NULL);
    run_for(0.1);
    CHECK_EQ_INT(httpc_live_transfers(), 1);
    CHECK(httpc_transfer_result(x) == NULL);
    httpc_transfer_free(x);
    CHECK_EQ_INT(httpc_live_transfers(), 0);
    run_for(0.2);
    CHECK_EQ_INT(c.calls, 0);
    canned_stop(&srv);
}

TEST(many_parallel_transfers_complete) {
    canned srvs[8];
    call calls[8];
    for (int i = 0; i < 8; i++) {
        CHECK_EQ_INT(canned_start(&srvs[i], "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", 39), 0);
        start(&calls[i], "GET", srvs[i].port, 5, 0, NULL, 0, NULL);
    }
    for (int i = 0; i < 8; i++) {
        CHECK(run_until(&calls[i].done, 5));
        CHECK(calls[i].ok);
        CHECK_EQ_STR(calls[i].body, "x");
    }
    for (int i = 0; i < 8; i++) canned_stop(&srvs[i]);
    CHECK_EQ_INT(httpc_live_transfers(), 0);
}

/* ---- the FIFO in front of libcurl --------------------------------------------- */

TEST(requests_beyond_the_host_limit_wait_in_fifo_order) {
    enum { N = HTTPC_MAX_HOST_TRANSFERS + 8 };
    static call calls[N];
    held h;
    CHECK_EQ_INT(held_start(&h), 0);
    for (int i = 0; i < N; i++) CHECK(start_held(&calls[i], &h, i, 10, 0) != NULL);
    CHECK_EQ_INT(httpc_active_transfers(), HTTPC_MAX_HOST_TRANSFERS);
    CHECK_EQ_INT(httpc_queued_transfers(), 8);
    CHECK(held_wait_arrivals(&h, HTTPC_MAX_HOST_TRANSFERS, 10));
    run_for(0.2);
    CHECK_EQ_INT(h.narrived, HTTPC_MAX_HOST_TRANSFERS); /* no more connections than the limit */
    int seen[N] = {0};
    for (int i = 0; i < h.narrived; i++)
        if (h.arrivals[i] >= 0 && h.arrivals[i] < N) seen[h.arrivals[i]]++;
    for (int i = 0; i < HTTPC_MAX_HOST_TRANSFERS; i++) CHECK_EQ_INT(seen[i], 1);
    /* Each answer frees one slot, which goes to the oldest queued request. */
    for (int k = 0; k < 8; k++) {
        held_answer(&h, k);
        CHECK(held_wait_arrivals(&h, HTTPC_MAX_HOST_TRANSFERS + k + 1, 10));
        CHECK_EQ_INT(h.arrivals[HTTPC_MAX_HOST_TRANSFERS + k], HTTPC_MAX_HOST_TRANSFERS + k);
    }
    CHECK_EQ_INT(httpc_queued_transfers(), 0);
    for (int k = 8; k < N; k++) held_answer(&h, k);
    for (int i = 0; i < N; i++) {
        CHECK(run_until(&calls[i].done, 10));
        CHECK(calls[i].ok);
        CHECK_EQ_STR(calls[i].body, "ok");
    }
    CHECK_EQ_INT(httpc_live_transfers(), 0);
    CHECK_EQ_INT(httpc_active_transfers(), 0);
    held_stop(&h);
}

TEST(timeout_counts_from_when_the_transfer_starts) {
    static call calls[HTTPC_MAX_HOST_TRANSFERS + 1];
    held h;
    CHECK_EQ_INT(held_start(&h), 0);
    for (int i = 0; i < HTTPC_MAX_HOST_TRANSFERS; i++) start_held(&calls[i], &h, i, 10, 0);
    call *late = &calls[HTTPC_MAX_HOST_TRANSFERS];
    start_held(late, &h, HTTPC_MAX_HOST_TRANSFERS, 0.3, 0);
    CHECK(held_wait_arrivals(&h, HTTPC_MAX_HOST_TRANSFERS, 10));
    run_for(0.8); /* queued for well over its 0.3 s timeout */
    CHECK(!late->done);
    CHECK_EQ_INT(httpc_queued_transfers(), 1);
    h.auto_answer = 1;
    held_answer(&h, 0);
    CHECK(run_until(&late->done, 10));
    CHECK(late->ok);
    CHECK_EQ_INT((int)late->status, 200);
    for (int i = 1; i < HTTPC_MAX_HOST_TRANSFERS; i++) held_answer(&h, i);
    for (int i = 0; i < HTTPC_MAX_HOST_TRANSFERS; i++) CHECK(run_until(&calls[i].done, 10));
    CHECK_EQ_INT(httpc_live_transfers(), 0);
    held_stop(&h);
}

TEST(waiting_too_long_in_the_queue_is_its_own_error) {
    static call calls[HTTPC_MAX_HOST_TRANSFERS + 1];
    held h;
    CHECK_EQ_INT(held_start(&h), 0);
    for (int i = 0; i < HTTPC_MAX_HOST_TRANSFERS; i++) start_held(&calls[i], &h, i, 10, 0);
    call *late = &calls[HTTPC_MAX_HOST_TRANSFERS];
    start_held(late, &h, HTTPC_MAX_HOST_TRANSFERS, 10, 0.2);
    CHECK(run_until(&late->done, 10));
    CHECK(!late->ok);
    char want[128];
    snprintf(want, sizeof want, "for a free connection to 127.0.0.1:%d (at most %d at once", h.port,
             HTTPC_MAX_HOST_TRANSFERS);
    CHECK(strstr(late->error, "queued too long: waited 0.") == late->error);
    CHECK(strstr(late->error, want) != NULL);
    CHECK(late->finished - late->started >= 0.15);
    CHECK_EQ_INT(httpc_queued_transfers(), 0);
    CHECK_EQ_INT(httpc_live_transfers(), HTTPC_MAX_HOST_TRANSFERS);
    for (int i = 0; i < HTTPC_MAX_HOST_TRANSFERS; i++) held_answer(&h, i);
    for (int i = 0; i < HTTPC_MAX_HOST_TRANSFERS; i++) CHECK(run_until(&calls[i].done, 10));
    CHECK_EQ_INT(h.narrived, HTTPC_MAX_HOST_TRANSFERS); /* the late one never went out */
    CHECK_EQ_INT(httpc_live_transfers(), 0);
    held_stop(&h);
}

TEST(freeing_a_queued_transfer_takes_it_out_of_the_fifo) {
    static call calls[HTTPC_MAX_HOST_TRANSFERS + 2];
    held h;
    CHECK_EQ_INT(held_start(&h), 0);
    for (int i = 0; i < HTTPC_MAX_HOST_TRANSFERS; i++) start_held(&calls[i], &h, i, 10, 0);
    httpc_transfer *cancelled =
        start_held(&calls[HTTPC_MAX_HOST_TRANSFERS], &h, HTTPC_MAX_HOST_TRANSFERS, 10, 0.3);
    call *kept = &calls[HTTPC_MAX_HOST_TRANSFERS + 1];
    start_held(kept, &h, HTTPC_MAX_HOST_TRANSFERS + 1, 10, 0);
    CHECK_EQ_INT(httpc_queued_transfers(), 2);
    httpc_transfer_free(cancelled);
    CHECK_EQ_INT(httpc_queued_transfers(), 1);
    CHECK(held_wait_arrivals(&h, HTTPC_MAX_HOST_TRANSFERS, 10));
    run_for(0.5); /* past the freed one's queue timeout: its timer went with it */
    held_answer(&h, 0);
    CHECK(held_wait_arrivals(&h, HTTPC_MAX_HOST_TRANSFERS + 1, 10));
    CHECK_EQ_INT(h.arrivals[HTTPC_MAX_HOST_TRANSFERS], HTTPC_MAX_HOST_TRANSFERS + 1);
    for (int i = 1; i <= HTTPC_MAX_HOST_TRANSFERS; i++) held_answer(&h, i);
    CHECK(run_until(&kept->done, 10));
    CHECK(kept->ok);
    for (int i = 0; i < HTTPC_MAX_HOST_TRANSFERS; i++) CHECK(run_until(&calls[i].done, 10));
    CHECK_EQ_INT(calls[HTTPC_MAX_HOST_TRANSFERS].calls, 0);
    CHECK_EQ_INT(httpc_live_transfers(), 0);
    held_stop(&h);
}

TEST(the_overall_limit_holds_across_hosts_and_every_host_gets_a_turn) {
    enum { HOSTS = HTTPC_MAX_TRANSFERS / HTTPC_MAX_HOST_TRANSFERS + 1, PER = HTTPC_MAX_HOST_TRANSFERS };
    static held hs[HOSTS];
    static call calls[HOSTS][PER];
    for (int k = 0; k < HOSTS; k++) CHECK_EQ_INT(held_start(&hs[k]), 0);
    for (int k = 0; k < HOSTS; k++)
        for (int i = 0; i < PER; i++) start_held(&calls[k][i], &hs[k], i, 20, 0);
    CHECK_EQ_INT(httpc_active_transfers(), HTTPC_MAX_TRANSFERS);
    CHECK_EQ_INT(httpc_queued_transfers(), HOSTS * PER - HTTPC_MAX_TRANSFERS);
    /* The last host got nothing; once others' requests finish it is served. */
    CHECK(held_wait_arrivals(&hs[0], PER, 10));
    for (int i = 0; i < PER; i++) held_answer(&hs[0], i);
    CHECK(held_wait_arrivals(&hs[HOSTS - 1], PER, 10));
    CHECK_EQ_INT(httpc_queued_transfers(), 0);
    CHECK(httpc_active_transfers() <= HTTPC_MAX_TRANSFERS);
    for (int k = 1; k < HOSTS; k++) {
        CHECK(held_wait_arrivals(&hs[k], PER, 10));
        for (int i = 0; i < PER; i++) held_answer(&hs[k], i);
    }
    for (int k = 0; k < HOSTS; k++)
        for (int i = 0; i < PER; i++) {
            CHECK(run_until(&calls[k][i].done, 20));
            CHECK(calls[k][i].ok);
        }
    CHECK_EQ_INT(httpc_live_transfers(), 0);
    for (int k = 0; k < HOSTS; k++) held_stop(&hs[k]);
}

int main(void) {
    char err[256];
    if (loop_init(err, sizeof err) != 0) {
        fprintf(stderr, "loop_init: %s\n", err);
        return 2;
    }
    int rc = RUN_TESTS();
    httpc_shutdown();
    loop_free();
    return rc;
}
