/* Types shared by the HTTP codecs, the connection manager, routing and the HTTP filters:
 * headers as (pointer, length) slices that usually point into a connection's read buffer. */
#ifndef REMORA_HTTP_H
#define REMORA_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct http_header {
    const char *name; /* not NUL-terminated; names from the wire keep their case */
    const char *value;
    uint32_t name_len;
    uint32_t value_len;
} http_header_t;

/* A header list. v is owned by whoever owns the list (codec scratch space or a stream arena). */
typedef struct http_headers {
    http_header_t *v;
    uint32_t n;
    uint32_t cap;
} http_headers_t;

/* Bytes owned elsewhere (the stream's arena, a static string). */
typedef struct http_slice {
    const char *data;
    size_t len;
} http_slice_t;

/* Case-insensitive comparison of a header name with a NUL-terminated lowercase literal (h and
 * lower borrowed). */
static inline bool http_name_is(const http_header_t *h, const char *lower)
{
    uint32_t i = 0;
    for (; i < h->name_len; i++) {
        char c = h->name[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        if (lower[i] == '\0' || c != lower[i])
            return false;
    }
    return lower[i] == '\0';
}

/* First header named `lower` (lowercase literal), or NULL: a pointer borrowed from hs. */
static inline const http_header_t *http_headers_find(const http_headers_t *hs, const char *lower)
{
    for (uint32_t i = 0; i < hs->n; i++)
        if (http_name_is(&hs->v[i], lower))
            return &hs->v[i];
    return NULL;
}

/* Writes v in decimal into out (the caller's; room for 20 digits) and returns the length: the hot
 * path's replacement for snprintf("%llu"). */
static inline size_t http_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

#endif
