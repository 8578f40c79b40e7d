#ifndef FOX_HTTPC_H
#define FOX_HTTPC_H
/* HTTP client: every transfer runs on one libcurl multi handle driven by the process's
 * libevent base (loop_base()). No Lua in here.
 *
 * A transfer's completion callback runs from the event loop after libcurl has
 * finished with the transfer (never from inside a libcurl callback), exactly once,
 * unless the transfer is freed first. The result stays readable until the transfer is
 * freed with httpc_transfer_free().
 *
 * At most HTTPC_MAX_HOST_TRANSFERS transfers per host:port and HTTPC_MAX_TRANSFERS in all
 * are attached to libcurl at once. Further transfers wait in a FIFO per host:port
 * holding only the copied request (no libcurl handle, no buffers); a slot that frees
 * goes to the oldest request of its host, and hosts waiting on the overall limit take
 * turns. A request's timeout counts from when its transfer starts; the time it may wait
 * queued is bounded separately (queue_timeout), and each limit has its own error.
 *
 * TLS peers are verified against the system CA bundle, or against the file named by
 * FOX_CA_BUNDLE (read once, when the client starts). libcurl's proxy variables
 * (https_proxy, no_proxy...) apply. */
#include <stddef.h>

#define HTTPC_DEFAULT_MAX_BODY ((size_t)16 << 20)
#define HTTPC_MAX_HEADER_BYTES ((size_t)256 << 10) /* all response header lines */
#define HTTPC_MAX_HOST_TRANSFERS 32   /* attached to libcurl at once, per host:port */
#define HTTPC_MAX_TRANSFERS 256       /* attached to libcurl at once, in all */
/* How long a request may wait for a slot before it fails with "queued too long":
 * long enough for a burst of a thousand investigations to drain, short enough that a
 * stuck host shows up as its own error rather than as a task deadline. */
#define HTTPC_DEFAULT_QUEUE_TIMEOUT 300.0

typedef struct httpc_transfer httpc_transfer;

typedef struct httpc_header {
    char *name;   /* as the server sent it (case kept) */
    char *value;  /* leading/trailing blanks removed */
} httpc_header;

typedef struct httpc_request {
    const char *method;            /* NULL = "GET"; any token ("PATCH", "DELETE"...) */
    const char *url;               /* http:// or https:// */
    const char *const *headers;    /* 2*nheaders strings: name, value, name, value... */
    size_t nheaders;               /* an empty value is sent as an empty header */
    const char *body;              /* may be NULL; copied */
    size_t body_len;
    double timeout;                /* the transfer, from when it starts, seconds; 0 = none */
    double queue_timeout;          /* waiting for a slot, seconds; 0 = HTTPC_DEFAULT_QUEUE_TIMEOUT */
    size_t max_body;               /* response body cap, bytes; 0 = HTTPC_DEFAULT_MAX_BODY */
    long max_redirects;            /* 0 = redirects are returned, not followed */
} httpc_request;

typedef struct httpc_result {
    int ok;                        /* 1: a response arrived (any status) */
    const char *error;             /* when !ok: a sentence a person can act on */
    long status;
    const httpc_header *headers;   /* in arrival order, final response only */
    size_t nheaders;
    const char *body;              /* not NUL-terminated; may be NULL when body_len 0 */
    size_t body_len;
} httpc_result;

/* Called once when the transfer finished (ok or not). The transfer and its result stay
 * valid until httpc_transfer_free(); the callback may free it. */
typedef void (*httpc_done_fn)(httpc_transfer *x, void *ud);

/* Starts a transfer, or queues it when its host (or the client) is at its limit. Copies
 * everything in req. Returns the transfer, or NULL with err
 * filled when the request itself is invalid (bad URL, unsupported scheme, a header
 * name that is not a token, CR/LF in a header value, a bad method) or the client
 * cannot start (no event loop, out of memory). Never calls fn before returning. */
httpc_transfer *httpc_start(const httpc_request *req, httpc_done_fn fn, void *ud,
                            char *err, size_t errlen);
/* The result of a finished transfer (NULL while it is running). Owned by x. */
const httpc_result *httpc_transfer_result(const httpc_transfer *x);
/* Stops x if it is still running or queued (its callback will never be called; a
 * queued request leaves its FIFO) and frees it with its result. NULL is a no-op. */
void httpc_transfer_free(httpc_transfer *x);
/* Number of transfers started and not yet freed. */
size_t httpc_live_transfers(void);
/* Number of transfers waiting for a slot (not yet handed to libcurl). */
size_t httpc_queued_transfers(void);
/* Number of transfers attached to libcurl (connecting or talking to their server). */
size_t httpc_active_transfers(void);
/* Frees the multi handle and pooled easy handles; running transfers are stopped
 * without callbacks. Call at exit, before loop_free(). Safe to call more than once. */
void httpc_shutdown(void);

/* Percent-encodes in[0..inlen) keeping only the RFC 3986 unreserved set
 * (A-Z a-z 0-9 - . _ ~) as is; uppercase hex. out must hold 3*inlen bytes (no NUL is
 * written). Returns the number of bytes written. */
size_t httpc_percent_encode(const char *in, size_t inlen, char *out);
/* Decodes %XX escapes (malformed escapes are kept as is) and, when plus_as_space, '+'
 * as ' '. out must hold inlen bytes (no NUL written). Returns bytes written. */
size_t httpc_percent_decode(const char *in, size_t inlen, char *out, int plus_as_space);
#endif
