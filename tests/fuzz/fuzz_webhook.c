/* libFuzzer target: webhook_verify / webhook_sign (src/webhook.c), the parsing of the
 * Standard Webhooks headers and the "whsec_" secret.
 *
 * Input: four lines and a body, "SECRET\nID\nTIMESTAMP\nSIGNATURE\nBODY...". A missing
 * line is an absent header. In SECRET, "-" stands for a fixed valid secret. In
 * SIGNATURE, each "{sig}" is replaced by the correct "v1,<base64 MAC>" (computed here,
 * independently of fox), so the fuzzer reaches the accepting path and can wrap it in
 * junk, other versions and whitespace.
 *
 * Checked, beyond "no crash, no sanitizer report":
 *   - every field lives in its own exact-size heap block (no NUL), so a read past any
 *     length is an ASan report;
 *   - webhook_verify agrees with an oracle written from the spec (webhook.h): accept
 *     exactly when the secret is whsec_ + canonical base64, the three headers are
 *     present, the timestamp is at most 18 digits within tolerance, and one
 *     space/tab-separated entry is "v1," + the canonical (padded or unpadded) base64 of
 *     HMAC-SHA256(key, id "." ts "." body);
 *   - a failure always leaves a non-empty, NUL-terminated reason;
 *   - webhook_sign's output verifies, and a one-bit change of the body does not. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fox/webhook.h"

#define FUZZ_NOW 1700000000LL
#define FUZZ_TOLERANCE 300LL
#define FUZZ_DEFAULT_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct field {
    char *ptr; /* exact-size heap copy, NULL when absent */
    size_t len;
} field;

static void fuzz_die(const char *what) {
    fprintf(stderr, "fuzz_webhook: %s\n", what);
    abort();
}

static field field_copy(const char *p, size_t n) {
    field f = {malloc(n ? n : 1), n};
    if (!f.ptr) fuzz_die("out of memory");
    if (n) memcpy(f.ptr, p, n);
    return f;
}

/* Canonical base64 (standard alphabet, padded) of in; returns the length. */
static size_t oracle_b64(const unsigned char *in, size_t n, char *out) {
    return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

/* Decodes s when it is the canonical encoding of some bytes (padded or not). */
static int oracle_unb64(const char *s, size_t n, unsigned char *out, size_t *outlen) {
    static const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    size_t data = n;
    while (data > 0 && s[data - 1] == '=') data--;
    if (n - data > 2) return -1;
    for (size_t i = 0; i < data; i++) {
        const char *c = s[i] ? memchr(a, s[i], 64) : NULL;
        if (!c) return -1;
        acc = (acc << 6) | (unsigned)(c - a);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    *outlen = o;
    /* Canonical: re-encoding gives s back, with or without its padding. */
    char *re = malloc(o / 3 * 4 + 8);
    if (!re) fuzz_die("out of memory");
    size_t rl = oracle_b64(out, o, re);
    size_t rdata = rl;
    while (rdata > 0 && re[rdata - 1] == '=') rdata--;
    int ok = (rl == n && memcmp(re, s, n) == 0) || (n == data && rdata == n && memcmp(re, s, n) == 0);
    free(re);
    return ok ? 0 : -1;
}

/* The key of a whsec_ secret, per the spec; -1 when it is not one. */
static int oracle_key(const field *secret, unsigned char *key, size_t *keylen) {
    if (!secret->ptr || secret->len <= 6 || memcmp(secret->ptr, "whsec_", 6) != 0) return -1;
    if (secret->len - 6 > 4096) return -1;
    if (oracle_unb64(secret->ptr + 6, secret->len - 6, key, keylen) != 0) return -1;
    return *keylen > 0 ? 0 : -1;
}

static void oracle_mac(const unsigned char *key, size_t keylen, const field *id, const field *ts,
                       const field *body, unsigned char mac[32]) {
    size_t n = id->len + 1 + ts->len + 1 + body->len;
    unsigned char *msg = malloc(n ? n : 1);
    if (!msg) fuzz_die("out of memory");
    size_t o = 0;
    if (id->len) memcpy(msg + o, id->ptr, id->len);
    o += id->len;
    msg[o++] = '.';
    if (ts->len) memcpy(msg + o, ts->ptr, ts->len);
    o += ts->len;
    msg[o++] = '.';
    if (body->len) memcpy(msg + o, body->ptr, body->len);
    unsigned int maclen = 32;
    if (!HMAC(EVP_sha256(), key, (int)keylen, msg, n, mac, &maclen)) fuzz_die("HMAC failed");
    free(msg);
}

static int oracle_accepts(const field *secret, const field *id, const field *ts, const field *sig,
                          const field *body) {
    unsigned char key[4096];
    size_t keylen = 0;
    if (oracle_key(secret, key, &keylen) != 0) return 0;
    if (!id->ptr || !id->len || !ts->ptr || !ts->len || !sig->ptr || !sig->len) return 0;
    if (ts->len > 18) return 0;
    long long t = 0;
    for (size_t i = 0; i < ts->len; i++) {
        if (ts->ptr[i] < '0' || ts->ptr[i] > '9') return 0;
        t = t * 10 + (ts->ptr[i] - '0');
    }
    if (FUZZ_NOW - t > FUZZ_TOLERANCE || t - FUZZ_NOW > FUZZ_TOLERANCE) return 0;
    unsigned char mac[32];
    oracle_mac(key, keylen, id, ts, body, mac);
    char want[64];
    size_t wl = oracle_b64(mac, 32, want); /* 44 characters, one '=' */
    size_t i = 0;
    while (i < sig->len) {
        while (i < sig->len && (sig->ptr[i] == ' ' || sig->ptr[i] == '\t')) i++;
        size_t start = i;
        while (i < sig->len && sig->ptr[i] != ' ' && sig->ptr[i] != '\t') i++;
        size_t n = i - start;
        const char *e = sig->ptr + start;
        if (n >= 3 && memcmp(e, "v1,", 3) == 0) {
            if ((n - 3 == wl && memcmp(e + 3, want, wl) == 0) ||
                (n - 3 == wl - 1 && memcmp(e + 3, want, wl - 1) == 0))
                return 1;
        }
    }
    return 0;
}

/* Replaces every "{sig}" in s with the correct signature entry (a new heap block). */
static field expand_sig(const char *s, size_t n, const field *secret, const field *id,
                        const field *ts, const field *body) {
    unsigned char key[4096];
    size_t keylen = 0;
    char entry[64] = "v1,";
    size_t elen = 0;
    if (oracle_key(secret, key, &keylen) == 0) {
        unsigned char mac[32];
        oracle_mac(key, keylen, id, ts, body, mac);
        elen = 3 + oracle_b64(mac, 32, entry + 3);
    }
    size_t cap = n * 16 + 1, o = 0;
    char *out = malloc(cap);
    if (!out) fuzz_die("out of memory");
    for (size_t i = 0; i < n;) {
        if (elen && i + 5 <= n && memcmp(s + i, "{sig}", 5) == 0) {
            memcpy(out + o, entry, elen);
            o += elen;
            i += 5;
        } else {
            out[o++] = s[i++];
        }
    }
    field f = field_copy(out, o);
    free(out);
    return f;
}

static void check_reason(const char *err, size_t errlen) {
    if (memchr(err, '\0', errlen) == NULL) fuzz_die("reason is not NUL-terminated");
    if (err[0] == '\0') fuzz_die("failure without a reason");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = (const char *)data, *end = p + size;
    field parts[4] = {{NULL, 0}, {NULL, 0}, {NULL, 0}, {NULL, 0}};
    const char *raw_sig = NULL;
    size_t raw_sig_len = 0;
    int n = 0;
    while (n < 4 && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) nl = end;
        if (n == 3) {
            raw_sig = p;
            raw_sig_len = (size_t)(nl - p);
        } else if (n == 0 && nl - p == 1 && *p == '-') {
            parts[0] = field_copy(FUZZ_DEFAULT_SECRET, strlen(FUZZ_DEFAULT_SECRET));
        } else {
            parts[n] = field_copy(p, (size_t)(nl - p));
        }
        n++;
        p = nl < end ? nl + 1 : end;
    }
    field body = field_copy(p, (size_t)(end - p));
    field *secret = &parts[0], *id = &parts[1], *ts = &parts[2];
    if (raw_sig) parts[3] = expand_sig(raw_sig, raw_sig_len, secret, id, ts, &body);
    field *sig = &parts[3];

    webhook_request req = {{id->ptr, id->len}, {ts->ptr, ts->len}, {sig->ptr, sig->len},
                           {body.len ? body.ptr : NULL, body.len}};
    webhook_opts opts = {FUZZ_NOW, FUZZ_TOLERANCE};
    char err[200];
    memset(err, 'x', sizeof err);
    int rc = webhook_verify(secret->ptr, secret->len, &req, &opts, err, sizeof err);
    if (rc != 0 && rc != -1) fuzz_die("webhook_verify returned neither 0 nor -1");
    if (rc != 0) check_reason(err, sizeof err);
    int want = oracle_accepts(secret, id, ts, sig, &body);
    if ((rc == 0) != want) {
        fprintf(stderr, "webhook_verify says %s (%s), the oracle says %s\n", rc == 0 ? "accept" : "reject",
                rc == 0 ? "-" : err, want ? "accept" : "reject");
        fuzz_die("verify disagrees with the spec");
    }
    /* The wall-clock variant must not crash either. */
    webhook_verify(secret->ptr, secret->len, &req, NULL, err, sizeof err);

    /* What sign() produces verifies; a flipped body bit does not. */
    char out[128];
    if (webhook_sign(secret->ptr, secret->len, &req.id, &req.timestamp, &req.body, out, sizeof out,
                     err, sizeof err) == 0) {
        if (strncmp(out, "v1,", 3) != 0 || strlen(out) != 47) fuzz_die("sign() output malformed");
        field s2 = field_copy(out, strlen(out));
        webhook_request r2 = req;
        r2.signature.ptr = s2.ptr;
        r2.signature.len = s2.len;
        int ok = webhook_verify(secret->ptr, secret->len, &r2, &opts, err, sizeof err) == 0;
        int oracle_ok = oracle_accepts(secret, id, ts, &s2, &body);
        if (ok != oracle_ok) fuzz_die("verify(sign()) disagrees with the spec");
        if (ok && body.len) {
            body.ptr[0] ^= 1;
            if (webhook_verify(secret->ptr, secret->len, &r2, &opts, err, sizeof err) == 0)
                fuzz_die("a tampered body verified");
            body.ptr[0] ^= 1;
        }
        free(s2.ptr);
    } else {
        check_reason(err, sizeof err);
    }

    for (int i = 0; i < 4; i++) free(parts[i].ptr);
    free(body.ptr);
    return 0;
}
