/* Envoy-style HTTP access logs: the format is parsed once at open into an op list; each entry
 * is rendered straight into its worker's buffer (no allocation, no lock) and buffers leave with
 * write(2) in whole lines, so several workers and several logs can share one file or pipe. */
#include "proxy/http/access_log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef enum {
    OP_TEXT,
    OP_START_TIME,
    OP_REQ,
    OP_RESP,
    OP_PROTOCOL,
    OP_RESPONSE_CODE,
    OP_RESPONSE_FLAGS,
    OP_BYTES_RECEIVED,
    OP_BYTES_SENT,
    OP_DURATION,
    OP_REQUEST_DURATION,
    OP_RESPONSE_DURATION,
    OP_UPSTREAM_HOST,
    OP_UPSTREAM_CLUSTER,
    OP_ROUTE_NAME,
    OP_DOWNSTREAM_REMOTE,
    OP_DOWNSTREAM_LOCAL,
    OP_DOWNSTREAM_REMOTE_NO_PORT,
    OP_DOWNSTREAM_LOCAL_NO_PORT,
    OP_HOSTNAME,
    OP_PEER_URI_SAN,
    OP_TLS_VERSION,
    OP_TLS_CIPHER,
    OP_SERVER_NAME,
    OP_NO_DATA, /* a command Envoy knows whose data the entry does not carry yet: "-" */
} op_kind_t;

enum { ARG_NONE, ARG_OPTIONAL, ARG_REQUIRED };

static const struct command {
    const char *name;
    op_kind_t kind;
    int arg;
} commands[] = {
    {"START_TIME", OP_START_TIME, ARG_OPTIONAL},
    {"REQ", OP_REQ, ARG_REQUIRED},
    {"RESP", OP_RESP, ARG_REQUIRED},
    {"PROTOCOL", OP_PROTOCOL, ARG_NONE},
    {"RESPONSE_CODE", OP_RESPONSE_CODE, ARG_NONE},
    {"RESPONSE_FLAGS", OP_RESPONSE_FLAGS, ARG_NONE},
    {"BYTES_RECEIVED", OP_BYTES_RECEIVED, ARG_NONE},
    {"BYTES_SENT", OP_BYTES_SENT, ARG_NONE},
    {"DURATION", OP_DURATION, ARG_NONE},
    {"REQUEST_DURATION", OP_REQUEST_DURATION, ARG_NONE},
    {"RESPONSE_DURATION", OP_RESPONSE_DURATION, ARG_NONE},
    {"UPSTREAM_HOST", OP_UPSTREAM_HOST, ARG_NONE},
    {"UPSTREAM_CLUSTER", OP_UPSTREAM_CLUSTER, ARG_NONE},
    {"UPSTREAM_CLUSTER_RAW", OP_UPSTREAM_CLUSTER, ARG_NONE},
    {"ROUTE_NAME", OP_ROUTE_NAME, ARG_NONE},
    {"DOWNSTREAM_REMOTE_ADDRESS", OP_DOWNSTREAM_REMOTE, ARG_NONE},
    {"DOWNSTREAM_LOCAL_ADDRESS", OP_DOWNSTREAM_LOCAL, ARG_NONE},
    {"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", OP_DOWNSTREAM_REMOTE_NO_PORT, ARG_NONE},
    {"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", OP_DOWNSTREAM_LOCAL_NO_PORT, ARG_NONE},
    {"HOSTNAME", OP_HOSTNAME, ARG_NONE},
    /* In Istio's default format; accepted so that format works, always "-" for now. */
    {"RESPONSE_CODE_DETAILS", OP_NO_DATA, ARG_NONE},
    {"CONNECTION_TERMINATION_DETAILS", OP_NO_DATA, ARG_NONE},
    {"UPSTREAM_TRANSPORT_FAILURE_REASON", OP_NO_DATA, ARG_NONE},
    {"UPSTREAM_LOCAL_ADDRESS", OP_NO_DATA, ARG_NONE},
    {"REQUESTED_SERVER_NAME", OP_SERVER_NAME, ARG_NONE},
    {"DOWNSTREAM_PEER_URI_SAN", OP_PEER_URI_SAN, ARG_NONE},
    {"DOWNSTREAM_TLS_VERSION", OP_TLS_VERSION, ARG_NONE},
    {"DOWNSTREAM_TLS_CIPHER", OP_TLS_CIPHER, ARG_NONE},
};

/* Header names the entry also carries as fields; resolved at parse time so that rendering does
 * no string compares to find them. */
typedef enum {
    NAME_PLAIN,
    NAME_METHOD,
    NAME_PATH,
    NAME_AUTHORITY,
    NAME_REQUEST_ID,
    NAME_UPSTREAM_SERVICE_TIME,
} header_name_t;

typedef struct log_op {
    op_kind_t kind;
    size_t max_len; /* SIZE_MAX: no limit */
    char *arg;      /* literal text, lowercased header name, or START_TIME's format */
    size_t arg_len; /* literal length */
    char *alt;      /* REQ(X?Y): Y, lowercased */
    header_name_t arg_name, alt_name;
} log_op_t;

typedef struct log_format {
    log_op_t *ops;
    size_t n;
} log_format_t;

typedef struct json_field {
    char *key; /* rendered once: "\"key\":" */
    size_t key_len;
    log_format_t fmt;
} json_field_t;

/* Aligned so that two workers' bookkeeping never shares a cache line. */
typedef struct log_buf {
    _Alignas(64) char *data;
    size_t len;
    _Atomic uint64_t dropped;
} log_buf_t;

struct access_log {
    int fd;
    bool own_fd;
    bool any_size_atomic; /* regular file: one write(2) of any size lands whole */
    log_format_t text;
    json_field_t *json;
    size_t n_json;
    char hostname[256];
    unsigned nworkers;
    log_buf_t *bufs;
};

static const char default_format[] =
    "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" "
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "
    "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" "
    "\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

/* ---- parsing (open time) ------------------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static header_name_t header_name(const char *lower)
{
    static const struct {
        const char *name;
        header_name_t kind;
    } known[] = {
        {":method", NAME_METHOD},
        {":path", NAME_PATH},
        {":authority", NAME_AUTHORITY},
        {"x-request-id", NAME_REQUEST_ID},
        {"x-envoy-upstream-service-time", NAME_UPSTREAM_SERVICE_TIME},
    };
    for (size_t i = 0; lower && i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(lower, known[i].name) == 0)
            return known[i].kind;
    return NAME_PLAIN;
}

static char *dup_lower(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        d[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) : s[i];
    d[n] = '\0';
    return d;
}

static void format_free(log_format_t *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->ops[i].arg);
        free(f->ops[i].alt);
    }
    free(f->ops);
    *f = (log_format_t){0};
}

static log_op_t *format_push(log_format_t *f, size_t *cap)
{
    if (f->n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        log_op_t *ops = realloc(f->ops, c * sizeof(*ops));
        if (ops == NULL)
            return NULL;
        f->ops = ops;
        *cap = c;
    }
    log_op_t *op = &f->ops[f->n++];
    *op = (log_op_t){.max_len = SIZE_MAX};
    return op;
}

/* Appends literal text, merging with a preceding literal. */
static int push_text(log_format_t *f, size_t *cap, const char *s, size_t n)
{
    if (n == 0)
        return 0;
    if (f->n && f->ops[f->n - 1].kind == OP_TEXT) {
        log_op_t *op = &f->ops[f->n - 1];
        char *t = realloc(op->arg, op->arg_len + n + 1);
        if (t == NULL)
            return -ENOMEM;
        memcpy(t + op->arg_len, s, n);
        op->arg = t;
        op->arg_len += n;
        t[op->arg_len] = '\0';
        return 0;
    }
    log_op_t *op = format_push(f, cap);
    if (op == NULL || (op->arg = strndup(s, n)) == NULL)
        return -ENOMEM;
    op->kind = OP_TEXT;
    op->arg_len = n;
    return 0;
}

/* One %COMMAND(arg):N% starting at s[0] == '%' (not "%%"). Sets *used to its length. */
static int parse_command(log_format_t *f, size_t *cap, const char *s, size_t *used, char *err,
                         size_t errlen, const char *where)
{
    size_t i = 1;
    while ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_')
        i++;
    size_t name_len = i - 1;
    const struct command *cmd = NULL;
    for (size_t c = 0; c < sizeof(commands) / sizeof(commands[0]); c++) {
        if (strlen(commands[c].name) == name_len && memcmp(commands[c].name, s + 1, name_len) == 0)
            cmd = &commands[c];
    }
    if (cmd == NULL) {
        size_t shown = strcspn(s + 1, "%(: ");
        set_err(err, errlen, "%s: unknown command %%%.*s%% in access log format", where,
                (int)(shown > 64 ? 64 : shown), s + 1);
        return -EINVAL;
    }
    const char *arg = NULL;
    size_t arg_len = 0;
    if (s[i] == '(') {
        const char *close = strchr(s + i, ')');
        if (close == NULL) {
            set_err(err, errlen, "%s: %%%.*s( has no closing parenthesis", where, (int)name_len,
                    s + 1);
            return -EINVAL;
        }
        arg = s + i + 1;
        arg_len = (size_t)(close - arg);
        i = (size_t)(close - s) + 1;
    }
    if ((cmd->arg == ARG_REQUIRED && (arg == NULL || arg_len == 0)) ||
        (cmd->arg == ARG_NONE && arg != NULL)) {
        set_err(err, errlen, "%s: %%%s%% %s an argument", where, cmd->name,
                cmd->arg == ARG_REQUIRED ? "needs" : "takes no");
        return -EINVAL;
    }
    size_t max_len = SIZE_MAX;
    if (s[i] == ':' && s[i + 1] >= '0' && s[i + 1] <= '9') {
        char *end;
        unsigned long long v = strtoull(s + i + 1, &end, 10);
        max_len = v > (unsigned long long)SIZE_MAX / 2 ? SIZE_MAX : (size_t)v;
        i = (size_t)(end - s);
    }
    if (s[i] != '%') {
        set_err(err, errlen, "%s: %%%s%% is not closed with %% in access log format", where,
                cmd->name);
        return -EINVAL;
    }
    log_op_t *op = format_push(f, cap);
    if (op == NULL)
        return -ENOMEM;
    op->kind = cmd->kind;
    op->max_len = max_len;
    if (arg && cmd->kind == OP_START_TIME) {
        if ((op->arg = strndup(arg, arg_len)) == NULL)
            return -ENOMEM;
    } else if (arg) {
        /* REQ(X?Y): header names match case-insensitively, so keep them lowercase. */
        const char *q = memchr(arg, '?', arg_len);
        size_t x_len = q ? (size_t)(q - arg) : arg_len;
        if ((op->arg = dup_lower(arg, x_len)) == NULL)
            return -ENOMEM;
        if (q && (op->alt = dup_lower(q + 1, arg_len - x_len - 1)) == NULL)
            return -ENOMEM;
        op->arg_name = header_name(op->arg);
        op->alt_name = header_name(op->alt);
    }
    *used = i + 1;
    return 0;
}

static int format_parse(const char *s, bool add_newline, log_format_t *f, char *err, size_t errlen,
                        const char *where)
{
    size_t cap = 0;
    *f = (log_format_t){0};
    int rc = 0;
    while (*s && rc == 0) {
        const char *pct = strchr(s, '%');
        size_t lit = pct ? (size_t)(pct - s) : strlen(s);
        rc = push_text(f, &cap, s, lit);
        s += lit;
        if (rc != 0 || *s == '\0')
            break;
        if (s[1] == '%') {
            rc = push_text(f, &cap, "%", 1);
            s += 2;
            continue;
        }
        size_t used = 0;
        rc = parse_command(f, &cap, s, &used, err, errlen, where);
        s += used;
    }
    if (rc == 0 && add_newline &&
        !(f->n && f->ops[f->n - 1].kind == OP_TEXT &&
          f->ops[f->n - 1].arg[f->ops[f->n - 1].arg_len - 1] == '\n'))
        rc = push_text(f, &cap, "\n", 1);
    if (rc != 0) {
        if (rc == -ENOMEM)
            set_err(err, errlen, "%s: out of memory", where);
        format_free(f);
    }
    return rc;
}

/* ---- rendering (worker, per entry) -------------------------------------------------------- */

/* A bounded writer over the free part of a worker buffer; overflow is remembered, not fatal. */
typedef struct out {
    char *p;
    size_t len, cap;
    bool overflow;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
    if (n > o->cap - o->len) {
        n = o->cap - o->len;
        o->overflow = true;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void put_u64(out_t *o, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(o, tmp + i, sizeof(tmp) - i);
}

static void put_i64(out_t *o, int64_t v)
{
    if (v < 0) {
        put(o, "-", 1);
        put_u64(o, (uint64_t)0 - (uint64_t)v);
    } else {
        put_u64(o, (uint64_t)v);
    }
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* JSON string contents: quotes, backslashes and control bytes escaped; valid UTF-8 passes
 * through; a byte that is not valid UTF-8 becomes \u00XX (its Latin-1 reading), so the line is
 * always valid JSON. */
static void put_json_escaped(out_t *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0; /* bytes copied as they are, flushed in one put */
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        size_t ok = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? 1
                    : c >= 0x80                                    ? utf8_len(u + i, n - i)
                                                                   : 0;
        if (ok) {
            i += ok;
            run += ok;
            continue;
        }
        put(o, s + i - run, run);
        run = 0;
        char esc[6] = {'\\', 0};
        size_t elen = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            memcpy(esc, "\\u00", 4);
            put(o, esc, 4);
            esc[0] = hex[c >> 4];
            esc[1] = hex[c & 15];
        }
        put(o, esc, elen);
        i++;
    }
    put(o, s + n - run, run);
}

/* What one command yields for an entry. */
typedef struct value {
    enum { V_NONE, V_STR, V_NUM } type;
    const char *s;
    size_t len;
    int64_t num;
} value_t;

static value_t str_value(const char *s, size_t len)
{
    return s && len ? (value_t){V_STR, s, len, 0} : (value_t){V_NONE, NULL, 0, 0};
}

static value_t cstr_value(const char *s)
{
    return s ? str_value(s, strlen(s)) : (value_t){V_NONE, NULL, 0, 0};
}

static value_t header_value(const http_headers_t *hs, const char *lower)
{
    const http_header_t *h = hs ? http_headers_find(hs, lower) : NULL;
    return h ? (value_t){V_STR, h->value, h->value_len, 0} : (value_t){V_NONE, NULL, 0, 0};
}

static value_t req_value(const access_log_entry_t *e, const char *name, header_name_t kind)
{
    /* The pseudo headers come from the entry: HTTP/1.1 has none on the wire. */
    if (kind == NAME_METHOD && e->method)
        return str_value(e->method, e->method_len);
    if (kind == NAME_PATH && e->path)
        return str_value(e->path, e->path_len);
    if (kind == NAME_AUTHORITY && e->authority)
        return str_value(e->authority, e->authority_len);
    value_t v = header_value(e->request_headers, name);
    if (v.type == V_NONE && kind == NAME_AUTHORITY)
        v = header_value(e->request_headers, "host");
    if (v.type == V_NONE && kind == NAME_REQUEST_ID)
        v = cstr_value(e->request_id);
    return v;
}

/* "ip:port" or "[v6]:port" without the port (and brackets), as Envoy prints it. */
static value_t addr_without_port(const char *a)
{
    if (a == NULL)
        return (value_t){V_NONE, NULL, 0, 0};
    size_t n = strlen(a);
    if (a[0] == '[') {
        const char *close = strchr(a, ']');
        return close ? str_value(a + 1, (size_t)(close - a - 1)) : str_value(a, n);
    }
    const char *colon = strrchr(a, ':');
    return str_value(a, colon ? (size_t)(colon - a) : n);
}

/* Civil date from days since 1970-01-01 (Howard Hinnant's algorithm): no gmtime_r, whose glibc
 * implementation takes the timezone lock. */
static void utc_tm(uint64_t start_us, struct tm *tm)
{
    int64_t secs = (int64_t)(start_us / 1000000);
    int64_t days = secs / 86400, rem = secs % 86400;
    int64_t z = days + 719468;
    int64_t era = z / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned mday = doy - (153 * mp + 2) / 5 + 1;
    unsigned mon = mp < 10 ? mp + 3 : mp - 9;
    int64_t year = (int64_t)yoe + era * 400 + (mon <= 2);
    static const int before_month[] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    *tm = (struct tm){.tm_sec = (int)(rem % 60),
                      .tm_min = (int)(rem / 60 % 60),
                      .tm_hour = (int)(rem / 3600),
                      .tm_mday = (int)mday,
                      .tm_mon = (int)mon - 1,
                      .tm_year = (int)(year - 1900),
                      .tm_wday = (int)((days + 4) % 7), /* 1970-01-01 was a Thursday */
                      .tm_yday = before_month[mon - 1] + (int)mday - 1 + (leap && mon > 2)};
    tm->tm_zone = "UTC";
}

static void put_padded(out_t *o, uint64_t v, int width)
{
    char tmp[24];
    for (int i = width - 1; i >= 0; i--, v /= 10)
        tmp[i] = (char)('0' + v % 10);
    put(o, tmp, (size_t)width);
}

/* The first `digits` digits of the fraction of a second (we keep µs; the rest are zeros). */
static void put_fraction(out_t *o, uint64_t start_us, int digits)
{
    uint64_t us = start_us % 1000000;
    char tmp[9];
    for (int i = 5; i >= 0; i--, us /= 10)
        tmp[i] = (char)('0' + us % 10);
    memset(tmp + 6, '0', 3);
    put(o, tmp, (size_t)digits);
}

/* Envoy's default: 2024-01-02T03:04:05.678Z */
static void put_default_time(out_t *o, uint64_t start_us)
{
    struct tm tm;
    utc_tm(start_us, &tm);
    put_padded(o, (uint64_t)tm.tm_year + 1900, 4);
    put(o, "-", 1);
    put_padded(o, (uint64_t)tm.tm_mon + 1, 2);
    put(o, "-", 1);
    put_padded(o, (uint64_t)tm.tm_mday, 2);
    put(o, "T", 1);
    put_padded(o, (uint64_t)tm.tm_hour, 2);
    put(o, ":", 1);
    put_padded(o, (uint64_t)tm.tm_min, 2);
    put(o, ":", 1);
    put_padded(o, (uint64_t)tm.tm_sec, 2);
    put(o, ".", 1);
    put_fraction(o, start_us, 3);
    put(o, "Z", 1);
}

/* START_TIME(fmt): strftime's conversions in UTC, plus Envoy's %f / %1f..%9f (fraction of a
 * second), %s (epoch seconds) and absl's %E1S..%E9S (seconds with a fraction) and %Ez. */
static void put_custom_time(out_t *o, uint64_t start_us, const char *fmt)
{
    struct tm tm;
    utc_tm(start_us, &tm);
    while (*fmt) {
        const char *pct = strchr(fmt, '%');
        size_t lit = pct ? (size_t)(pct - fmt) : strlen(fmt);
        put(o, fmt, lit);
        fmt += lit;
        if (*fmt == '\0')
            break;
        const char *c = fmt + 1;
        if (*c == 'f' || (*c >= '1' && *c <= '9' && c[1] == 'f')) {
            put_fraction(o, start_us, *c == 'f' ? 9 : *c - '0');
            fmt = c + (*c == 'f' ? 1 : 2);
        } else if (*c == 's') {
            put_u64(o, start_us / 1000000);
            fmt = c + 1;
        } else if (c[0] == 'E' && c[1] >= '1' && c[1] <= '9' && c[2] == 'S') {
            put_padded(o, (uint64_t)tm.tm_sec, 2);
            put(o, ".", 1);
            put_fraction(o, start_us, c[1] - '0');
            fmt = c + 3;
        } else if (c[0] == 'E' && c[1] == 'z') {
            put(o, "+00:00", 6);
            fmt = c + 2;
        } else if (*c == '\0') {
            put(o, "%", 1);
            fmt = c;
        } else {
            /* One conversion, with its E/O modifier, through strftime. */
            char spec[4] = {'%', c[0], 0, 0};
            if ((c[0] == 'E' || c[0] == 'O') && c[1])
                spec[2] = c[1];
            char tmp[128];
            size_t n = strftime(tmp, sizeof(tmp), spec, &tm);
            put(o, tmp, n);
            fmt = c + strlen(spec) - 1;
        }
    }
}

/* The value of command op; scratch holds rendered numbers and times. */
static value_t op_value(const access_log_t *log, const log_op_t *op, const access_log_entry_t *e,
                        out_t *scratch)
{
    switch (op->kind) {
    case OP_START_TIME:
        if (op->arg)
            put_custom_time(scratch, e->start_us, op->arg);
        else
            put_default_time(scratch, e->start_us);
        return str_value(scratch->p, scratch->len);
    case OP_REQ: {
        value_t v = req_value(e, op->arg, op->arg_name);
        return v.type == V_NONE && op->alt ? req_value(e, op->alt, op->alt_name) : v;
    }
    case OP_RESP: {
        value_t v = header_value(e->response_headers, op->arg);
        if (v.type == V_NONE && op->alt)
            v = header_value(e->response_headers, op->alt);
        /* The router may report the upstream time in the entry rather than as a header. */
        if (v.type == V_NONE && op->arg_name == NAME_UPSTREAM_SERVICE_TIME &&
            e->upstream_service_time_ms >= 0) {
            put_i64(scratch, e->upstream_service_time_ms);
            v = str_value(scratch->p, scratch->len);
        }
        return v;
    }
    case OP_PROTOCOL:
        return cstr_value(e->protocol);
    case OP_RESPONSE_CODE:
        return (value_t){V_NUM, NULL, 0, e->response_code};
    case OP_RESPONSE_FLAGS:
        return e->response_flags && e->response_flags[0] ? cstr_value(e->response_flags)
                                                         : str_value("-", 1);
    case OP_BYTES_RECEIVED:
        return (value_t){V_NUM, NULL, 0, (int64_t)e->bytes_received};
    case OP_BYTES_SENT:
        return (value_t){V_NUM, NULL, 0, (int64_t)e->bytes_sent};
    case OP_DURATION:
        return (value_t){V_NUM, NULL, 0, (int64_t)e->duration_ms};
    case OP_REQUEST_DURATION:
        return e->request_duration_ms < 0 ? (value_t){V_NONE, NULL, 0, 0}
                                          : (value_t){V_NUM, NULL, 0, e->request_duration_ms};
    case OP_RESPONSE_DURATION:
        return e->response_duration_ms < 0 ? (value_t){V_NONE, NULL, 0, 0}
                                           : (value_t){V_NUM, NULL, 0, e->response_duration_ms};
    case OP_UPSTREAM_HOST:
        return cstr_value(e->upstream_host);
    case OP_UPSTREAM_CLUSTER:
        return cstr_value(e->upstream_cluster);
    case OP_ROUTE_NAME:
        return cstr_value(e->route_name);
    case OP_DOWNSTREAM_REMOTE:
        return cstr_value(e->downstream_remote);
    case OP_DOWNSTREAM_LOCAL:
        return cstr_value(e->downstream_local);
    case OP_DOWNSTREAM_REMOTE_NO_PORT:
        return addr_without_port(e->downstream_remote);
    case OP_DOWNSTREAM_LOCAL_NO_PORT:
        return addr_without_port(e->downstream_local);
    case OP_HOSTNAME:
        return cstr_value(log->hostname);
    case OP_PEER_URI_SAN:
        return cstr_value(e->downstream_peer_uri_san);
    case OP_TLS_VERSION:
        return cstr_value(e->downstream_tls_version);
    case OP_TLS_CIPHER:
        return cstr_value(e->downstream_tls_cipher);
    case OP_SERVER_NAME:
        return cstr_value(e->requested_server_name);
    case OP_TEXT:
    case OP_NO_DATA:
        break;
    }
    return (value_t){V_NONE, NULL, 0, 0};
}

typedef enum { MODE_TEXT, MODE_JSON_STRING, MODE_JSON_TYPED } render_mode_t;

static void put_value(out_t *o, const value_t *v, size_t max_len, render_mode_t mode)
{
    if (v->type == V_NUM) {
        put_i64(o, v->num);
        return;
    }
    if (v->type == V_NONE) {
        if (mode == MODE_JSON_TYPED)
            put(o, "null", 4);
        else
            put(o, "-", 1);
        return;
    }
    size_t n = v->len < max_len ? v->len : max_len;
    if (mode == MODE_TEXT) {
        put(o, v->s, n);
        return;
    }
    if (mode == MODE_JSON_TYPED)
        put(o, "\"", 1);
    put_json_escaped(o, v->s, n);
    if (mode == MODE_JSON_TYPED)
        put(o, "\"", 1);
}

static void render_format(const access_log_t *log, const log_format_t *f,
                          const access_log_entry_t *e, out_t *o, render_mode_t mode)
{
    for (size_t i = 0; i < f->n; i++) {
        const log_op_t *op = &f->ops[i];
        if (op->kind == OP_TEXT) {
            if (mode == MODE_TEXT)
                put(o, op->arg, op->arg_len);
            else
                put_json_escaped(o, op->arg, op->arg_len);
            continue;
        }
        char tmp[256];
        out_t scratch = {tmp, 0, sizeof(tmp), false};
        value_t v = op_value(log, op, e, &scratch);
        put_value(o, &v, op->max_len, mode);
    }
}

static void render_entry(const access_log_t *log, const access_log_entry_t *e, out_t *o)
{
    if (log->n_json == 0) {
        render_format(log, &log->text, e, o, MODE_TEXT);
        return;
    }
    put(o, "{", 1);
    for (size_t i = 0; i < log->n_json; i++) {
        const json_field_t *jf = &log->json[i];
        if (i)
            put(o, ",", 1);
        put(o, jf->key, jf->key_len);
        /* A format that is exactly one command keeps its type: number, string or null. */
        if (jf->fmt.n == 1 && jf->fmt.ops[0].kind != OP_TEXT) {
            render_format(log, &jf->fmt, e, o, MODE_JSON_TYPED);
        } else {
            put(o, "\"", 1);
            render_format(log, &jf->fmt, e, o, MODE_JSON_STRING);
            put(o, "\"", 1);
        }
    }
    put(o, "}\n", 2);
}

/* ---- output ------------------------------------------------------------------------------- */

/* Writes all n bytes; waits up to a second for a non-blocking pipe to drain. */
static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            if (poll(&pfd, 1, 1000) > 0)
                continue;
        }
        return -1;
    }
    return 0;
}

static uint64_t count_lines(const char *p, size_t n)
{
    uint64_t lines = 0;
    for (const char *end = p + n; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
        lines++;
    return lines;
}

/* Only whole lines are ever in the buffer. A regular file takes them in one write(2); a pipe,
 * tty or socket only keeps writes of up to PIPE_BUF bytes whole, so those go in chunks of whole
 * lines no larger than that (a longer single line goes alone). */
static void buf_flush(access_log_t *log, log_buf_t *b)
{
    size_t off = 0;
    while (off < b->len) {
        const char *p = b->data + off;
        size_t n = b->len - off;
        if (!log->any_size_atomic && n > PIPE_BUF) {
            const char *nl = memrchr(p, '\n', PIPE_BUF);
            if (nl == NULL)
                nl = memchr(p + PIPE_BUF, '\n', n - PIPE_BUF);
            n = nl ? (size_t)(nl - p) + 1 : n;
        }
        if (write_all(log->fd, p, n) != 0) {
            atomic_fetch_add_explicit(&b->dropped, count_lines(p, b->len - off),
                                      memory_order_relaxed);
            break;
        }
        off += n;
    }
    b->len = 0;
}

void access_log_write(access_log_t *log, unsigned worker, const access_log_entry_t *e)
{
    if (log == NULL || worker >= log->nworkers)
        return;
    log_buf_t *b = &log->bufs[worker];
    out_t o = {b->data + b->len, 0, ACCESS_LOG_BUFFER_BYTES - b->len, false};
    render_entry(log, e, &o);
    if (o.overflow && b->len > 0) {
        /* Make room by writing out what is already there, then render again. */
        buf_flush(log, b);
        o = (out_t){b->data, 0, ACCESS_LOG_BUFFER_BYTES, false};
        render_entry(log, e, &o);
    }
    if (o.overflow)
        o.p[o.len - 1] = '\n'; /* a line longer than the buffer: truncated, still a line */
    b->len += o.len;
    if (b->len >= ACCESS_LOG_FLUSH_BYTES)
        buf_flush(log, b);
}

void access_log_flush(access_log_t *log, unsigned worker)
{
    if (log && worker < log->nworkers)
        buf_flush(log, &log->bufs[worker]);
}

uint64_t access_log_dropped(const access_log_t *log)
{
    uint64_t n = 0;
    for (unsigned w = 0; w < log->nworkers; w++)
        n += atomic_load_explicit(&log->bufs[w].dropped, memory_order_relaxed);
    return n;
}

/* ---- open / close ------------------------------------------------------------------------- */

static void log_free(access_log_t *log)
{
    format_free(&log->text);
    for (size_t i = 0; i < log->n_json; i++) {
        free(log->json[i].key);
        format_free(&log->json[i].fmt);
    }
    free(log->json);
    if (log->bufs) {
        for (unsigned w = 0; w < log->nworkers; w++)
            free(log->bufs[w].data);
    }
    free(log->bufs);
    if (log->own_fd && log->fd >= 0)
        close(log->fd);
    free(log);
}

void access_log_close(access_log_t *log)
{
    if (log == NULL)
        return;
    for (unsigned w = 0; w < log->nworkers; w++)
        buf_flush(log, &log->bufs[w]);
    log_free(log);
}

/* "\"key\":" with the key escaped like any JSON string. */
static int json_key(json_field_t *jf, const char *key)
{
    size_t n = strlen(key);
    size_t cap = n * 6 + 4;
    jf->key = malloc(cap);
    if (jf->key == NULL)
        return -ENOMEM;
    out_t o = {jf->key, 0, cap, false};
    put(&o, "\"", 1);
    put_json_escaped(&o, key, n);
    put(&o, "\":", 2);
    jf->key_len = o.len;
    return 0;
}

static int open_output(access_log_t *log, const char *path, char *err, size_t errlen)
{
    /* stdout/stderr are used as they are: reopening them would fail for a socket (journald)
     * and would not share the offset of a file the shell opened without O_APPEND. */
    if (strcmp(path, "/dev/stdout") == 0) {
        log->fd = STDOUT_FILENO;
    } else if (strcmp(path, "/dev/stderr") == 0) {
        log->fd = STDERR_FILENO;
    } else {
        log->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (log->fd < 0) {
            int e = errno;
            set_err(err, errlen, "access log %s: %s", path, strerror(e));
            return -e;
        }
        log->own_fd = true;
    }
    struct stat sb;
    log->any_size_atomic = fstat(log->fd, &sb) == 0 && S_ISREG(sb.st_mode);
    return 0;
}

int access_log_open(const char *path, const char *text_format, const char *const *json_keys,
                    const char *const *json_formats, size_t n_json, unsigned nworkers,
                    access_log_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (path == NULL || path[0] == '\0') {
        set_err(err, errlen, "access log: empty path");
        return -EINVAL;
    }
    access_log_t *log = calloc(1, sizeof(*log));
    if (log == NULL)
        goto fail_oom;
    log->fd = -1;
    int rc;
    if (n_json == 0) {
        rc = format_parse(text_format ? text_format : default_format, true, &log->text, err, errlen,
                          "text_format");
        if (rc != 0)
            goto fail;
    } else {
        log->json = calloc(n_json, sizeof(*log->json));
        if (log->json == NULL)
            goto fail_oom;
        for (size_t i = 0; i < n_json; i++) {
            json_field_t *jf = &log->json[i];
            log->n_json = i + 1; /* so that log_free frees this field too */
            char where[128];
            snprintf(where, sizeof(where), "json_format.%s", json_keys[i]);
            if (json_key(jf, json_keys[i]) != 0)
                goto fail_oom;
            rc = format_parse(json_formats[i], false, &jf->fmt, err, errlen, where);
            if (rc != 0)
                goto fail;
        }
    }
    if (gethostname(log->hostname, sizeof(log->hostname) - 1) != 0)
        log->hostname[0] = '\0';
    log->nworkers = nworkers;
    log->bufs = aligned_alloc(64, (nworkers ? nworkers : 1) * sizeof(*log->bufs));
    if (log->bufs == NULL)
        goto fail_oom;
    memset(log->bufs, 0, (nworkers ? nworkers : 1) * sizeof(*log->bufs));
    for (unsigned w = 0; w < nworkers; w++) {
        if ((log->bufs[w].data = malloc(ACCESS_LOG_BUFFER_BYTES)) == NULL)
            goto fail_oom;
    }
    rc = open_output(log, path, err, errlen);
    if (rc != 0)
        goto fail;
    *out = log;
    return 0;

fail_oom:
    rc = -ENOMEM;
    set_err(err, errlen, "access log %s: out of memory", path);
fail:
    if (log)
        log_free(log);
    return rc;
}
