/* HTTP/1.1 message body decoder (RFC 9112 §6, §7): Content-Length, chunked with extensions and
 * trailers, and read-until-close, handing out slices of the caller's buffer without copying. */
#include "proxy/http/h1/http1.h"

enum {
    CHUNK_SIZE,      /* expecting a chunk-size line */
    CHUNK_DATA,      /* inside chunk data; remaining bytes to go */
    CHUNK_DATA_CRLF, /* expecting the CRLF that ends chunk data */
    CHUNK_TRAILERS,  /* after the last chunk: trailer section, then the empty line */
    BODY_DONE,
};

void http1_body_init(http1_body_decoder_t *d, http1_body_kind_t kind, uint64_t content_length)
{
    d->remaining = kind == HTTP1_BODY_LENGTH ? content_length : 0;
    d->max_chunk_line = HTTP1_MAX_CHUNK_LINE;
    d->max_trailers = HTTP1_MAX_TRAILERS;
    d->kind = (uint8_t)kind;
    d->state = (kind == HTTP1_BODY_NONE || (kind == HTTP1_BODY_LENGTH && content_length == 0))
                   ? BODY_DONE
                   : CHUNK_SIZE;
    d->error = NULL;
}

static inline int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static inline bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
        return true;
    default:
        return false;
    }
}

static inline size_t skip_bws(const char *p, size_t i, size_t n)
{
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    return i;
}

/* chunk-ext-val = token / quoted-string. Returns the index after it, or 0 if malformed, or n
 * when it runs to the end (the caller then waits for more). */
static size_t ext_value(const char *p, size_t i, size_t n)
{
    if (i < n && p[i] != '"') {
        size_t s = i;
        while (i < n && is_tchar((unsigned char)p[i]))
            i++;
        return i == s ? 0 : i;
    }
    for (i++; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"')
            return i + 1;
        if (c == '\\') {
            if (++i == n)
                return n;
            c = (unsigned char)p[i];
            if (c != '\t' && (c < 0x20 || c == 0x7f))
                return 0;
        } else if (c != '\t' && (c < 0x20 || c == 0x7f)) {
            return 0;
        }
    }
    return n;
}

/* chunk-size [chunk-ext] CRLF at p[0..n). Returns the line length, 0 if incomplete, or
 * HTTP1_E_BAD with d->error set. */
static ssize_t chunk_size_line(http1_body_decoder_t *d, const char *p, size_t len, uint64_t *size)
{
    size_t n = len < d->max_chunk_line ? len : d->max_chunk_line;
    size_t i = 0;
    uint64_t v = 0;
    int h;
    while (i < n && (h = hexval(p[i])) >= 0) {
        if (v >> 59) /* the next digit would pass 2^63 */
            return d->error = "chunk size overflows", HTTP1_E_BAD;
        v = v << 4 | (uint64_t)h;
        i++;
    }
    if (i == n)
        goto incomplete;
    if (i == 0)
        return d->error = "chunk size is not hex", HTTP1_E_BAD;
    for (;;) {
        size_t ws = i;
        i = skip_bws(p, i, n);
        if (i == n)
            goto incomplete;
        if (p[i] != ';') {
            if (i != ws)
                return d->error = "whitespace in chunk size line", HTTP1_E_BAD;
            break;
        }
        i = skip_bws(p, i + 1, n);
        size_t name = i;
        while (i < n && is_tchar((unsigned char)p[i]))
            i++;
        if (i == n)
            goto incomplete;
        if (i == name)
            return d->error = "chunk extension name is not a token", HTTP1_E_BAD;
        size_t before_eq = i;
        i = skip_bws(p, i, n);
        if (i == n)
            goto incomplete;
        if (p[i] != '=') {
            i = before_eq; /* name without value; the BWS belongs to the next round */
            continue;
        }
        i = skip_bws(p, i + 1, n);
        if (i == n)
            goto incomplete;
        size_t next = ext_value(p, i, n);
        if (next == n)
            goto incomplete;
        if (next == 0)
            return d->error = "chunk extension value is malformed", HTTP1_E_BAD;
        i = next;
    }
    if (p[i] == '\n')
        return d->error = "bare LF in chunk size line", HTTP1_E_BAD;
    if (p[i] != '\r')
        return d->error = "invalid byte in chunk size line", HTTP1_E_BAD;
    if (i + 1 == n)
        goto incomplete;
    if (p[i + 1] != '\n')
        return d->error = "bare CR in chunk size line", HTTP1_E_BAD;
    *size = v;
    return (ssize_t)(i + 2);

incomplete:
    if (len >= d->max_chunk_line)
        return d->error = "chunk size line too long", HTTP1_E_BAD;
    return 0;
}

ssize_t http1_body_decode(http1_body_decoder_t *d, const char *in, size_t len, const char **data,
                          size_t *data_len, http_headers_t *trailers, bool *done)
{
    size_t pos = 0;
    *data = in;
    *data_len = 0;
    *done = d->state == BODY_DONE;
    if (*done)
        return 0;
    if (d->kind == HTTP1_BODY_UNTIL_CLOSE) {
        *data_len = len;
        return (ssize_t)len;
    }
    if (d->kind == HTTP1_BODY_LENGTH) {
        size_t n = len < d->remaining ? len : (size_t)d->remaining;
        *data_len = n;
        d->remaining -= n;
        if (d->remaining == 0) {
            d->state = BODY_DONE;
            *done = true;
        }
        return (ssize_t)n;
    }
    for (;;) {
        switch (d->state) {
        case CHUNK_SIZE: {
            uint64_t size = 0;
            ssize_t r = chunk_size_line(d, in + pos, len - pos, &size);
            if (r <= 0)
                return r < 0 ? r : (ssize_t)pos;
            pos += (size_t)r;
            d->remaining = size;
            d->state = size == 0 ? CHUNK_TRAILERS : CHUNK_DATA;
            break;
        }
        case CHUNK_DATA: {
            size_t n = len - pos < d->remaining ? len - pos : (size_t)d->remaining;
            *data = in + pos;
            *data_len = n;
            d->remaining -= n;
            if (d->remaining == 0)
                d->state = CHUNK_DATA_CRLF;
            return (ssize_t)(pos + n);
        }
        case CHUNK_DATA_CRLF:
            if (pos == len)
                return (ssize_t)pos;
            if (in[pos] != '\r')
                return d->error = in[pos] == '\n' ? "bare LF after chunk data"
                                                  : "missing CRLF after chunk data",
                       HTTP1_E_BAD;
            if (len - pos < 2)
                return (ssize_t)pos;
            if (in[pos + 1] != '\n')
                return d->error = "bare CR after chunk data", HTTP1_E_BAD;
            pos += 2;
            d->state = CHUNK_SIZE;
            break;
        case CHUNK_TRAILERS: {
            size_t avail = len - pos;
            size_t lim = avail < d->max_trailers ? avail : d->max_trailers;
            const char *err = NULL;
            int r = http1_parse_fields(in + pos, lim, trailers, &err);
            if (r == HTTP1_INCOMPLETE) {
                if (avail >= d->max_trailers)
                    return d->error = "trailer section too large", HTTP1_E_BAD;
                return (ssize_t)pos;
            }
            if (r < 0)
                return d->error = err, HTTP1_E_BAD;
            pos += (size_t)r;
            d->state = BODY_DONE;
            *done = true;
            return (ssize_t)pos;
        }
        default:
            *done = true;
            return (ssize_t)pos;
        }
    }
}
