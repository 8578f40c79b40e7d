#ifndef FOX_WEBHOOK_H
#define FOX_WEBHOOK_H
/* Standard Webhooks signature verification (https://www.standardwebhooks.com/):
 * the signed content is "<webhook-id>.<webhook-timestamp>.<body>", the MAC is
 * HMAC-SHA256 under the base64-decoded part of the "whsec_..." secret, and the
 * webhook-signature header lists space-separated "v1,<base64 mac>" entries of which one
 * must match. No Lua and no global state here, so a fuzzer can drive it directly. */
#include <stddef.h>
#include <stdint.h>

#define WEBHOOK_DEFAULT_TOLERANCE 300

/* A byte string that need not be NUL-terminated; ptr == NULL means "absent". */
typedef struct webhook_str {
    const char *ptr;
    size_t len;
} webhook_str;

typedef struct webhook_request {
    webhook_str id;         /* webhook-id header */
    webhook_str timestamp;  /* webhook-timestamp header: unix seconds, decimal */
    webhook_str signature;  /* webhook-signature header */
    webhook_str body;       /* raw body bytes as received (ptr may be NULL when len 0) */
} webhook_request;

typedef struct webhook_opts {
    int64_t now;        /* current unix time in seconds */
    int64_t tolerance;  /* accepted clock skew either way, seconds (>= 0) */
} webhook_opts;

/* Verifies req against secret ("whsec_" + base64 key). opts NULL means wall clock and
 * WEBHOOK_DEFAULT_TOLERANCE. Returns 0 when one v1 signature matches, else -1 with a
 * reason a person can act on in err, e.g. "missing webhook-id header",
 * "bad secret (expected whsec_ followed by base64)", "timestamp outside tolerance
 * (412 s old)", "no matching signature". Never reads beyond the given lengths. */
int webhook_verify(const char *secret, size_t secretlen, const webhook_request *req,
                   const webhook_opts *opts, char *err, size_t errlen);

/* Computes the v1 signature header entry ("v1,<base64>") for id, timestamp and body
 * under secret, into out (outlen >= 64 is always enough). Used by tests and by senders
 * (e.g. fakes). Returns 0, or -1 with err. */
int webhook_sign(const char *secret, size_t secretlen, const webhook_str *id,
                 const webhook_str *timestamp, const webhook_str *body, char *out,
                 size_t outlen, char *err, size_t errlen);
#endif
