#ifndef FOX_CRYPTO_H
#define FOX_CRYPTO_H
/* Hashes, MACs, encodings and randomness on OpenSSL libcrypto. No Lua in here.
 * Every function is safe on zero-length input (a NULL pointer is allowed when the
 * length is 0). Errors are reported as -1 with a message in err (which may be NULL). */
#include <stddef.h>

#define CRYPTO_SHA256_LEN 32
/* Largest request crypto_random_bytes accepts in one call. */
#define CRYPTO_RANDOM_MAX ((size_t)1 << 20)

/* One piece of a message fed to the MAC in order, so callers need not concatenate. */
typedef struct crypto_part {
    const void *data;
    size_t len;
} crypto_part;

/* HMAC-SHA256 of msg under key into out (32 bytes). Returns 0, or -1 with err. */
int crypto_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                       unsigned char out[CRYPTO_SHA256_LEN], char *err, size_t errlen);
/* HMAC-SHA256 of the concatenation of nparts parts. Returns 0, or -1 with err. */
int crypto_hmac_sha256_parts(const void *key, size_t keylen, const crypto_part *parts,
                             size_t nparts, unsigned char out[CRYPTO_SHA256_LEN],
                             char *err, size_t errlen);
/* SHA-256 of data into out (32 bytes). Returns 0, or -1 with err. */
int crypto_sha256(const void *data, size_t len, unsigned char out[CRYPTO_SHA256_LEN],
                  char *err, size_t errlen);

/* Writes 2*len lowercase hex digits and a NUL into out (2*len+1 bytes). */
void crypto_hex_encode(const void *in, size_t len, char *out);

/* Bytes crypto_base64_encode writes for len input bytes, NUL excluded. */
size_t crypto_base64_encoded_len(size_t len);
/* Standard alphabet with padding, no line breaks. out needs
 * crypto_base64_encoded_len(len)+1 bytes; NUL-terminated. Returns the length. */
size_t crypto_base64_encode(const void *in, size_t len, char *out);
/* Upper bound on the bytes decoded from len characters. */
size_t crypto_base64_decoded_maxlen(size_t len);
/* Decodes standard-alphabet base64, with or without '=' padding. Rejects any other
 * character (whitespace included), misplaced or excess padding, an impossible length
 * and non-zero trailing bits. out needs crypto_base64_decoded_maxlen(len) bytes; the
 * decoded length goes to *outlen. Returns 0, or -1 with a reason in err. */
int crypto_base64_decode(const char *in, size_t len, unsigned char *out, size_t *outlen,
                         char *err, size_t errlen);

/* 1 when a and b hold the same bytes, else 0. Runs in time that depends only on the
 * lengths: content is compared in constant time, and unequal lengths still pay for a
 * full comparison before answering 0. */
int crypto_equal(const void *a, size_t alen, const void *b, size_t blen);

/* Fills out with n cryptographically strong random bytes (n <= CRYPTO_RANDOM_MAX).
 * Returns 0, or -1 with err. */
int crypto_random_bytes(void *out, size_t n, char *err, size_t errlen);
#endif
