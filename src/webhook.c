/* Standard Webhooks signature verification (see webhook.h). */
#include "fox/webhook.h"

#include "fox/crypto.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define WEBHOOK_SECRET_PREFIX "whsec_"
#define WEBHOOK_SECRET_MAX 4096     /* characters after the prefix */
#define WEBHOOK_SIG_B64_MAX 88      /* a 32-byte MAC is 44 characters; allow slack */
#define WEBHOOK_TIMESTAMP_DIGITS 18 /* keeps now - ts far from int64 overflow */

static int webhook_fail(char *err, size_t errlen, const char *reason) {
    if (err && errlen) snprintf(err, errlen, "%s", reason);
    return -1;
}

/* Decodes the key of a "whsec_<base64>" secret into key (>= decoded maxlen bytes). */
static int webhook_decode_secret(const char *secret, size_t secretlen, unsigned char *key,
                                 size_t *keylen) {
    const size_t plen = sizeof WEBHOOK_SECRET_PREFIX - 1;
    if (!secret || secretlen <= plen || memcmp(secret, WEBHOOK_SECRET_PREFIX, plen) != 0)
        return -1;
    if (secretlen - plen > WEBHOOK_SECRET_MAX) return -1;
    if (crypto_base64_decode(secret + plen, secretlen - plen, key, keylen, NULL, 0) != 0)
        return -1;
    return *keylen > 0 ? 0 : -1;
}

/* Parses a decimal unix timestamp (digits only). */
static int webhook_parse_timestamp(const webhook_str *s, int64_t *out) {
    int64_t v = 0;
    if (s->len == 0 || s->len > WEBHOOK_TIMESTAMP_DIGITS) return -1;
    for (size_t i = 0; i < s->len; i++) {
        char c = s->ptr[i];
        if (c < '0' || c > '9') return -1;
        v = v * 10 + (c - '0');
    }
    *out = v;
    return 0;
}

static int webhook_is_space(char c) {
    return c == ' ' || c == '\t';
}

/* 1 when some "v1,<base64>" entry of the header equals mac; *seen_v1 counts v1 entries.
 * Every entry is examined so the time does not depend on which one matched. */
static int webhook_match_signatures(const webhook_str *header,
                                    const unsigned char mac[CRYPTO_SHA256_LEN],
                                    int *seen_v1) {
    const char *p = header->ptr, *end = header->ptr + header->len;
    int matched = 0;
    *seen_v1 = 0;
    while (p < end) {
        while (p < end && webhook_is_space(*p)) p++;
        const char *entry = p;
        while (p < end && !webhook_is_space(*p)) p++;
        size_t n = (size_t)(p - entry);
        if (n < 3 || memcmp(entry, "v1,", 3) != 0) continue; /* other versions: ignored */
        (*seen_v1)++;
        const char *b64 = entry + 3;
        size_t b64len = n - 3;
        unsigned char sig[WEBHOOK_SIG_B64_MAX / 4 * 3 + 3];
        size_t siglen = 0;
        if (b64len > WEBHOOK_SIG_B64_MAX) continue;
        if (crypto_base64_decode(b64, b64len, sig, &siglen, NULL, 0) != 0) continue;
        matched |= crypto_equal(sig, siglen, mac, CRYPTO_SHA256_LEN);
    }
    return matched;
}

static int webhook_compute_mac(const unsigned char *key, size_t keylen, const webhook_str *id,
                               const webhook_str *timestamp, const webhook_str *body,
                               unsigned char mac[CRYPTO_SHA256_LEN], char *err,
                               size_t errlen) {
    crypto_part parts[5] = {
        {id->ptr, id->len}, {".", 1}, {timestamp->ptr, timestamp->len}, {".", 1},
        {body->ptr, body->len},
    };
    return crypto_hmac_sha256_parts(key, keylen, parts, 5, mac, err, errlen);
}

int webhook_verify(const char *secret, size_t secretlen, const webhook_request *req,
                   const webhook_opts *opts, char *err, size_t errlen) {
    unsigned char key[WEBHOOK_SECRET_MAX / 4 * 3 + 3];
    unsigned char mac[CRYPTO_SHA256_LEN];
    size_t keylen = 0;
    int64_t ts = 0, now, tolerance;
    int seen_v1 = 0, rc = -1;
    char why[160];

    if (opts) {
        now = opts->now;
        tolerance = opts->tolerance < 0 ? 0 : opts->tolerance;
    } else {
        now = (int64_t)time(NULL);
        tolerance = WEBHOOK_DEFAULT_TOLERANCE;
    }
    if (webhook_decode_secret(secret, secretlen, key, &keylen) != 0) {
        webhook_fail(err, errlen, "bad secret (expected whsec_ followed by base64)");
        goto cleanup;
    }
    if (!req->id.ptr || req->id.len == 0) {
        webhook_fail(err, errlen, "missing webhook-id header");
        goto cleanup;
    }
    if (!req->timestamp.ptr || req->timestamp.len == 0) {
        webhook_fail(err, errlen, "missing webhook-timestamp header");
        goto cleanup;
    }
    if (!req->signature.ptr || req->signature.len == 0) {
        webhook_fail(err, errlen, "missing webhook-signature header");
        goto cleanup;
    }
    if (webhook_parse_timestamp(&req->timestamp, &ts) != 0) {
        webhook_fail(err, errlen, "bad webhook-timestamp header (expected unix seconds)");
        goto cleanup;
    }
    if (now - ts > tolerance) {
        snprintf(why, sizeof why, "timestamp outside tolerance (%lld s old)",
                 (long long)(now - ts));
        webhook_fail(err, errlen, why);
        goto cleanup;
    }
    if (ts - now > tolerance) {
        snprintf(why, sizeof why, "timestamp outside tolerance (%lld s in the future)",
                 (long long)(ts - now));
        webhook_fail(err, errlen, why);
        goto cleanup;
    }
    if (webhook_compute_mac(key, keylen, &req->id, &req->timestamp, &req->body, mac, err,
                            errlen) != 0)
        goto cleanup;
    if (!webhook_match_signatures(&req->signature, mac, &seen_v1)) {
        webhook_fail(err, errlen,
                     seen_v1 ? "no matching signature"
                             : "no matching signature (webhook-signature has no v1 entry)");
        goto cleanup;
    }
    rc = 0;
cleanup:
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

int webhook_sign(const char *secret, size_t secretlen, const webhook_str *id,
                 const webhook_str *timestamp, const webhook_str *body, char *out,
                 size_t outlen, char *err, size_t errlen) {
    unsigned char key[WEBHOOK_SECRET_MAX / 4 * 3 + 3];
    unsigned char mac[CRYPTO_SHA256_LEN];
    char b64[CRYPTO_SHA256_LEN / 3 * 4 + 8];
    size_t keylen = 0;
    int rc = -1;

    if (webhook_decode_secret(secret, secretlen, key, &keylen) != 0) {
        webhook_fail(err, errlen, "bad secret (expected whsec_ followed by base64)");
        goto cleanup;
    }
    if (webhook_compute_mac(key, keylen, id, timestamp, body, mac, err, errlen) != 0)
        goto cleanup;
    crypto_base64_encode(mac, sizeof mac, b64);
    if ((size_t)snprintf(out, outlen, "v1,%s", b64) >= outlen) {
        webhook_fail(err, errlen, "signature buffer too small");
        goto cleanup;
    }
    rc = 0;
cleanup:
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}
