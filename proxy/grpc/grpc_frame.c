/* gRPC message framing and the text of its status and timeout headers (see grpc_frame.h). */
#include "proxy/grpc/grpc_frame.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GRPC_FLAG_COMPRESSED 1
#define DEFRAME_KEEP_BUF     (16 * 1024) /* an assembly buffer larger than this is not kept */

static const char *const code_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *grpc_code_name(int code)
{
    if (code < 0 || (size_t)code >= sizeof(code_names) / sizeof(code_names[0]))
        return "UNKNOWN";
    return code_names[code];
}

bool grpc_metadata_key_ok(const char *k)
{
    if (k == NULL || k[0] == '\0' || strncmp(k, "grpc-", 5) == 0 || strcmp(k, "te") == 0 ||
        strcmp(k, "content-type") == 0 || strcmp(k, "user-agent") == 0)
        return false;
    for (const char *p = k; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
              *p == '.'))
            return false;
    return true;
}

/* ---- framing ------------------------------------------------------------------------------ */

void grpc_frame_prefix(uint8_t out[GRPC_FRAME_PREFIX], uint32_t len)
{
    out[0] = 0;
    out[1] = (uint8_t)(len >> 24);
    out[2] = (uint8_t)(len >> 16);
    out[3] = (uint8_t)(len >> 8);
    out[4] = (uint8_t)len;
}

void grpc_deframer_init(grpc_deframer_t *d, size_t max_message)
{
    memset(d, 0, sizeof(*d));
    d->max_message = max_message ? max_message : GRPC_DEFAULT_MAX_RECV;
}

void grpc_deframer_free(grpc_deframer_t *d)
{
    free(d->buf);
    d->buf = NULL;
    d->buf_cap = 0;
}

bool grpc_deframer_idle(const grpc_deframer_t *d)
{
    return d->state == GRPC_DEFRAME_PREFIX && d->prefix_len == 0;
}

static int deframe_fail(grpc_deframer_t *d, int error)
{
    d->state = GRPC_DEFRAME_FAILED;
    d->error = error;
    return error;
}

/* The prefix is complete: checks it and sets up the message it announces. */
static int deframe_start(grpc_deframer_t *d)
{
    const uint8_t *p = d->prefix;
    if (p[0] == GRPC_FLAG_COMPRESSED)
        return deframe_fail(d, -ENOTSUP);
    if (p[0] != 0)
        return deframe_fail(d, -EPROTO);
    uint32_t len = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
    if (len > d->max_message)
        return deframe_fail(d, -EMSGSIZE);
    d->msg_len = len;
    d->have = 0;
    d->prefix_len = 0;
    return 0;
}

/* Copies what the input holds of a split message into d's buffer; 1 once it is whole. */
static int deframe_assemble(grpc_deframer_t *d, const uint8_t **in, size_t *len)
{
    if (d->buf_cap < d->msg_len) {
        free(d->buf);
        d->buf_cap = 0;
        d->buf = malloc(d->msg_len);
        if (d->buf == NULL)
            return deframe_fail(d, -ENOMEM);
        d->buf_cap = d->msg_len;
    }
    size_t n = d->msg_len - d->have;
    if (n > *len)
        n = *len;
    memcpy(d->buf + d->have, *in, n);
    d->have += n;
    *in += n;
    *len -= n;
    return d->have == d->msg_len;
}

int grpc_deframer_next(grpc_deframer_t *d, const uint8_t **in, size_t *len, const uint8_t **msg,
                       size_t *msg_len)
{
    if (d->state == GRPC_DEFRAME_FAILED)
        return d->error;
    if (d->state == GRPC_DEFRAME_PREFIX && d->buf_cap > DEFRAME_KEEP_BUF)
        grpc_deframer_free(d); /* the big message handed out last time is no longer borrowed */
    for (;;) {
        if (d->state == GRPC_DEFRAME_PREFIX) {
            if (*len == 0)
                return 0;
            size_t n = GRPC_FRAME_PREFIX - d->prefix_len;
            if (n > *len)
                n = *len;
            memcpy(d->prefix + d->prefix_len, *in, n);
            d->prefix_len += n;
            *in += n;
            *len -= n;
            if (d->prefix_len < GRPC_FRAME_PREFIX)
                return 0;
            int rc = deframe_start(d);
            if (rc < 0)
                return rc;
            if (*len >= d->msg_len) { /* whole in this input: hand it out in place */
                *msg = d->msg_len ? *in : (const uint8_t *)"";
                *msg_len = d->msg_len;
                *in += d->msg_len;
                *len -= d->msg_len;
                return 1;
            }
            d->state = GRPC_DEFRAME_BODY;
        }
        if (*len == 0)
            return 0;
        int rc = deframe_assemble(d, in, len);
        if (rc <= 0)
            return rc;
        d->state = GRPC_DEFRAME_PREFIX;
        *msg = d->buf;
        *msg_len = d->msg_len;
        return 1;
    }
}

int grpc_deframer_feed(grpc_deframer_t *d, const uint8_t *data, size_t len,
                       grpc_deframe_msg_fn on_message, void *arg)
{
    for (;;) {
        const uint8_t *m;
        size_t n;
        int rc = grpc_deframer_next(d, &data, &len, &m, &n);
        if (rc <= 0)
            return rc;
        if (!on_message(arg, m, n))
            return 0;
    }
}

grpc_code_t grpc_deframe_status(int error, const grpc_deframer_t *d,
                                const grpc_deframe_texts_t *texts, char *msg, size_t cap)
{
    switch (error) {
    case -EMSGSIZE:
        snprintf(msg, cap, "%s %zu bytes", texts->too_large, d->max_message);
        return GRPC_RESOURCE_EXHAUSTED;
    case -ENOMEM:
        snprintf(msg, cap, "%s", texts->no_memory);
        return GRPC_RESOURCE_EXHAUSTED;
    case -ENOTSUP:
        snprintf(msg, cap, "%s", texts->compressed);
        return GRPC_INTERNAL;
    default:
        snprintf(msg, cap, "%s", texts->bad_flag);
        return GRPC_INTERNAL;
    }
}

/* ---- status and message ------------------------------------------------------------------ */

int grpc_status_parse(const char *v, size_t len, int *code)
{
    if (len == 0 || len > 9)
        return -EINVAL;
    int n = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -EINVAL;
        n = n * 10 + (v[i] - '0');
    }
    *code = n > GRPC_UNAUTHENTICATED ? GRPC_UNKNOWN : n;
    return 0;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t grpc_message_decode(const char *in, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    if (cap == 0)
        return 0;
    for (size_t i = 0; i < len && o + 1 < cap; i++) {
        int hi, lo;
        if (in[i] == '%' && i + 2 < len && (hi = hex_value(in[i + 1])) >= 0 &&
            (lo = hex_value(in[i + 2])) >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = in[i];
        }
    }
    out[o] = '\0';
    return o;
}

size_t grpc_message_encode(const char *in, size_t len, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        char enc[3] = {(char)c, 0, 0};
        size_t n = 1;
        if (c < 0x20 || c > 0x7e || c == '%') {
            enc[0] = '%';
            enc[1] = hex[c >> 4];
            enc[2] = hex[c & 15];
            n = 3;
        }
        for (size_t k = 0; k < n; k++, o++)
            if (o + 1 < cap)
                out[o] = enc[k];
    }
    if (cap)
        out[o < cap ? o : cap - 1] = '\0';
    return o;
}

/* ---- timeout ----------------------------------------------------------------------------- */

#define TIMEOUT_MAX_VALUE 99999999ULL

size_t grpc_timeout_format(uint64_t ms, char out[GRPC_TIMEOUT_TEXT_MAX])
{
    /* Each unit in milliseconds, finest first; the value is rounded up so the deadline the
     * server sees is never earlier than ours. */
    static const struct {
        uint64_t ms;
        char unit;
    } units[] = {{1, 'm'}, {1000, 'S'}, {60000, 'M'}, {3600000, 'H'}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        uint64_t v = ms / units[i].ms + (ms % units[i].ms != 0);
        if (v <= TIMEOUT_MAX_VALUE)
            return (size_t)snprintf(out, GRPC_TIMEOUT_TEXT_MAX, "%llu%c", (unsigned long long)v,
                                    units[i].unit);
    }
    return (size_t)snprintf(out, GRPC_TIMEOUT_TEXT_MAX, "%lluH", TIMEOUT_MAX_VALUE);
}

int grpc_timeout_parse(const char *v, size_t len, uint64_t *ms)
{
    if (len < 2 || len > GRPC_MAX_TIMEOUT_DIGITS + 1)
        return -EINVAL;
    uint64_t n = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -EINVAL;
        n = n * 10 + (uint64_t)(v[i] - '0');
    }
    switch (v[len - 1]) {
    case 'H':
        *ms = n * 3600000;
        return 0;
    case 'M':
        *ms = n * 60000;
        return 0;
    case 'S':
        *ms = n * 1000;
        return 0;
    case 'm':
        *ms = n;
        return 0;
    case 'u':
        *ms = n / 1000 + (n % 1000 != 0);
        return 0;
    case 'n':
        *ms = n / 1000000 + (n % 1000000 != 0);
        return 0;
    default:
        return -EINVAL;
    }
}

/* ---- mappings ---------------------------------------------------------------------------- */

grpc_code_t grpc_code_from_http(int http_status)
{
    switch (http_status) {
    case 400:
        return GRPC_INTERNAL;
    case 401:
        return GRPC_UNAUTHENTICATED;
    case 403:
        return GRPC_PERMISSION_DENIED;
    case 404:
        return GRPC_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
        return GRPC_UNAVAILABLE;
    default:
        return GRPC_UNKNOWN;
    }
}

grpc_code_t grpc_code_from_h2_error(uint32_t h2_error)
{
    switch (h2_error) {
    case 0x7: /* REFUSED_STREAM: the server never processed it; safe to retry */
        return GRPC_UNAVAILABLE;
    case 0x8: /* CANCEL */
        return GRPC_CANCELLED;
    case 0xb: /* ENHANCE_YOUR_CALM */
        return GRPC_RESOURCE_EXHAUSTED;
    case 0xc: /* INADEQUATE_SECURITY */
        return GRPC_PERMISSION_DENIED;
    default:
        return GRPC_INTERNAL;
    }
}
