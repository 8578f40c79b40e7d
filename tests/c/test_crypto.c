/* crypto.c: RFC 4231 HMAC-SHA256 vectors, SHA-256 known answers (FIPS 180-2 examples),
 * base64 round trips and rejects, constant-time equality, random bytes. */
#include "fox/crypto.h"
#include "harness.h"

#include <stdlib.h>

static const char *hex_of(const unsigned char *p, size_t n) {
    static char buf[2 * 256 + 1];
    crypto_hex_encode(p, n, buf);
    return buf;
}

static const char *hmac_hex(const void *key, size_t keylen, const void *msg, size_t msglen) {
    unsigned char mac[CRYPTO_SHA256_LEN];
    static char err[256];
    if (crypto_hmac_sha256(key, keylen, msg, msglen, mac, err, sizeof err) != 0) return err;
    return hex_of(mac, sizeof mac);
}

TEST(hmac_rfc4231_case1) {
    unsigned char key[20];
    memset(key, 0x0b, sizeof key);
    CHECK_EQ_STR(hmac_hex(key, sizeof key, "Hi There", 8),
                 "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

TEST(hmac_rfc4231_case2_short_key) {
    const char *msg = "what do ya want for nothing?";
    CHECK_EQ_STR(hmac_hex("Jefe", 4, msg, strlen(msg)),
                 "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(hmac_rfc4231_case3) {
    unsigned char key[20], data[50];
    memset(key, 0xaa, sizeof key);
    memset(data, 0xdd, sizeof data);
    CHECK_EQ_STR(hmac_hex(key, sizeof key, data, sizeof data),
                 "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
}

TEST(hmac_rfc4231_case4) {
    unsigned char key[25], data[50];
    for (int i = 0; i < 25; i++) key[i] = (unsigned char)(i + 1);
    memset(data, 0xcd, sizeof data);
    CHECK_EQ_STR(hmac_hex(key, sizeof key, data, sizeof data),
                 "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
}

TEST(hmac_rfc4231_case5_truncated) {
    unsigned char key[20];
    memset(key, 0x0c, sizeof key);
    const char *full = hmac_hex(key, sizeof key, "Test With Truncation", 20);
    /* The RFC gives only the first 128 bits. */
    CHECK(strncmp(full, "a3b6167473100ee06e0c796c2955552b", 32) == 0);
}

TEST(hmac_rfc4231_case6_large_key) {
    unsigned char key[131];
    const char *msg = "Test Using Larger Than Block-Size Key - Hash Key First";
    memset(key, 0xaa, sizeof key);
    CHECK_EQ_STR(hmac_hex(key, sizeof key, msg, strlen(msg)),
                 "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(hmac_rfc4231_case7_large_key_and_data) {
    unsigned char key[131];
    const char *msg = "This is a test using a larger than block-size key and a larger than "
                      "block-size data. The key needs to be hashed before being used by the "
                      "HMAC algorithm.";
    memset(key, 0xaa, sizeof key);
    CHECK_EQ_STR(hmac_hex(key, sizeof key, msg, strlen(msg)),
                 "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

TEST(hmac_parts_equal_whole_message) {
    const char *msg = "what do ya want for nothing?";
    crypto_part parts[3] = {{"what do ", 8}, {"", 0}, {msg + 8, strlen(msg) - 8}};
    unsigned char mac[CRYPTO_SHA256_LEN];
    CHECK_EQ_INT(crypto_hmac_sha256_parts("Jefe", 4, parts, 3, mac, NULL, 0), 0);
    CHECK_EQ_STR(hex_of(mac, sizeof mac),
                 "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(hmac_empty_key_and_message) {
    CHECK_EQ_STR(hmac_hex(NULL, 0, NULL, 0),
                 "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

static const char *sha_hex(const void *data, size_t len) {
    unsigned char d[CRYPTO_SHA256_LEN];
    if (crypto_sha256(data, len, d, NULL, 0) != 0) return "error";
    return hex_of(d, sizeof d);
}

TEST(sha256_known_answers) {
    CHECK_EQ_STR(sha_hex("", 0),
                 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK_EQ_STR(sha_hex("abc", 3),
                 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    CHECK_EQ_STR(sha_hex(two_blocks, strlen(two_blocks)),
                 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    char *million = malloc(1000000);
    memset(million, 'a', 1000000);
    CHECK_EQ_STR(sha_hex(million, 1000000),
                 "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(million);
}

TEST(hex_is_lowercase_and_complete) {
    unsigned char in[] = {0x00, 0x0f, 0xab, 0xff};
    CHECK_EQ_STR(hex_of(in, 4), "000fabff");
    CHECK_EQ_STR(hex_of(in, 0), "");
}

static const char *b64(const char *s, size_t n) {
    static char out[256];
    CHECK_EQ_INT(crypto_base64_encode(s, n, out), crypto_base64_encoded_len(n));
    return out;
}

/* Decodes s; returns the text, or "ERR:<reason>". */
static const char *unb64(const char *s) {
    static char out[256];
    size_t n = 0;
    char err[128];
    if (crypto_base64_decode(s, strlen(s), (unsigned char *)out, &n, err, sizeof err) != 0) {
        snprintf(out, sizeof out, "ERR:%s", err);
        return out;
    }
    out[n] = '\0';
    return out;
}

TEST(base64_rfc4648_vectors) {
    CHECK_EQ_STR(b64("", 0), "");
    CHECK_EQ_STR(b64("f", 1), "Zg==");
    CHECK_EQ_STR(b64("fo", 2), "Zm8=");
    CHECK_EQ_STR(b64("foo", 3), "Zm9v");
    CHECK_EQ_STR(b64("foob", 4), "Zm9vYg==");
    CHECK_EQ_STR(b64("fooba", 5), "Zm9vYmE=");
    CHECK_EQ_STR(b64("foobar", 6), "Zm9vYmFy");
    CHECK_EQ_STR(unb64("Zm9vYmE="), "fooba");
    CHECK_EQ_STR(unb64("Zm9vYg=="), "foob");
    CHECK_EQ_STR(unb64(""), "");
}

TEST(base64_accepts_missing_padding) {
    CHECK_EQ_STR(unb64("Zg"), "f");
    CHECK_EQ_STR(unb64("Zm8"), "fo");
    CHECK_EQ_STR(unb64("Zm9vYmE"), "fooba");
}

TEST(base64_round_trips_every_byte_and_length) {
    unsigned char in[300], back[300 + 3];
    char enc[512];
    for (int i = 0; i < 300; i++) in[i] = (unsigned char)(i * 7 + 3);
    for (size_t n = 0; n <= 300; n++) {
        size_t len = crypto_base64_encode(in, n, enc), out = 0;
        CHECK(crypto_base64_decode(enc, len, back, &out, NULL, 0) == 0);
        CHECK_EQ_INT(out, n);
        CHECK(memcmp(in, back, n) == 0);
    }
}

TEST(base64_rejects_garbage) {
    CHECK(strncmp(unb64("Zm9v!"), "ERR:", 4) == 0);       /* outside the alphabet */
    CHECK(strncmp(unb64("Zm9v YmFy"), "ERR:", 4) == 0);   /* whitespace */
    CHECK(strncmp(unb64("Zm9v\nYmFy"), "ERR:", 4) == 0);
    CHECK(strncmp(unb64("Zm9-"), "ERR:", 4) == 0);        /* URL-safe alphabet */
    CHECK(strncmp(unb64("Z"), "ERR:", 4) == 0);           /* impossible length */
    CHECK(strncmp(unb64("Zm9vY"), "ERR:", 4) == 0);
    CHECK(strncmp(unb64("Zg="), "ERR:", 4) == 0);         /* padding on a partial block */
    CHECK(strncmp(unb64("Z==="), "ERR:", 4) == 0);        /* too much padding */
    CHECK(strncmp(unb64("Zg==Zg=="), "ERR:", 4) == 0);    /* padding in the middle */
    CHECK(strncmp(unb64("=Zg="), "ERR:", 4) == 0);
    CHECK(strncmp(unb64("Zh=="), "ERR:", 4) == 0);        /* non-zero trailing bits */
    CHECK_EQ_STR(unb64("Zm9v!"), "ERR:invalid base64: character outside the alphabet");
}

TEST(base64_embedded_nul_is_garbage) {
    const char in[] = {'Z', 'm', '\0', 'v'};
    unsigned char out[8];
    size_t n;
    CHECK_EQ_INT(crypto_base64_decode(in, 4, out, &n, NULL, 0), -1);
}

TEST(equal_compares_content_and_length) {
    CHECK_EQ_INT(crypto_equal("abc", 3, "abc", 3), 1);
    CHECK_EQ_INT(crypto_equal("abc", 3, "abd", 3), 0);
    CHECK_EQ_INT(crypto_equal("abc", 3, "abcd", 4), 0);
    CHECK_EQ_INT(crypto_equal("abcd", 4, "abc", 3), 0);
    CHECK_EQ_INT(crypto_equal("", 0, "", 0), 1);
    CHECK_EQ_INT(crypto_equal("", 0, "a", 1), 0);
    CHECK_EQ_INT(crypto_equal("a\0b", 3, "a\0c", 3), 0);
}

TEST(random_bytes_fill_and_bound) {
    unsigned char a[64], b[64];
    char err[128];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    CHECK_EQ_INT(crypto_random_bytes(a, sizeof a, err, sizeof err), 0);
    CHECK_EQ_INT(crypto_random_bytes(b, sizeof b, err, sizeof err), 0);
    CHECK(memcmp(a, b, sizeof a) != 0);
    static const unsigned char zero[64];
    CHECK(memcmp(a, zero, sizeof a) != 0);
    CHECK_EQ_INT(crypto_random_bytes(a, 0, err, sizeof err), 0);
    CHECK_EQ_INT(crypto_random_bytes(a, CRYPTO_RANDOM_MAX + 1, err, sizeof err), -1);
    CHECK(strstr(err, "at most") != NULL);
}

int main(void) {
    return RUN_TESTS();
}
