/* log.c: line format, escaping (one line per event, always), redaction, levels. */
#include "fox/log.h"
#include "harness.h"

#include <stdlib.h>
#include <unistd.h>

static char captured[65536];
static size_t captured_len;
static int captured_lines;

static void capture(const char *line, size_t len, void *ud) {
    (void)ud;
    if (captured_len + len < sizeof captured) {
        memcpy(captured + captured_len, line, len);
        captured_len += len;
        captured[captured_len] = '\0';
    }
    captured_lines++;
}

static void reset(log_format format, log_level level) {
    captured_len = 0;
    captured[0] = '\0';
    captured_lines = 0;
    log_set_sink(capture, NULL);
    log_set_format(format);
    log_set_level(level);
    log_redact_clear();
}

/* The captured text after the "ts=... " prefix (logfmt) so tests compare the rest. */
static const char *after_ts(void) {
    const char *p = strchr(captured, ' ');
    return p ? p + 1 : captured;
}

static int count_char(const char *s, size_t n, char c) {
    int k = 0;
    for (size_t i = 0; i < n; i++) k += s[i] == c;
    return k;
}

TEST(logfmt_line_shape) {
    reset(LOG_FORMAT_LOGFMT, LOG_LEVEL_INFO);
    const char *kv[] = {"incident", "INC-12", "duration_ms", "3"};
    log_event(LOG_LEVEL_INFO, "webhook.accepted", kv, LOG_PAIRS(kv));
    CHECK_EQ_INT(captured_lines, 1);
    /* ts=2026-11-27T00:00:00.123Z */
    CHECK(strncmp(captured, "ts=", 3) == 0);
    CHECK(captured_len > 28 && captured[13] == 'T' && captured[26] == 'Z');
    CHECK_EQ_STR(after_ts(), "level=info event=webhook.accepted incident=INC-12 duration_ms=3\n");
}

TEST(json_line_shape) {
    reset(LOG_FORMAT_JSON, LOG_LEVEL_INFO);
    log_field f[] = {{"incident", "INC-12", 6, LOG_FIELD_STRING},
                     {"duration_ms", "3", 1, LOG_FIELD_RAW},
                     {"ok", "true", 4, LOG_FIELD_RAW},
                     {"bad_raw", "12abc", 5, LOG_FIELD_RAW}};
    log_emit(LOG_LEVEL_WARN, "webhook.accepted", f, 4);
    CHECK(strncmp(captured, "{\"ts\":\"", 7) == 0);
    const char *rest = strstr(captured, "\"level\"");
    CHECK(rest != NULL);
    CHECK_EQ_STR(rest, "\"level\":\"warn\",\"event\":\"webhook.accepted\",\"incident\":\"INC-12\","
                       "\"duration_ms\":3,\"ok\":true,\"bad_raw\":\"12abc\"}\n");
}

TEST(logfmt_quotes_and_escapes) {
    reset(LOG_FORMAT_LOGFMT, LOG_LEVEL_DEBUG);
    const char *kv[] = {"a", "two words", "b", "say \"hi\"", "c", "x=y", "d", "",
                        "e", "back\\slash", "f", "tab\there"};
    log_event(LOG_LEVEL_INFO, "t", kv, LOG_PAIRS(kv));
    CHECK_EQ_STR(after_ts(), "level=info event=t a=\"two words\" b=\"say \\\"hi\\\"\" c=\"x=y\" "
                             "d=\"\" e=back\\slash f=\"tab\\there\"\n");
}

TEST(newlines_never_split_an_event) {
    const log_format formats[] = {LOG_FORMAT_LOGFMT, LOG_FORMAT_JSON};
    for (int i = 0; i < 2; i++) {
        reset(formats[i], LOG_LEVEL_INFO);
        const char *kv[] = {"msg", "line one\nline two\r\nline three\x1b[31m", "multi\nkey", "v"};
        log_event(LOG_LEVEL_ERROR, "event\nwith newline", kv, LOG_PAIRS(kv));
        log_msgf(LOG_LEVEL_ERROR, "traceback", "stack:\n\t[C]: in ?\n\tfoo.lua:3: in main");
        CHECK_EQ_INT(captured_lines, 2);
        CHECK_EQ_INT(count_char(captured, captured_len, '\n'), 2);
        CHECK(strchr(captured, '\r') == NULL);
        CHECK(strchr(captured, '\x1b') == NULL);
        CHECK(strstr(captured, "line one\\nline two\\r\\nline three\\u001b[31m") != NULL);
    }
}

TEST(invalid_utf8_replaced_valid_kept) {
    reset(LOG_FORMAT_JSON, LOG_LEVEL_INFO);
    const char *kv[] = {"name", "caf\xc3\xa9 \xff\xfe end"};
    log_event(LOG_LEVEL_INFO, "t", kv, LOG_PAIRS(kv));
    CHECK(strstr(captured, "\"name\":\"caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd end\"") != NULL);
}

TEST(keys_sanitised_and_reserved_prefixed) {
    reset(LOG_FORMAT_LOGFMT, LOG_LEVEL_INFO);
    const char *kv[] = {"level", "fake", "a key=x", "1", "", "empty"};
    log_event(LOG_LEVEL_INFO, "t", kv, LOG_PAIRS(kv));
    CHECK_EQ_STR(after_ts(), "level=info event=t _level=fake a_key_x=1 _=empty\n");
}

TEST(null_value_skips_pair) {
    reset(LOG_FORMAT_LOGFMT, LOG_LEVEL_INFO);
    const char *kv[] = {"a", NULL, "b", "2"};
    log_event(LOG_LEVEL_INFO, "t", kv, LOG_PAIRS(kv));
    CHECK_EQ_STR(after_ts(), "level=info event=t b=2\n");
}

TEST(levels_filter) {
    reset(LOG_FORMAT_LOGFMT, LOG_LEVEL_WARN);
    log_msgf(LOG_LEVEL_DEBUG, "d", "x");
    log_msgf(LOG_LEVEL_INFO, "i", "x");
    log_msgf(LOG_LEVEL_WARN, "w", "x");
    log_msgf(LOG_LEVEL_ERROR, "e", "x");
    CHECK_EQ_INT(captured_lines, 2);
    CHECK(strstr(captured, "event=w") && strstr(captured, "event=e"));
    CHECK(!log_enabled(LOG_LEVEL_INFO));
    CHECK(log_enabled(LOG_LEVEL_ERROR));
    log_level l;
    CHECK_EQ_INT(log_parse_level("WARNING", &l), 0);
    CHECK_EQ_INT(l, LOG_LEVEL_WARN);
    CHECK_EQ_INT(log_parse_level("loud", &l), -1);
}

TEST(msgf_formats_long_messages) {
    reset(LOG_FORMAT_LOGFMT, LOG_LEVEL_INFO);
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    log_msgf(LOG_LEVEL_INFO, "t", "n=%d %s", 42, big);
    CHECK(strstr(captured, "msg=\"n=42 xxxx") != NULL);
    CHECK(captured_len > 3000);
}

TEST(redaction_everywhere_in_the_line) {
    static const char secret[] = "sk_live_7f3a9b";
    int added = 0;
    reset(LOG_FORMAT_LOGFMT, LOG_LEVEL_INFO);
    CHECK_EQ_INT(log_redact_add(secret, strlen(secret), &added), 0);
    CHECK_EQ_INT(added, 1);
    const char *kv[] = {"auth", "Bearer sk_live_7f3a9b", "url", "https://x/?key=sk_live_7f3a9b&a=1",
                        "sk_live_7f3a9b", "as a key"};
    log_event(LOG_LEVEL_INFO, "leak.sk_live_7f3a9b", kv, LOG_PAIRS(kv));
    log_msgf(LOG_LEVEL_ERROR, "t", "token %s failed", secret);
    CHECK(strstr(captured, secret) == NULL);
    CHECK(strstr(captured, "auth=\"Bearer [REDACTED]\"") != NULL);
    CHECK(strstr(captured, "url=\"https://x/?key=[REDACTED]&a=1\"") != NULL);
    CHECK(strstr(captured, " [REDACTED]=\"as a key\"") != NULL);
    CHECK(strstr(captured, "event=leak.[REDACTED] ") != NULL);
    CHECK(strstr(captured, "msg=\"token [REDACTED] failed\"") != NULL);
}

TEST(redaction_survives_escaping) {
    /* A secret with characters that escaping changes is still caught. */
    static const char secret[] = "pa\"ss\nword";
    reset(LOG_FORMAT_JSON, LOG_LEVEL_INFO);
    log_redact_add(secret, strlen(secret), NULL);
    const char *kv[] = {"v", "x pa\"ss\nword y"};
    log_event(LOG_LEVEL_INFO, "t", kv, LOG_PAIRS(kv));
    CHECK(strstr(captured, "\"v\":\"x [REDACTED] y\"") != NULL);
    CHECK(strstr(captured, "pa\\\"ss") == NULL);
}

TEST(redaction_longest_first_and_short_ignored) {
    int added = -1;
    reset(LOG_FORMAT_LOGFMT, LOG_LEVEL_INFO);
    CHECK_EQ_INT(log_redact_add("abc12", 5, &added), 0); /* too short: ignored */
    CHECK_EQ_INT(added, 0);
    log_redact_add("token123", 8, NULL);
    log_redact_add("token123456789", 14, NULL);
    log_redact_add("token123", 8, &added); /* duplicate */
    CHECK_EQ_INT(added, 0);
    size_t n = 0;
    char *out = log_redact_string("a token123456789 b token123 c abc12", 35, &n);
    CHECK_EQ_STR(out, "a [REDACTED] b [REDACTED] c abc12");
    CHECK_EQ_INT(n, strlen(out));
    free(out);
    CHECK(log_redact_contains("xxtoken123", 10));
    CHECK(!log_redact_contains("xxtoken12", 9));
}

TEST(redact_string_binary_safe) {
    reset(LOG_FORMAT_LOGFMT, LOG_LEVEL_INFO);
    log_redact_add("s3cr3t!", 7, NULL);
    const char in[] = "a\0s3cr3t!\0b";
    size_t n = 0;
    char *out = log_redact_string(in, sizeof in - 1, &n);
    CHECK_EQ_INT(n, 1 + 1 + 10 + 1 + 1);
    CHECK(memcmp(out, "a\0[REDACTED]\0b", n) == 0);
    free(out);
}

TEST(long_values_cut_after_redaction) {
    reset(LOG_FORMAT_LOGFMT, LOG_LEVEL_INFO);
    size_t n = LOG_VALUE_MAX + 100;
    char *big = malloc(n + 1);
    memset(big, 'a', n);
    /* A secret straddling the cut point must not leak its first half. */
    memcpy(big + LOG_VALUE_MAX - 4, "SECRETVALUE", 11);
    big[n] = '\0';
    log_redact_add("SECRETVALUE", 11, NULL);
    const char *kv[] = {"body", big};
    log_event(LOG_LEVEL_INFO, "t", kv, LOG_PAIRS(kv));
    CHECK(strstr(captured, "SECR") == NULL);
    /* Redacted first (the marker starts where the secret did), then cut. */
    CHECK(strstr(captured, "aaaa[RED...[truncated ") != NULL);
    CHECK(captured_len < LOG_VALUE_MAX + 200);
    CHECK_EQ_INT(captured_lines, 1);
    free(big);
}

TEST(stderr_is_the_default_sink) {
    /* Route fd 2 into a pipe to see what log_event really writes there. */
    int fds[2];
    CHECK_EQ_INT(pipe(fds), 0);
    int saved = dup(2);
    dup2(fds[1], 2);
    log_set_sink(NULL, NULL);
    log_set_format(LOG_FORMAT_LOGFMT);
    log_set_level(LOG_LEVEL_INFO);
    const char *kv[] = {"k", "v"};
    log_event(LOG_LEVEL_INFO, "to.stderr", kv, LOG_PAIRS(kv));
    dup2(saved, 2);
    close(saved);
    close(fds[1]);
    char buf[512];
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    CHECK(n > 0);
    buf[n > 0 ? n : 0] = '\0';
    CHECK(strstr(buf, "level=info event=to.stderr k=v\n") != NULL);
}

TEST(environment_configures_and_bad_values_are_reported) {
    reset(LOG_FORMAT_LOGFMT, LOG_LEVEL_INFO);
    setenv("FOX_LOG_LEVEL", "Warn", 1);
    setenv("FOX_LOG_FORMAT", "json", 1);
    log_configure_from_env();
    CHECK_EQ_INT(log_get_level(), LOG_LEVEL_WARN);
    CHECK_EQ_INT(log_get_format(), LOG_FORMAT_JSON);
    CHECK_EQ_INT(captured_lines, 0);
    setenv("FOX_LOG_LEVEL", "loud", 1);
    setenv("FOX_LOG_FORMAT", "xml", 1);
    log_configure_from_env();
    CHECK_EQ_INT(log_get_level(), LOG_LEVEL_INFO);
    CHECK_EQ_INT(log_get_format(), LOG_FORMAT_LOGFMT);
    CHECK_EQ_INT(captured_lines, 2);
    CHECK(strstr(captured, "unknown FOX_LOG_LEVEL 'loud'") != NULL);
    CHECK(strstr(captured, "unknown FOX_LOG_FORMAT 'xml'") != NULL);
    unsetenv("FOX_LOG_LEVEL");
    unsetenv("FOX_LOG_FORMAT");
}

int main(void) {
    int rc = RUN_TESTS();
    log_redact_clear();
    return rc;
}
