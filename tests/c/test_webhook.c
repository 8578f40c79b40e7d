/* webhook.c: Standard Webhooks verification against a vector computed independently
 * with the openssl command line:
 *   printf '%s' 'msg_2Kf8xQvN3pLr.1795000000.<body>' |
 *     openssl dgst -sha256 -mac HMAC -macopt hexkey:<hex of base64-decoded key> -binary | base64
 */
#include "fox/webhook.h"
#include "harness.h"

#define SECRET "whsec_syt6DV+eF3456CfbbrZyQdPtiDLoA5+p"
#define OTHER_SECRET "whsec_QIb9lNLvhG8paZQAalGWIRuflpSQ8duz"
#define MSG_ID "msg_2Kf8xQvN3pLr"
#define TIMESTAMP "1795000000"
#define BODY                                                                            \
    "{\"event_type\":\"public_incident.incident_created_v2\",\"incident\":{\"id\":\"01HZX\"," \
    "\"name\":\"Database down\"}}"
#define SIGNATURE "v1,BkZQjQVTkF8O5zn6zILMsnQ9LyFQiO2Mnr54zNzbjGQ="
#define NOW 1795000030

static webhook_str str(const char *s) {
    webhook_str w = {s, s ? strlen(s) : 0};
    return w;
}

static webhook_request request(const char *id, const char *ts, const char *sig,
                               const char *body) {
    webhook_request r = {str(id), str(ts), str(sig), str(body)};
    return r;
}

/* Returns "ok" or the reason. */
static const char *verify_with(const char *secret, webhook_request r, int64_t now) {
    static char err[256];
    webhook_opts o = {now, 300};
    if (webhook_verify(secret, strlen(secret), &r, &o, err, sizeof err) == 0) return "ok";
    return err;
}

static const char *verify(webhook_request r) {
    return verify_with(SECRET, r, NOW);
}

TEST(known_vector_verifies) {
    CHECK_EQ_STR(verify(request(MSG_ID, TIMESTAMP, SIGNATURE, BODY)), "ok");
}

TEST(sign_reproduces_known_vector) {
    char out[128], err[128];
    webhook_str id = str(MSG_ID), ts = str(TIMESTAMP), body = str(BODY);
    CHECK_EQ_INT(webhook_sign(SECRET, strlen(SECRET), &id, &ts, &body, out, sizeof out, err,
                              sizeof err), 0);
    CHECK_EQ_STR(out, SIGNATURE);
}

TEST(wrong_secret_fails) {
    CHECK_EQ_STR(verify_with(OTHER_SECRET, request(MSG_ID, TIMESTAMP, SIGNATURE, BODY), NOW),
                 "no matching signature");
}

TEST(tampered_body_id_or_timestamp_fail) {
    CHECK_EQ_STR(verify(request(MSG_ID, TIMESTAMP, SIGNATURE,
                                "{\"event_type\":\"public_incident.incident_created_v2\","
                                "\"incident\":{\"id\":\"01HZX\",\"name\":\"Database up\"}}")),
                 "no matching signature");
    CHECK_EQ_STR(verify(request("msg_2Kf8xQvN3pLs", TIMESTAMP, SIGNATURE, BODY)),
                 "no matching signature");
    CHECK_EQ_STR(verify(request(MSG_ID, "1795000001", SIGNATURE, BODY)),
                 "no matching signature");
    /* A trailing newline is a different body. */
    CHECK_EQ_STR(verify(request(MSG_ID, TIMESTAMP, SIGNATURE, BODY "\n")),
                 "no matching signature");
}

TEST(body_with_nul_bytes_is_signed_whole) {
    char out[128];
    const char raw[] = {'a', '\0', 'b'};
    webhook_str id = str(MSG_ID), ts = str(TIMESTAMP), body = {raw, 3};
    CHECK_EQ_INT(webhook_sign(SECRET, strlen(SECRET), &id, &ts, &body, out, sizeof out, NULL, 0), 0);
    webhook_request r = {id, ts, str(out), body};
    CHECK_EQ_STR(verify(r), "ok");
    r.body.len = 1; /* "a" alone must not match */
    CHECK_EQ_STR(verify(r), "no matching signature");
}

TEST(any_of_several_signatures_passes) {
    CHECK_EQ_STR(verify(request(MSG_ID, TIMESTAMP,
                                "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= " SIGNATURE, BODY)),
                 "ok");
    CHECK_EQ_STR(verify(request(MSG_ID, TIMESTAMP, SIGNATURE " v1,Zm9v", BODY)), "ok");
    /* Other versions and garbage entries are ignored, not fatal. */
    CHECK_EQ_STR(verify(request(MSG_ID, TIMESTAMP, "v1a,xyz v2,abc !!! " SIGNATURE, BODY)), "ok");
    CHECK_EQ_STR(verify(request(MSG_ID, TIMESTAMP, "  " SIGNATURE "  ", BODY)), "ok");
}

TEST(other_versions_do_not_count) {
    CHECK_EQ_STR(verify(request(MSG_ID, TIMESTAMP,
                                "v1a,BkZQjQVTkF8O5zn6zILMsnQ9LyFQiO2Mnr54zNzbjGQ=", BODY)),
                 "no matching signature (webhook-signature has no v1 entry)");
    CHECK_EQ_STR(verify(request(MSG_ID, TIMESTAMP,
                                "v2,BkZQjQVTkF8O5zn6zILMsnQ9LyFQiO2Mnr54zNzbjGQ=", BODY)),
                 "no matching signature (webhook-signature has no v1 entry)");
}

TEST(truncated_signature_fails) {
    CHECK_EQ_STR(verify(request(MSG_ID, TIMESTAMP, "v1,BkZQjQVTkF8O5zn6zILMsnQ9LyFQiO2Mnr54", BODY)),
                 "no matching signature");
    CHECK_EQ_STR(verify(request(MSG_ID, TIMESTAMP, "v1,", BODY)), "no matching signature");
}

TEST(old_and_future_timestamps_rejected) {
    webhook_request r = request(MSG_ID, TIMESTAMP, SIGNATURE, BODY);
    CHECK_EQ_STR(verify_with(SECRET, r, 1795000412), "timestamp outside tolerance (412 s old)");
    CHECK_EQ_STR(verify_with(SECRET, r, 1794999000),
                 "timestamp outside tolerance (1000 s in the future)");
    /* The edges are inside. */
    CHECK_EQ_STR(verify_with(SECRET, r, 1795000300), "ok");
    CHECK_EQ_STR(verify_with(SECRET, r, 1794999700), "ok");
    /* The timestamp is checked before the signature: a stale replay says so. */
    r.signature = str("v1,AAAA");
    CHECK_EQ_STR(verify_with(SECRET, r, 1795000412), "timestamp outside tolerance (412 s old)");
}

TEST(custom_tolerance) {
    webhook_request r = request(MSG_ID, TIMESTAMP, SIGNATURE, BODY);
    webhook_opts o = {1795000030, 10};
    char err[128];
    CHECK_EQ_INT(webhook_verify(SECRET, strlen(SECRET), &r, &o, err, sizeof err), -1);
    CHECK_EQ_STR(err, "timestamp outside tolerance (30 s old)");
    o.tolerance = 30;
    CHECK_EQ_INT(webhook_verify(SECRET, strlen(SECRET), &r, &o, err, sizeof err), 0);
}

TEST(missing_headers_named) {
    CHECK_EQ_STR(verify(request(NULL, TIMESTAMP, SIGNATURE, BODY)), "missing webhook-id header");
    CHECK_EQ_STR(verify(request("", TIMESTAMP, SIGNATURE, BODY)), "missing webhook-id header");
    CHECK_EQ_STR(verify(request(MSG_ID, NULL, SIGNATURE, BODY)),
                 "missing webhook-timestamp header");
    CHECK_EQ_STR(verify(request(MSG_ID, TIMESTAMP, NULL, BODY)),
                 "missing webhook-signature header");
}

TEST(bad_timestamps_named) {
    const char *bad[] = {"17950000x0", "-1795000000", "1795000000.5", " 1795000000",
                         "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_STR(verify(request(MSG_ID, bad[i], SIGNATURE, BODY)),
                     "bad webhook-timestamp header (expected unix seconds)");
}

TEST(bad_secrets_named) {
    const char *bad[] = {"syt6DV+eF3456CfbbrZyQdPtiDLoA5+p", "whsec_", "whsec_not base64!",
                         "WHSEC_syt6DV+eF3456CfbbrZyQdPtiDLoA5+p", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_STR(verify_with(bad[i], request(MSG_ID, TIMESTAMP, SIGNATURE, BODY), NOW),
                     "bad secret (expected whsec_ followed by base64)");
}

TEST(secret_without_padding_accepted) {
    /* The key "fox-test-key1" written with and without its "==" padding is the same key. */
    const char *padded = "whsec_Zm94LXRlc3Qta2V5MQ==";
    char out[128];
    webhook_str id = str(MSG_ID), ts = str(TIMESTAMP), body = str(BODY);
    CHECK_EQ_INT(webhook_sign(padded, strlen(padded), &id, &ts, &body, out, sizeof out, NULL, 0), 0);
    CHECK_EQ_STR(verify_with("whsec_Zm94LXRlc3Qta2V5MQ", request(MSG_ID, TIMESTAMP, out, BODY), NOW),
                 "ok");
}

TEST(null_opts_uses_wall_clock) {
    /* 2001-09-09 is far outside the default 300 s around any real wall clock. */
    webhook_request r = request(MSG_ID, "1000000000", SIGNATURE, BODY);
    char err[128];
    CHECK_EQ_INT(webhook_verify(SECRET, strlen(SECRET), &r, NULL, err, sizeof err), -1);
    CHECK(strstr(err, "s old)") != NULL);
}

int main(void) {
    return RUN_TESTS();
}
