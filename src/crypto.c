/* Hashes, MACs, encodings and randomness on OpenSSL libcrypto (see crypto.h). */
#include "fox/crypto.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static void crypto_set_error(char *err, size_t errlen, const char *what) {
    unsigned long code = ERR_get_error();
    if (err && errlen) {
        if (code) {
            char detail[256];
            ERR_error_string_n(code, detail, sizeof detail);
            snprintf(err, errlen, "%s: %s", what, detail);
        } else {
            snprintf(err, errlen, "%s", what);
        }
    }
    ERR_clear_error();
}

int crypto_hmac_sha256_parts(const void *key, size_t keylen, const crypto_part *parts,
                             size_t nparts, unsigned char out[CRYPTO_SHA256_LEN],
                             char *err, size_t errlen) {
    /* OpenSSL treats a NULL key as "keep the previous key"; an empty key is valid HMAC. */
    static const unsigned char empty_key[1];
    char digest_name[] = "SHA256";
    OSSL_PARAM params[2];
    EVP_MAC *mac = NULL;
    EVP_MAC_CTX *ctx = NULL;
    size_t outlen = 0;
    int rc = -1;

    mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!mac) {
        crypto_set_error(err, errlen, "HMAC unavailable");
        goto cleanup;
    }
    ctx = EVP_MAC_CTX_new(mac);
    if (!ctx) {
        crypto_set_error(err, errlen, "HMAC context allocation failed");
        goto cleanup;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0);
    params[1] = OSSL_PARAM_construct_end();
    if (!EVP_MAC_init(ctx, keylen ? key : empty_key, keylen, params)) {
        crypto_set_error(err, errlen, "HMAC init failed");
        goto cleanup;
    }
    for (size_t i = 0; i < nparts; i++) {
        if (parts[i].len && !EVP_MAC_update(ctx, parts[i].data, parts[i].len)) {
            crypto_set_error(err, errlen, "HMAC update failed");
            goto cleanup;
        }
    }
    if (!EVP_MAC_final(ctx, out, &outlen, CRYPTO_SHA256_LEN) || outlen != CRYPTO_SHA256_LEN) {
        crypto_set_error(err, errlen, "HMAC final failed");
        goto cleanup;
    }
    rc = 0;
cleanup:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return rc;
}

int crypto_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                       unsigned char out[CRYPTO_SHA256_LEN], char *err, size_t errlen) {
    crypto_part part = {msg, msglen};
    return crypto_hmac_sha256_parts(key, keylen, &part, 1, out, err, errlen);
}

int crypto_sha256(const void *data, size_t len, unsigned char out[CRYPTO_SHA256_LEN],
                  char *err, size_t errlen) {
    static const unsigned char empty[1];
    unsigned int outlen = 0;
    if (!EVP_Digest(len ? data : empty, len, out, &outlen, EVP_sha256(), NULL) ||
        outlen != CRYPTO_SHA256_LEN) {
        crypto_set_error(err, errlen, "SHA-256 failed");
        return -1;
    }
    return 0;
}

void crypto_hex_encode(const void *in, size_t len, char *out) {
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = in;
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t crypto_base64_encoded_len(size_t len) {
    return (len + 2) / 3 * 4;
}

size_t crypto_base64_encode(const void *in, size_t len, char *out) {
    const unsigned char *p = in;
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = base64_alphabet[v >> 18];
        out[o++] = base64_alphabet[(v >> 12) & 63];
        out[o++] = base64_alphabet[(v >> 6) & 63];
        out[o++] = base64_alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = base64_alphabet[v >> 18];
        out[o++] = base64_alphabet[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = base64_alphabet[v >> 18];
        out[o++] = base64_alphabet[(v >> 12) & 63];
        out[o++] = base64_alphabet[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

size_t crypto_base64_decoded_maxlen(size_t len) {
    return len / 4 * 3 + 3;
}

/* The 6-bit value of c, or -1 when c is not in the standard alphabet. */
static int base64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

static int base64_fail(char *err, size_t errlen, const char *why) {
    if (err && errlen) snprintf(err, errlen, "invalid base64: %s", why);
    return -1;
}

int crypto_base64_decode(const char *in, size_t len, unsigned char *out, size_t *outlen,
                         char *err, size_t errlen) {
    size_t data_len = len, o = 0;
    uint32_t acc = 0;
    int bits = 0;

    *outlen = 0;
    if (len && in[len - 1] == '=') {
        size_t pad = 1;
        if (len >= 2 && in[len - 2] == '=') pad = 2;
        if (len % 4 != 0) return base64_fail(err, errlen, "padding on a partial block");
        data_len = len - pad;
    }
    for (size_t i = 0; i < data_len; i++) {
        int v = base64_value((unsigned char)in[i]);
        if (v < 0)
            return base64_fail(err, errlen, in[i] == '=' ? "misplaced padding"
                                                         : "character outside the alphabet");
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (data_len % 4 == 1) return base64_fail(err, errlen, "impossible length");
    /* A canonical encoder leaves the bits below the last whole byte at zero. */
    if (acc != 0) return base64_fail(err, errlen, "non-zero trailing bits");
    *outlen = o;
    return 0;
}

int crypto_equal(const void *a, size_t alen, const void *b, size_t blen) {
    /* Unequal lengths: compare a with itself so the time still depends only on alen. */
    const void *other = alen == blen ? b : a;
    if (alen == 0) return blen == 0;
    int diff = CRYPTO_memcmp(a, other, alen);
    return (alen == blen) & (diff == 0);
}

int crypto_random_bytes(void *out, size_t n, char *err, size_t errlen) {
    if (n > CRYPTO_RANDOM_MAX) {
        if (err && errlen) snprintf(err, errlen, "random_bytes: %zu bytes requested, at most %zu",
                                    n, (size_t)CRYPTO_RANDOM_MAX);
        return -1;
    }
    if (n == 0) return 0;
    if (RAND_bytes(out, (int)n) != 1) {
        crypto_set_error(err, errlen, "random generator failed");
        return -1;
    }
    return 0;
}
