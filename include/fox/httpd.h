#ifndef FOX_HTTPD_H
#define FOX_HTTPD_H
/* HTTP/1.1 server on libevent's evhttp (on loop_base()). No Lua in here.
 *
 * Each complete request is handed to the server's callback as an httpd_request the
 * callback's owner keeps until it calls httpd_request_reply() (now or later, from any
 * loop callback). Everything in a request is copied out of libevent when it arrives,
 * so the accessors stay valid even if the client disconnects meanwhile; replying to a
 * request whose client is gone just frees it. */
#include <stddef.h>

#define HTTPD_DEFAULT_MAX_BODY ((size_t)1 << 20)
#define HTTPD_DEFAULT_MAX_HEADER ((size_t)16 << 10)
#define HTTPD_DEFAULT_TIMEOUT 30.0
#define HTTPD_DEFAULT_REQUEST_TIMEOUT 60.0
#define HTTPD_DEFAULT_MAX_CONNECTIONS 4096

typedef struct httpd_server httpd_server;
typedef struct httpd_request httpd_request;

typedef struct httpd_opts {
    const char *host;   /* address to bind; NULL = "127.0.0.1" */
    int port;           /* 0 = an ephemeral port (see httpd_server_port) */
    size_t max_body;    /* request body cap, bytes; larger -> 413. 0 = default 1 MiB */
    size_t max_header;  /* request line + headers cap, bytes; 0 = default 16 KiB */
    double timeout;     /* seconds a connection may stay silent while we read a request
                           or stall while we write a reply; 0 = default 30 s */
    double request_timeout; /* seconds a connection gets to deliver one whole request,
                           however it drips it (slow-loris); counted from the accept,
                           then from the end of each reply; 0 = default 60 s */
    size_t max_connections; /* open connections, this server; one more is closed at once
                           (0 = default: 4096, at most the open-files limit - 128) */
} httpd_opts;

/* Process-wide counters of the listeners, for /metrics. */
typedef struct httpd_stats {
    size_t connections_open;                 /* now */
    unsigned long long connections_accepted; /* kept */
    unsigned long long connections_rejected; /* closed at once: max_connections reached */
    unsigned long long requests_timed_out;   /* cut: request_timeout passed mid-request */
    /* Replies the listener sent itself, before a request reached the callback (413 body
     * over max_body, 400 malformed, 501 unknown method, 503 closing...), by status. */
    unsigned long long listener_replies[600];
} httpd_stats;

/* Called from the event loop for every complete request; r belongs to the callee until
 * httpd_request_reply(r, ...). */
typedef void (*httpd_request_fn)(httpd_request *r, void *ud);

/* Binds and starts accepting. Returns the server, or NULL with err filled (address in
 * use, bad host...). Ignores SIGPIPE process-wide when it is still at its default. */
httpd_server *httpd_listen(const httpd_opts *o, httpd_request_fn fn, void *ud, char *err,
                           size_t errlen);
/* The bound port (the real one when opts.port was 0). */
int httpd_server_port(const httpd_server *s);
/* The bound host as given (or "127.0.0.1"). */
const char *httpd_server_host(const httpd_server *s);
/* Stops accepting now and never calls fn again (requests still arriving on open
 * connections get 503). Requests already handed out stay valid and are answered when
 * their owners reply; the server frees itself, closing idle keep-alive connections,
 * once the last one is done. s must not be used after this call. */
void httpd_close(httpd_server *s);
/* Requests handed out (or being written) and not yet finished, all servers. */
size_t httpd_live_requests(void);
/* The listeners' counters (see httpd_stats). */
const httpd_stats *httpd_get_stats(void);
/* Frees every server now (at exit, after the scheduler stopped; before loop_free()).
 * Requests still owned by callers stay valid; replying to them only frees them. */
void httpd_shutdown(void);

/* Request accessors; strings are NUL-terminated and owned by r. */
const char *httpd_request_method(const httpd_request *r);          /* "GET", "POST"... */
const char *httpd_request_uri(const httpd_request *r);             /* raw request target */
const char *httpd_request_path(const httpd_request *r, size_t *len); /* percent-decoded */
const char *httpd_request_query(const httpd_request *r);           /* raw, "" when none */
size_t httpd_request_header_count(const httpd_request *r);
/* The i-th request header (0-based, arrival order), names as the client sent them. */
void httpd_request_header(const httpd_request *r, size_t i, const char **name,
                          const char **value);
const char *httpd_request_body(const httpd_request *r, size_t *len); /* "" when none */
const char *httpd_request_remote_addr(const httpd_request *r);       /* peer IP */
int httpd_request_remote_port(const httpd_request *r);
/* 0 once libevent dropped the connection (only noticed when the server writes). */
int httpd_request_connected(const httpd_request *r);

/* Adds a response header. Content-Length and Transfer-Encoding are computed by the
 * server and ignored here. Returns 0, or -1 with err filled (name not a token, CR/LF
 * in the value, out of memory). */
int httpd_request_add_header(httpd_request *r, const char *name, const char *value,
                             char *err, size_t errlen);
/* Drops the response headers added so far. */
void httpd_request_clear_headers(httpd_request *r);
/* Sends the reply (status 100..599, else 500; body copied, may be NULL) and gives r
 * back to the server: r must not be used after this call. Safe when the client is gone. */
void httpd_request_reply(httpd_request *r, int status, const char *body, size_t len);
#endif
