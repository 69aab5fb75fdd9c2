/* HTTP/1.1 head writers, reason phrases and hop-by-hop field detection: what a proxy needs to put
 * a message back on the wire after the parser has taken it apart. */
#include "proxy/http/h1/http1.h"

#include <string.h>

/* Appends n bytes at *pos, writing only what fits in cap; *pos always advances so the final
 * value is the size needed. */
static inline void put(char *out, size_t cap, size_t *pos, const char *s, size_t n)
{
    if (n > 0 && *pos < cap) {
        size_t room = cap - *pos;
        memcpy(out + *pos, s, n < room ? n : room);
    }
    *pos += n;
}

static size_t put_fields(char *out, size_t cap, size_t pos, const http_headers_t *h)
{
    for (uint32_t i = 0; h != NULL && i < h->n; i++) {
        put(out, cap, &pos, h->v[i].name, h->v[i].name_len);
        put(out, cap, &pos, ": ", 2);
        put(out, cap, &pos, h->v[i].value, h->v[i].value_len);
        put(out, cap, &pos, "\r\n", 2);
    }
    put(out, cap, &pos, "\r\n", 2);
    return pos;
}

size_t http1_write_request_head(char *out, size_t cap, const char *method, size_t method_len,
                                const char *target, size_t target_len, const http_headers_t *h)
{
    size_t pos = 0;
    put(out, cap, &pos, method, method_len);
    put(out, cap, &pos, " ", 1);
    put(out, cap, &pos, target, target_len);
    put(out, cap, &pos, " HTTP/1.1\r\n", 11);
    return put_fields(out, cap, pos, h);
}

size_t http1_write_response_head(char *out, size_t cap, int status, const char *reason,
                                 const http_headers_t *h)
{
    char line[16] = "HTTP/1.1 000 ";
    if (status < 100 || status > 999)
        status = 500; /* a caller bug; never put a malformed status line on the wire */
    line[9] = (char)('0' + status / 100);
    line[10] = (char)('0' + status / 10 % 10);
    line[11] = (char)('0' + status % 10);
    if (reason == NULL)
        reason = http1_reason(status);
    size_t pos = 0;
    put(out, cap, &pos, line, 13);
    put(out, cap, &pos, reason, strlen(reason));
    put(out, cap, &pos, "\r\n", 2);
    return put_fields(out, cap, pos, h);
}

size_t http1_write_last_chunk(char *out, size_t cap, const http_headers_t *trailers)
{
    size_t pos = 0;
    put(out, cap, &pos, "0\r\n", 3);
    return put_fields(out, cap, pos, trailers);
}

size_t http1_write_chunk_size(char out[24], size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = hex[len & 0xf];
        len >>= 4;
    } while (len != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\r';
    out[n + 1] = '\n';
    return n + 2;
}

const char *http1_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 203:
        return "Non-Authoritative Information";
    case 204:
        return "No Content";
    case 205:
        return "Reset Content";
    case 206:
        return "Partial Content";
    case 300:
        return "Multiple Choices";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 305:
        return "Use Proxy";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 407:
        return "Proxy Authentication Required";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 421:
        return "Misdirected Request";
    case 422:
        return "Unprocessable Content";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "";
    }
}

static bool name_eq(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn)
        return false;
    for (size_t i = 0; i < an; i++) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z')
            x = (char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (char)(y + 32);
        if (x != y)
            return false;
    }
    return true;
}

/* Whether name appears as an option in a Connection field value. */
static bool listed_in(const http_header_t *conn, const char *name, size_t name_len)
{
    const char *p = conn->value, *end = conn->value + conn->value_len;
    while (p < end) {
        const char *e = memchr(p, ',', (size_t)(end - p));
        const char *stop = e ? e : end, *s = p;
        while (s < stop && (*s == ' ' || *s == '\t'))
            s++;
        while (stop > s && (stop[-1] == ' ' || stop[-1] == '\t'))
            stop--;
        if (name_eq(s, (size_t)(stop - s), name, name_len))
            return true;
        if (e == NULL)
            break;
        p = e + 1;
    }
    return false;
}

bool http1_is_hop_by_hop(const http_header_t *h, const http_headers_t *all)
{
    /* Dispatch on the length first: most names are compared with nothing at all. */
    switch (h->name_len) {
    case 2:
        if (http_name_is(h, "te"))
            return true;
        break;
    case 7:
        if (http_name_is(h, "trailer") || http_name_is(h, "upgrade"))
            return true;
        break;
    case 10:
        if (http_name_is(h, "connection") || http_name_is(h, "keep-alive"))
            return true;
        break;
    case 16:
        if (http_name_is(h, "proxy-connection"))
            return true;
        break;
    case 17:
        if (http_name_is(h, "transfer-encoding"))
            return true;
        break;
    default:
        break;
    }
    for (uint32_t i = 0; all != NULL && i < all->n; i++)
        if (http_name_is(&all->v[i], "connection") && listed_in(&all->v[i], h->name, h->name_len))
            return true;
    return false;
}
