/* Levelled structured logging with redaction (see log.h). Single-threaded, like the
 * rest of the process. */
#include "fox/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* ---- configuration ---------------------------------------------------------------- */

static log_level log_threshold = LOG_LEVEL_INFO;
static log_format log_fmt = LOG_FORMAT_LOGFMT;
static int log_configured;
static log_sink_fn log_sink;
static void *log_sink_ud;
static int log_in_emit; /* a sink that logs would recurse: its events are dropped */

static const char *const log_level_names[] = {"debug", "info", "warn", "error"};

const char *log_level_name(log_level level) {
    if (level < LOG_LEVEL_DEBUG || level > LOG_LEVEL_ERROR) return "error";
    return log_level_names[level];
}

int log_parse_level(const char *name, log_level *out) {
    if (!name) return -1;
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, log_level_names[i]) == 0) {
            *out = (log_level)i;
            return 0;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        *out = LOG_LEVEL_WARN;
        return 0;
    }
    return -1;
}

int log_parse_format(const char *name, log_format *out) {
    if (!name) return -1;
    if (strcasecmp(name, "logfmt") == 0) {
        *out = LOG_FORMAT_LOGFMT;
        return 0;
    }
    if (strcasecmp(name, "json") == 0) {
        *out = LOG_FORMAT_JSON;
        return 0;
    }
    return -1;
}

void log_configure_from_env(void) {
    const char *lvl = getenv("FOX_LOG_LEVEL"), *fmt = getenv("FOX_LOG_FORMAT");
    int bad_level = 0, bad_format = 0;
    log_configured = 1;
    log_threshold = LOG_LEVEL_INFO;
    log_fmt = LOG_FORMAT_LOGFMT;
    if (lvl && *lvl && log_parse_level(lvl, &log_threshold) != 0) bad_level = 1;
    if (fmt && *fmt && log_parse_format(fmt, &log_fmt) != 0) bad_format = 1;
    if (bad_level)
        log_msgf(LOG_LEVEL_WARN, "log.config",
                 "unknown FOX_LOG_LEVEL '%.32s' (expected debug, info, warn or error); using info",
                 lvl);
    if (bad_format)
        log_msgf(LOG_LEVEL_WARN, "log.config",
                 "unknown FOX_LOG_FORMAT '%.32s' (expected logfmt or json); using logfmt", fmt);
}

static void log_ensure_configured(void) {
    if (!log_configured) log_configure_from_env();
}

void log_set_level(log_level level) {
    log_ensure_configured();
    if (level >= LOG_LEVEL_DEBUG && level <= LOG_LEVEL_ERROR) log_threshold = level;
}

log_level log_get_level(void) {
    log_ensure_configured();
    return log_threshold;
}

void log_set_format(log_format format) {
    log_ensure_configured();
    if (format == LOG_FORMAT_LOGFMT || format == LOG_FORMAT_JSON) log_fmt = format;
}

log_format log_get_format(void) {
    log_ensure_configured();
    return log_fmt;
}

int log_enabled(log_level level) {
    log_ensure_configured();
    return level >= log_threshold;
}

void log_set_sink(log_sink_fn fn, void *ud) {
    log_sink = fn;
    log_sink_ud = ud;
}

/* ---- a growable buffer with room for a typical line inline -------------------------- */

typedef struct log_buf {
    char *p;
    size_t len, cap;
    int oom;
    char inline_space[1024];
} log_buf;

static void log_buf_init(log_buf *b) {
    b->p = b->inline_space;
    b->len = 0;
    b->cap = sizeof b->inline_space;
    b->oom = 0;
}

static void log_buf_free(log_buf *b) {
    if (b->p != b->inline_space) free(b->p);
    log_buf_init(b);
}

static int log_buf_reserve(log_buf *b, size_t extra) {
    if (b->oom) return -1;
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap;
    while (cap < b->len + extra) cap *= 2;
    char *p = b->p == b->inline_space ? malloc(cap) : realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    if (b->p == b->inline_space) memcpy(p, b->inline_space, b->len);
    b->p = p;
    b->cap = cap;
    return 0;
}

static void log_buf_add(log_buf *b, const void *s, size_t n) {
    if (n == 0 || log_buf_reserve(b, n) != 0) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void log_buf_adds(log_buf *b, const char *s) {
    log_buf_add(b, s, strlen(s));
}

static void log_buf_addc(log_buf *b, char c) {
    log_buf_add(b, &c, 1);
}

/* ---- redaction ---------------------------------------------------------------------- */

typedef struct log_secret {
    char *p;
    size_t len;
} log_secret;

/* Longest first, so a secret that contains another is replaced whole. */
static log_secret log_secrets[LOG_REDACT_MAX];
static size_t log_nsecrets;

int log_redact_add(const char *secret, size_t len, int *added) {
    if (added) *added = 0;
    if (!secret || len < LOG_REDACT_MIN) return 0;
    size_t pos = log_nsecrets;
    for (size_t i = 0; i < log_nsecrets; i++) {
        if (log_secrets[i].len == len && memcmp(log_secrets[i].p, secret, len) == 0) return 0;
        if (log_secrets[i].len < len && pos == log_nsecrets) pos = i;
    }
    if (log_nsecrets == LOG_REDACT_MAX) return -1;
    char *copy = malloc(len);
    if (!copy) return -1;
    memcpy(copy, secret, len);
    memmove(&log_secrets[pos + 1], &log_secrets[pos],
            (log_nsecrets - pos) * sizeof log_secrets[0]);
    log_secrets[pos].p = copy;
    log_secrets[pos].len = len;
    log_nsecrets++;
    if (added) *added = 1;
    return 0;
}

void log_redact_clear(void) {
    for (size_t i = 0; i < log_nsecrets; i++) {
        /* volatile: keep the compiler from dropping the wipe of memory about to be freed */
        volatile char *v = log_secrets[i].p;
        for (size_t j = 0; j < log_secrets[i].len; j++) v[j] = 0;
        free(log_secrets[i].p);
        log_secrets[i].p = NULL;
        log_secrets[i].len = 0;
    }
    log_nsecrets = 0;
}

int log_redact_contains(const char *in, size_t len) {
    for (size_t i = 0; i < log_nsecrets; i++)
        if (log_secrets[i].len <= len && memmem(in, len, log_secrets[i].p, log_secrets[i].len))
            return 1;
    return 0;
}

/* Appends in to out with every occurrence of secret replaced. */
static void log_redact_one(log_buf *out, const char *in, size_t len, const log_secret *s) {
    const char *p = in, *end = in + len;
    while (p < end) {
        const char *hit = memmem(p, (size_t)(end - p), s->p, s->len);
        if (!hit) break;
        log_buf_add(out, p, (size_t)(hit - p));
        log_buf_add(out, LOG_REDACTED, sizeof LOG_REDACTED - 1);
        p = hit + s->len;
    }
    log_buf_add(out, p, (size_t)(end - p));
}

/* Replaces b's content by its redacted form (b keeps ownership). Returns 0 / -1 (oom). */
static int log_redact_buf(log_buf *b) {
    for (size_t i = 0; i < log_nsecrets && !b->oom; i++) {
        const log_secret *s = &log_secrets[i];
        if (s->len > b->len || !memmem(b->p, b->len, s->p, s->len)) continue;
        log_buf next;
        log_buf_init(&next);
        log_redact_one(&next, b->p, b->len, s);
        if (next.oom) {
            log_buf_free(&next);
            b->oom = 1;
            break;
        }
        log_buf_free(b);
        if (next.p == next.inline_space) {
            log_buf_add(b, next.p, next.len);
        } else {
            b->p = next.p;
            b->len = next.len;
            b->cap = next.cap;
        }
    }
    return b->oom ? -1 : 0;
}

char *log_redact_string(const char *in, size_t len, size_t *outlen) {
    log_buf b;
    char *out = NULL;
    log_buf_init(&b);
    log_buf_add(&b, in, len);
    log_redact_buf(&b);
    if (b.oom) goto cleanup;
    out = malloc(b.len + 1);
    if (!out) goto cleanup;
    memcpy(out, b.p, b.len);
    out[b.len] = '\0';
    if (outlen) *outlen = b.len;
cleanup:
    log_buf_free(&b);
    return out;
}

/* ---- escaping ----------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is not valid. */
static size_t log_utf8_len(const unsigned char *p, size_t n) {
    unsigned char c = p[0];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) {
        len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

static const char log_replacement_char[] = "\xEF\xBF\xBD"; /* U+FFFD */

static int log_value_needs_quotes(const char *s, size_t n) {
    if (n == 0) return 1;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == '=' || c == '"' || c == 0x7f) return 1;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t l = log_utf8_len((const unsigned char *)s + i, n - i);
        if (l == 0) return 1;
        i += l;
    }
    return 0;
}

/* Appends s escaped for the inside of a double-quoted string (logfmt and JSON agree). */
static void log_append_escaped(log_buf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t l = log_utf8_len((const unsigned char *)s + i, n - i);
            if (l == 0) {
                log_buf_adds(b, log_replacement_char);
                i++;
            } else {
                log_buf_add(b, s + i, l);
                i += l;
            }
            continue;
        }
        switch (c) {
        case '"': log_buf_adds(b, "\\\""); break;
        case '\\': log_buf_adds(b, "\\\\"); break;
        case '\n': log_buf_adds(b, "\\n"); break;
        case '\r': log_buf_adds(b, "\\r"); break;
        case '\t': log_buf_adds(b, "\\t"); break;
        default:
            if (c < 0x20 || c == 0x7f) {
                char esc[8];
                snprintf(esc, sizeof esc, "\\u%04x", c);
                log_buf_adds(b, esc);
            } else {
                log_buf_addc(b, (char)c);
            }
        }
        i++;
    }
}

/* Appends s as a logfmt value: bare when safe, else quoted and escaped. */
static void log_append_logfmt_value(log_buf *b, const char *s, size_t n, const char *suffix) {
    if (!suffix && !log_value_needs_quotes(s, n)) {
        log_buf_add(b, s, n);
        return;
    }
    log_buf_addc(b, '"');
    log_append_escaped(b, s, n);
    if (suffix) log_buf_adds(b, suffix);
    log_buf_addc(b, '"');
}

static void log_append_key(log_buf *b, const char *key) {
    static const char *const reserved[] = {"ts", "level", "event"};
    if (!key || !*key) {
        log_buf_addc(b, '_');
        return;
    }
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(key, reserved[i]) == 0) {
            log_buf_addc(b, '_');
            break;
        }
    }
    for (const char *k = key; *k; k++) {
        char c = *k;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || c == '-';
        log_buf_addc(b, ok ? c : '_');
    }
}

/* 1 when s is a JSON number, true, false or null. */
static int log_is_json_literal(const char *s, size_t n) {
    size_t i = 0;
    if ((n == 4 && memcmp(s, "true", 4) == 0) || (n == 5 && memcmp(s, "false", 5) == 0) ||
        (n == 4 && memcmp(s, "null", 4) == 0))
        return 1;
    if (i < n && s[i] == '-') i++;
    if (i >= n) return 0;
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    } else {
        return 0;
    }
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || s[i] < '0' || s[i] > '9') return 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= n || s[i] < '0' || s[i] > '9') return 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    }
    return i == n;
}

/* Appends one field (key and value) in the current format. The value is redacted and
 * then cut to LOG_VALUE_MAX, in that order, so a cut never exposes part of a secret. */
static void log_append_field(log_buf *b, const log_field *f) {
    log_buf value;
    const char *v = f->value;
    size_t n = f->len;
    char suffix[64];
    int cut = 0;

    log_buf_init(&value);
    if (log_redact_contains(v, n)) {
        log_buf_add(&value, v, n);
        if (log_redact_buf(&value) != 0) {
            b->oom = 1;
            goto cleanup;
        }
        v = value.p;
        n = value.len;
    }
    if (n > LOG_VALUE_MAX) {
        size_t keep = LOG_VALUE_MAX;
        /* Do not split a UTF-8 sequence. */
        while (keep > 0 && ((unsigned char)v[keep] & 0xC0) == 0x80) keep--;
        snprintf(suffix, sizeof suffix, "...[truncated %zu bytes]", n - keep);
        n = keep;
        cut = 1;
    }
    if (log_fmt == LOG_FORMAT_JSON) {
        log_buf_adds(b, ",\"");
        log_append_key(b, f->key);
        log_buf_adds(b, "\":");
        if (f->kind == LOG_FIELD_RAW && !cut && log_is_json_literal(v, n)) {
            log_buf_add(b, v, n);
        } else {
            log_buf_addc(b, '"');
            log_append_escaped(b, v, n);
            if (cut) log_buf_adds(b, suffix);
            log_buf_addc(b, '"');
        }
    } else {
        log_buf_addc(b, ' ');
        log_append_key(b, f->key);
        log_buf_addc(b, '=');
        log_append_logfmt_value(b, v, n, cut ? suffix : NULL);
    }
cleanup:
    log_buf_free(&value);
}

static void log_append_timestamp(log_buf *b) {
    struct timespec ts;
    struct tm tm;
    char text[64];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(text + n, sizeof text - n, ".%03ldZ", ts.tv_nsec / 1000000L);
    log_buf_adds(b, text);
}

static void log_write_line(const char *line, size_t len) {
    if (log_sink) {
        log_sink(line, len, log_sink_ud);
        return;
    }
    while (len > 0) {
        ssize_t w = write(STDERR_FILENO, line, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return; /* nowhere left to report it */
        }
        line += w;
        len -= (size_t)w;
    }
}

/* ---- events ------------------------------------------------------------------------- */

void log_emit(log_level level, const char *event, const log_field *fields, size_t nfields) {
    log_buf b;
    if (!log_enabled(level) || log_in_emit) return;
    log_in_emit = 1;
    log_buf_init(&b);
    if (!event) event = "";

    if (log_fmt == LOG_FORMAT_JSON) {
        log_buf_adds(&b, "{\"ts\":\"");
        log_append_timestamp(&b);
        log_buf_adds(&b, "\",\"level\":\"");
        log_buf_adds(&b, log_level_name(level));
        log_buf_adds(&b, "\",\"event\":\"");
        log_append_escaped(&b, event, strlen(event));
        log_buf_addc(&b, '"');
    } else {
        log_buf_adds(&b, "ts=");
        log_append_timestamp(&b);
        log_buf_adds(&b, " level=");
        log_buf_adds(&b, log_level_name(level));
        log_buf_adds(&b, " event=");
        log_append_logfmt_value(&b, event, strlen(event), NULL);
    }
    for (size_t i = 0; i < nfields; i++)
        if (fields[i].value) log_append_field(&b, &fields[i]);
    if (log_fmt == LOG_FORMAT_JSON) log_buf_addc(&b, '}');
    log_buf_addc(&b, '\n');
    /* Event names and keys were not redacted field by field; the whole line is. */
    log_redact_buf(&b);
    if (b.oom) {
        static const char fallback[] = "level=error event=log.dropped reason=out_of_memory\n";
        log_write_line(fallback, sizeof fallback - 1);
    } else {
        log_write_line(b.p, b.len);
    }
    log_buf_free(&b);
    log_in_emit = 0;
}

void log_event(log_level level, const char *event, const char *const kv[], size_t npairs) {
    log_field stack_fields[16];
    log_field *fields = stack_fields;
    if (!log_enabled(level)) return;
    if (npairs > 16) {
        fields = malloc(npairs * sizeof *fields);
        if (!fields) {
            fields = stack_fields;
            npairs = 16;
        }
    }
    for (size_t i = 0; i < npairs; i++) {
        fields[i].key = kv[2 * i];
        fields[i].value = kv[2 * i + 1];
        fields[i].len = kv[2 * i + 1] ? strlen(kv[2 * i + 1]) : 0;
        fields[i].kind = LOG_FIELD_STRING;
    }
    log_emit(level, event, fields, npairs);
    if (fields != stack_fields) free(fields);
}

void log_msgf(log_level level, const char *event, const char *fmt, ...) {
    char small[1024];
    char *msg = small;
    va_list ap;
    if (!log_enabled(level)) return;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof small) {
        msg = malloc((size_t)n + 1);
        if (msg) {
            va_start(ap, fmt);
            vsnprintf(msg, (size_t)n + 1, fmt, ap);
            va_end(ap);
        } else {
            msg = small;
            n = (int)strlen(small);
        }
    }
    log_field f = {"msg", msg, (size_t)n, LOG_FIELD_STRING};
    log_emit(level, event, &f, 1);
    if (msg != small) free(msg);
}
