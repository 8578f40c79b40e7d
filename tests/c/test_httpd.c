/* httpd: the evhttp server, driven by the real loop, with httpc and raw sockets as
 * clients on 127.0.0.1. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fox/httpc.h"
#include "fox/httpd.h"
#include "fox/loop.h"
#include "harness.h"
#include "loop_helpers.h"

typedef struct recorder recorder;

static void setup_loop(void) {
    char err[256];
    if (loop_init(err, sizeof err) != 0) {
        fprintf(stderr, "loop_init: %s\n", err);
        exit(2);
    }
}

/* ---- a server that records requests ------------------------------------------- */

struct recorder {
    int calls;
    int reply_now;            /* reply from the callback */
    httpd_request *held;      /* last request kept for a later reply */
    char method[16], path[256], query[256], body[4096], remote[64], header_x[128];
    int remote_port;
};

static void on_request(httpd_request *r, void *ud) {
    recorder *rec = ud;
    rec->calls++;
    snprintf(rec->method, sizeof rec->method, "%s", httpd_request_method(r));
    snprintf(rec->path, sizeof rec->path, "%s", httpd_request_path(r, NULL));
    snprintf(rec->query, sizeof rec->query, "%s", httpd_request_query(r));
    size_t len;
    const char *b = httpd_request_body(r, &len);
    snprintf(rec->body, sizeof rec->body, "%.*s", (int)len, b);
    snprintf(rec->remote, sizeof rec->remote, "%s", httpd_request_remote_addr(r));
    rec->remote_port = httpd_request_remote_port(r);
    rec->header_x[0] = '\0';
    for (size_t i = 0; i < httpd_request_header_count(r); i++) {
        const char *n, *v;
        httpd_request_header(r, i, &n, &v);
        if (strcasecmp(n, "X-Test") == 0) snprintf(rec->header_x, sizeof rec->header_x, "%s", v);
    }
    if (rec->reply_now) {
        char err[128];
        httpd_request_add_header(r, "X-Reply", "yes", err, sizeof err);
        httpd_request_reply(r, 201, "made", 4);
    } else {
        rec->held = r;
    }
}

/* Runs the loop until the recorder holds a request (or 5 s pass). */
static int run_until_held(const recorder *rec) {
    double end = loop_now() + 5;
    while (!rec->held && loop_now() < end) run_for(0.01);
    return rec->held != NULL;
}

static httpd_server *start_server(recorder *rec, size_t max_body, double timeout) {
    httpd_opts o = {0};
    o.host = "127.0.0.1";
    o.max_body = max_body;
    o.timeout = timeout;
    char err[256];
    httpd_server *s = httpd_listen(&o, on_request, rec, err, sizeof err);
    if (!s) fprintf(stderr, "httpd_listen: %s\n", err);
    return s;
}

/* ---- an httpc client ----------------------------------------------------------- */

typedef struct fetch {
    int done;
    int ok;
    long status;
    char body[4096];
    char error[512];
    char reply_header[64];
} fetch;

static void on_fetched(httpc_transfer *x, void *ud) {
    fetch *f = ud;
    const httpc_result *r = httpc_transfer_result(x);
    f->ok = r->ok;
    f->status = r->status;
    if (r->ok) {
        snprintf(f->body, sizeof f->body, "%.*s", (int)r->body_len, r->body ? r->body : "");
        for (size_t i = 0; i < r->nheaders; i++)
            if (strcasecmp(r->headers[i].name, "X-Reply") == 0)
                snprintf(f->reply_header, sizeof f->reply_header, "%s", r->headers[i].value);
    } else {
        snprintf(f->error, sizeof f->error, "%s", r->error);
    }
    httpc_transfer_free(x);
    f->done = 1;
}

static int start_fetch(fetch *f, const char *method, int port, const char *target,
                       const char *body, size_t body_len) {
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, target);
    const char *headers[] = {"X-Test", "hello"};
    httpc_request req = {0};
    req.method = method;
    req.url = url;
    req.headers = headers;
    req.nheaders = 1;
    req.body = body;
    req.body_len = body_len;
    req.timeout = 5;
    memset(f, 0, sizeof *f);
    char err[256];
    httpc_transfer *x = httpc_start(&req, on_fetched, f, err, sizeof err);
    if (!x) fprintf(stderr, "httpc_start: %s\n", err);
    return x ? 0 : -1;
}

/* ---- raw sockets ----------------------------------------------------------------- */

static int raw_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

typedef struct raw_watch {
    int fd;
    int closed;               /* the server closed it (read returned 0 or an error) */
    char got[4096];
    size_t len;
} raw_watch;

static void on_raw_readable(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    raw_watch *w = arg;
    for (;;) {
        char buf[1024];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
            size_t room = sizeof w->got - 1 - w->len;
            size_t k = (size_t)n < room ? (size_t)n : room;
            memcpy(w->got + w->len, buf, k);
            w->len += k;
            w->got[w->len] = '\0';
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) w->closed = 1;
        return;
    }
}

/* ---- tests --------------------------------------------------------------------- */

TEST(round_trip_with_immediate_reply) {
    recorder rec = {0};
    rec.reply_now = 1;
    httpd_server *s = start_server(&rec, 0, 5);
    CHECK(s != NULL);
    if (!s) return;
    CHECK(httpd_server_port(s) > 0);
    CHECK_EQ_STR(httpd_server_host(s), "127.0.0.1");
    fetch f;
    CHECK_EQ_INT(start_fetch(&f, "POST", httpd_server_port(s), "/a%20b/c?x=1&y=%5B2%5D", "payload", 7), 0);
    CHECK(run_until(&f.done, 5));
    CHECK(f.ok);
    CHECK_EQ_INT(f.status, 201);
    CHECK_EQ_STR(f.body, "made");
    CHECK_EQ_STR(f.reply_header, "yes");
    CHECK_EQ_INT(rec.calls, 1);
    CHECK_EQ_STR(rec.method, "POST");
    CHECK_EQ_STR(rec.path, "/a b/c");
    CHECK_EQ_STR(rec.query, "x=1&y=%5B2%5D");
    CHECK_EQ_STR(rec.body, "payload");
    CHECK_EQ_STR(rec.header_x, "hello");
    CHECK_EQ_STR(rec.remote, "127.0.0.1");
    httpd_close(s);
    run_for(0.05);
    CHECK_EQ_INT(httpd_live_requests(), 0);
}

TEST(reply_later_from_another_callback) {
    recorder rec = {0};
    httpd_server *s = start_server(&rec, 0, 5);
    fetch f;
    start_fetch(&f, "GET", httpd_server_port(s), "/later", NULL, 0);
    run_for(0.1);
    CHECK(!f.done);
    CHECK(rec.held != NULL);
    CHECK_EQ_INT(httpd_live_requests(), 1);
    if (rec.held) httpd_request_reply(rec.held, 202, "later", 5);
    CHECK(run_until(&f.done, 5));
    CHECK_EQ_INT(f.status, 202);
    CHECK_EQ_STR(f.body, "later");
    httpd_close(s);
    run_for(0.05);
    CHECK_EQ_INT(httpd_live_requests(), 0);
}

TEST(keep_alive_reuses_the_connection) {
    recorder rec = {0};
    rec.reply_now = 1;
    httpd_server *s = start_server(&rec, 0, 5);
    fetch f;
    start_fetch(&f, "GET", httpd_server_port(s), "/1", NULL, 0);
    run_until(&f.done, 5);
    int first_port = rec.remote_port;
    start_fetch(&f, "GET", httpd_server_port(s), "/2", NULL, 0);
    run_until(&f.done, 5);
    CHECK_EQ_INT(rec.calls, 2);
    CHECK_EQ_INT(rec.remote_port, first_port);
    httpd_close(s);
    run_for(0.05);
}

TEST(body_over_max_body_gets_413_without_calling_the_handler) {
    recorder rec = {0};
    rec.reply_now = 1;
    httpd_server *s = start_server(&rec, 100, 5);
    char big[1000];
    memset(big, 'b', sizeof big);
    fetch f;
    start_fetch(&f, "POST", httpd_server_port(s), "/", big, sizeof big);
    CHECK(run_until(&f.done, 5));
    CHECK(f.ok);
    CHECK_EQ_INT(f.status, 413);
    CHECK_EQ_INT(rec.calls, 0);
    start_fetch(&f, "POST", httpd_server_port(s), "/", big, 100);
    CHECK(run_until(&f.done, 5));
    CHECK_EQ_INT(f.status, 201);
    CHECK_EQ_INT(rec.calls, 1);
    httpd_close(s);
    run_for(0.05);
}

TEST(headers_over_max_header_are_refused) {
    recorder rec = {0};
    rec.reply_now = 1;
    httpd_server *s = start_server(&rec, 0, 5); /* default 16 KiB */
    int fd = raw_connect(httpd_server_port(s));
    CHECK(fd >= 0);
    char req[20000];
    int n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(req + n, 'h', 17000);
    n += 17000;
    n += snprintf(req + n, sizeof req - (size_t)n, "\r\n\r\n");
    raw_watch w = {fd, 0, {0}, 0};
    struct event *ev = event_new(loop_base(), fd, EV_READ | EV_PERSIST, on_raw_readable, &w);
    event_add(ev, NULL);
    CHECK(write(fd, req, (size_t)n) > 0);
    CHECK(run_until(&w.closed, 5));
    CHECK(strncmp(w.got, "HTTP/1.1 4", 10) == 0);
    CHECK_EQ_INT(rec.calls, 0);
    event_free(ev);
    close(fd);
    httpd_close(s);
    run_for(0.05);
}

TEST(garbage_request_line_gets_400) {
    recorder rec = {0};
    rec.reply_now = 1;
    httpd_server *s = start_server(&rec, 0, 5);
    int fd = raw_connect(httpd_server_port(s));
    raw_watch w = {fd, 0, {0}, 0};
    struct event *ev = event_new(loop_base(), fd, EV_READ | EV_PERSIST, on_raw_readable, &w);
    event_add(ev, NULL);
    const char *junk = "THIS IS NOT HTTP AT ALL\r\n\r\n";
    CHECK(write(fd, junk, strlen(junk)) > 0);
    CHECK(run_until(&w.closed, 5));
    CHECK(strncmp(w.got, "HTTP/1.1 400", 12) == 0 || w.len == 0);
    CHECK_EQ_INT(rec.calls, 0);
    event_free(ev);
    close(fd);
    httpd_close(s);
    run_for(0.05);
}

TEST(half_a_request_does_not_block_others_and_is_dropped_at_the_timeout) {
    recorder rec = {0};
    rec.reply_now = 1;
    httpd_server *s = start_server(&rec, 0, 0.3);
    int fd = raw_connect(httpd_server_port(s));
    CHECK(fd >= 0);
    const char *half = "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Le";
    CHECK(write(fd, half, strlen(half)) > 0);
    raw_watch w = {fd, 0, {0}, 0};
    struct event *ev = event_new(loop_base(), fd, EV_READ | EV_PERSIST, on_raw_readable, &w);
    event_add(ev, NULL);
    double t0 = loop_now();
    for (int i = 0; i < 3; i++) {
        fetch f;
        start_fetch(&f, "GET", httpd_server_port(s), "/fast", NULL, 0);
        CHECK(run_until(&f.done, 5));
        CHECK_EQ_INT(f.status, 201);
    }
    CHECK(loop_now() - t0 < 0.25);
    CHECK(!w.closed);
    CHECK(run_until(&w.closed, 3));
    double dt = loop_now() - t0;
    CHECK(dt >= 0.25 && dt < 1.5);
    CHECK_EQ_INT(rec.calls, 3);
    event_free(ev);
    close(fd);
    httpd_close(s);
    run_for(0.05);
}

TEST(replying_after_the_client_left_is_safe) {
    recorder rec = {0};
    httpd_server *s = start_server(&rec, 0, 5);
    int fd = raw_connect(httpd_server_port(s));
    const char *req = "GET /gone HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK(write(fd, req, strlen(req)) > 0);
    CHECK(run_until_held(&rec));
    if (!rec.held) return;
    struct linger lg = {1, 0}; /* reset the connection when closing */
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    run_for(0.05);
    char bigbody[65536];
    memset(bigbody, 'z', sizeof bigbody);
    httpd_request_reply(rec.held, 200, bigbody, sizeof bigbody);
    run_for(0.2);
    CHECK_EQ_INT(httpd_live_requests(), 0);
    /* The server is still fine. */
    rec.reply_now = 1;
    fetch f;
    start_fetch(&f, "GET", httpd_server_port(s), "/after", NULL, 0);
    CHECK(run_until(&f.done, 5));
    CHECK_EQ_INT(f.status, 201);
    httpd_close(s);
    run_for(0.05);
}

TEST(close_stops_accepting_but_answers_requests_in_flight) {
    recorder rec = {0};
    httpd_server *s = start_server(&rec, 0, 5);
    int port = httpd_server_port(s);
    fetch inflight;
    start_fetch(&inflight, "GET", port, "/inflight", NULL, 0);
    CHECK(run_until_held(&rec));
    if (!rec.held) return;
    httpd_close(s);
    fetch late;
    start_fetch(&late, "GET", port, "/late", NULL, 0);
    CHECK(run_until(&late.done, 5));
    CHECK(!late.ok);
    CHECK(strstr(late.error, "connection refused") != NULL);
    CHECK(!inflight.done);
    httpd_request_reply(rec.held, 200, "finished", 8);
    CHECK(run_until(&inflight.done, 5));
    CHECK(inflight.ok);
    CHECK_EQ_STR(inflight.body, "finished");
    run_for(0.05);
    CHECK_EQ_INT(httpd_live_requests(), 0);
}

TEST(port_in_use_is_reported) {
    recorder rec = {0};
    httpd_server *s = start_server(&rec, 0, 5);
    httpd_opts o = {0};
    o.port = httpd_server_port(s);
    char err[256] = "";
    httpd_server *again = httpd_listen(&o, on_request, &rec, err, sizeof err);
    CHECK(again == NULL);
    char want[64];
    snprintf(want, sizeof want, "could not listen on 127.0.0.1:%d: ", o.port);
    CHECK(strncmp(err, want, strlen(want)) == 0);
    CHECK(strstr(err, "in use") != NULL);
    httpd_close(s);
    run_for(0.05);
}

TEST(invalid_response_headers_are_rejected) {
    recorder rec = {0};
    httpd_server *s = start_server(&rec, 0, 5);
    fetch f;
    start_fetch(&f, "GET", httpd_server_port(s), "/h", NULL, 0);
    CHECK(run_until_held(&rec));
    if (!rec.held) return;
    char err[128];
    CHECK_EQ_INT(httpd_request_add_header(rec.held, "X-Bad", "a\r\nInjected: 1", err, sizeof err), -1);
    CHECK(strstr(err, "CR or LF") != NULL);
    CHECK_EQ_INT(httpd_request_add_header(rec.held, "Bad Name", "v", err, sizeof err), -1);
    CHECK_EQ_INT(httpd_request_add_header(rec.held, "Content-Length", "999", err, sizeof err), 0);
    CHECK_EQ_INT(httpd_request_add_header(rec.held, "X-Reply", "fine", err, sizeof err), 0);
    httpd_request_reply(rec.held, 200, "four", 4);
    CHECK(run_until(&f.done, 5));
    CHECK_EQ_STR(f.body, "four"); /* our Content-Length, not the handler's */
    CHECK_EQ_STR(f.reply_header, "fine");
    httpd_close(s);
    run_for(0.05);
}

TEST(shutdown_frees_servers_while_a_request_is_held) {
    recorder rec = {0};
    httpd_server *s = start_server(&rec, 0, 5);
    fetch f;
    start_fetch(&f, "GET", httpd_server_port(s), "/held", NULL, 0);
    CHECK(run_until_held(&rec));
    if (!rec.held) return;
    httpd_shutdown();
    CHECK(run_until(&f.done, 5));
    CHECK(!f.ok);
    CHECK_EQ_INT(httpd_live_requests(), 1);
    httpd_request_reply(rec.held, 200, "nobody", 6); /* only frees it */
    CHECK_EQ_INT(httpd_live_requests(), 0);
}

int main(void) {
    setup_loop();
    int rc = RUN_TESTS();
    httpd_shutdown();
    httpc_shutdown();
    loop_free();
    return rc;
}
