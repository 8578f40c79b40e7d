#ifndef FOX_LOG_H
#define FOX_LOG_H
/* Levelled structured logging: one line per event on stderr, never more.
 *
 *   logfmt (default):  ts=2026-11-27T00:00:00.123Z level=info event=webhook.accepted incident=INC-12
 *   json lines:        {"ts":"2026-11-27T00:00:00.123Z","level":"info","event":"webhook.accepted",...}
 *
 * FOX_LOG_LEVEL (debug|info|warn|error, default info) and FOX_LOG_FORMAT (logfmt|json,
 * default logfmt) are read on first use; log_set_level/log_set_format override them.
 *
 * Redaction: secrets registered with log_redact_add are replaced by "[REDACTED]" in
 * every value before it is escaped, then again in the finished line, so a secret never
 * reaches the output. Other modules scrub their own text (error messages, REPL echo)
 * with log_redact_string.
 *
 * Values are escaped so that a line never breaks: in logfmt a value with a space, '=',
 * '"', a control character or nothing at all is quoted with \" \\ \n \r \t \u00XX
 * escapes; invalid UTF-8 becomes U+FFFD. A value longer than LOG_VALUE_MAX bytes is cut
 * (after redaction) and marked. Field keys "ts", "level", "event" given by callers are
 * written as "_ts", "_level", "_event" so they cannot shadow the header. */
#include <stddef.h>

typedef enum log_level {
    LOG_LEVEL_DEBUG = 0,
    LOG_LEVEL_INFO = 1,
    LOG_LEVEL_WARN = 2,
    LOG_LEVEL_ERROR = 3,
} log_level;

typedef enum log_format {
    LOG_FORMAT_LOGFMT = 0,
    LOG_FORMAT_JSON = 1,
} log_format;

#define LOG_VALUE_MAX 16384   /* bytes of one value kept before it is cut */
#define LOG_REDACT_MIN 6      /* shorter secrets are ignored (they would match noise) */
#define LOG_REDACT_MAX 256    /* secrets the registry holds */
#define LOG_REDACTED "[REDACTED]"

/* One field. kind LOG_FIELD_RAW marks a number or boolean literal (json: unquoted);
 * its text must be a valid JSON literal, else it is written as a string. */
typedef enum log_field_kind { LOG_FIELD_STRING = 0, LOG_FIELD_RAW = 1 } log_field_kind;
typedef struct log_field {
    const char *key;    /* NUL-terminated; characters other than [A-Za-z0-9_.-] become _ */
    const char *value;  /* value bytes (NULL: the field is skipped) */
    size_t len;         /* length of value */
    log_field_kind kind;
} log_field;

/* Receives each finished line (with its '\n'); replaces the write to stderr. */
typedef void (*log_sink_fn)(const char *line, size_t len, void *ud);

/* Writes one event if level is enabled. kv holds 2*npairs NUL-terminated strings:
 * key0, value0, key1, value1, ... (a NULL value skips its pair). Copies nothing it is
 * given beyond the call. Example:
 *   const char *kv[] = {"incident", id, "status", "accepted"};
 *   log_event(LOG_LEVEL_INFO, "webhook.accepted", kv, LOG_PAIRS(kv)); */
void log_event(log_level level, const char *event, const char *const kv[], size_t npairs);
#define LOG_PAIRS(kv) (sizeof(kv) / sizeof((kv)[0]) / 2)
/* Writes one event with typed fields (numbers unquoted in json). */
void log_emit(log_level level, const char *event, const log_field *fields, size_t nfields);
/* printf-style: writes event with the formatted text as its msg= field. */
void log_msgf(log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 1 when events at level are written (skip building expensive fields otherwise). */
int log_enabled(log_level level);

/* Threshold: events below it are dropped. */
void log_set_level(log_level level);
log_level log_get_level(void);
void log_set_format(log_format format);
log_format log_get_format(void);
/* Parses "debug"|"info"|"warn"|"warning"|"error" (any case). Returns 0, or -1. */
int log_parse_level(const char *name, log_level *out);
/* Parses "logfmt"|"json" (any case). Returns 0, or -1. */
int log_parse_format(const char *name, log_format *out);
/* "debug", "info", "warn" or "error". */
const char *log_level_name(log_level level);
/* Re-reads FOX_LOG_LEVEL and FOX_LOG_FORMAT (unknown values: defaults, and one warning
 * event). Called lazily by the first event; call again after changing the environment. */
void log_configure_from_env(void);
/* Sends lines to fn instead of stderr (fn NULL: back to stderr). For tests and the REPL. */
void log_set_sink(log_sink_fn fn, void *ud);

/* Registers secret (len bytes, copied) for redaction. Secrets shorter than
 * LOG_REDACT_MIN are ignored (returns 0, *added 0). Returns 0 (sets *added to 1 when it
 * is new; added may be NULL), or -1 when out of memory or the registry is full. */
int log_redact_add(const char *secret, size_t len, int *added);
/* 1 when in contains any registered secret. */
int log_redact_contains(const char *in, size_t len);
/* Returns a malloc'd NUL-terminated copy of in with every registered secret replaced by
 * "[REDACTED]" (longest secrets first); *outlen gets its length (outlen may be NULL).
 * The caller frees it. Returns NULL when out of memory. */
char *log_redact_string(const char *in, size_t len, size_t *outlen);
/* Forgets every registered secret (wiping their copies). For tests and shutdown. */
void log_redact_clear(void);
#endif
