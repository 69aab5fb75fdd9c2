/* HTTP/1.1 head parsers: request line, status line and field lines (RFC 9112 §2-§6), strict about
 * everything that could let two parsers disagree on framing. Stateless, zero-copy, no malloc. */
#include "proxy/http/h1/http1.h"

#include <limits.h>
#include <string.h>

#if defined(__SSE2__) && (defined(__x86_64__) || defined(__i386__))
#include <emmintrin.h>
#define HTTP1_SSE2 1
#endif

/* tchar (RFC 9110 §5.6.2): what field names, methods and coding names are made of. */
static const uint8_t tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1, ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,  ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1,  ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,  ['d'] = 1, ['e'] = 1,
    ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,  ['l'] = 1, ['m'] = 1,
    ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,  ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

/* reg-name characters of RFC 3986 (unreserved, sub-delims, '%' checked separately). */
static const uint8_t hostchar[256] = {
    ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1, ['!'] = 1, ['$'] = 1, ['&'] = 1, ['\''] = 1,
    ['('] = 1, [')'] = 1, ['*'] = 1, ['+'] = 1, [','] = 1, [';'] = 1, ['='] = 1, ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1,
    ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1,
    ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

/* Bytes the fast loops step over without a second look: field-vchar and SP in values, VCHAR but
 * '#' in targets. Everything else (HTAB included) stops them and is judged one at a time. */
static inline bool value_plain(unsigned char c)
{
    return (c >= 0x20 && c != 0x7f);
}

static inline bool target_plain(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '#';
}

static inline const char *skip_value(const char *p, const char *end)
{
#ifdef HTTP1_SSE2
    const __m128i c1f = _mm_set1_epi8(0x1f), del = _mm_set1_epi8(0x7f);
    const __m128i zero = _mm_setzero_si128();
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        /* Signed compares: 0x20..0x7f are > 0x1f, obs-text 0x80..0xff is < 0. */
        __m128i ok = _mm_or_si128(_mm_cmpgt_epi8(v, c1f), _mm_cmplt_epi8(v, zero));
        ok = _mm_andnot_si128(_mm_cmpeq_epi8(v, del), ok);
        unsigned bad = (unsigned)_mm_movemask_epi8(ok) ^ 0xffffu;
        if (bad != 0)
            return p + __builtin_ctz(bad);
        p += 16;
    }
#endif
    while (p < end && value_plain((unsigned char)*p))
        p++;
    return p;
}

static inline const char *skip_target(const char *p, const char *end)
{
#ifdef HTTP1_SSE2
    const __m128i sp = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7f);
    const __m128i hash = _mm_set1_epi8('#');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i ok = _mm_cmpgt_epi8(v, sp); /* 0x21..0x7f; obs-text is negative */
        ok = _mm_andnot_si128(_mm_or_si128(_mm_cmpeq_epi8(v, del), _mm_cmpeq_epi8(v, hash)), ok);
        unsigned bad = (unsigned)_mm_movemask_epi8(ok) ^ 0xffffu;
        if (bad != 0)
            return p + __builtin_ctz(bad);
        p += 16;
    }
#endif
    while (p < end && target_plain((unsigned char)*p))
        p++;
    return p;
}

/* Skips [A-Za-z0-9-], which is nearly every byte of real field names; the caller handles the
 * rest of tchar one byte at a time. */
static inline const char *skip_name(const char *p, const char *end)
{
#ifdef HTTP1_SSE2
    const __m128i c60 = _mm_set1_epi8(0x60), c7b = _mm_set1_epi8(0x7b);
    const __m128i c2f = _mm_set1_epi8(0x2f), c3a = _mm_set1_epi8(0x3a);
    const __m128i dash = _mm_set1_epi8('-'), bit5 = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i l = _mm_or_si128(v, bit5); /* only A-Z and a-z land in a-z */
        __m128i ok = _mm_and_si128(_mm_cmpgt_epi8(l, c60), _mm_cmplt_epi8(l, c7b));
        ok = _mm_or_si128(ok, _mm_and_si128(_mm_cmpgt_epi8(v, c2f), _mm_cmplt_epi8(v, c3a)));
        ok = _mm_or_si128(ok, _mm_cmpeq_epi8(v, dash));
        unsigned bad = (unsigned)_mm_movemask_epi8(ok) ^ 0xffffu;
        if (bad != 0)
            return p + __builtin_ctz(bad);
        p += 16;
    }
#endif
    while (p < end && tchar[(unsigned char)*p])
        p++;
    return p;
}

static inline char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

/* Case-insensitive equality of p[0..n) with a lowercase literal of the same length. */
static bool eq_lower(const char *p, size_t n, const char *lit, size_t lit_len)
{
    if (n != lit_len)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower(p[i]) != lit[i])
            return false;
    return true;
}

#define EQ_LIT(p, n, lit) eq_lower((p), (n), lit, sizeof(lit) - 1)

static inline bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* One field line at *pp. Returns 1 with *h filled, 2 at the empty line ending the section (both
 * advance *pp past the CRLF), HTTP1_INCOMPLETE, or HTTP1_E_BAD with *err set. */
static inline int field_line(const char **pp, const char *end, http_header_t *h, const char **err)
{
    const char *p = *pp;
    if (p == end)
        return HTTP1_INCOMPLETE;
    if (*p == '\r') {
        if (end - p < 2)
            return HTTP1_INCOMPLETE;
        if (p[1] != '\n')
            return *err = "bare CR at end of header section", HTTP1_E_BAD;
        *pp = p + 2;
        return 2;
    }
    if (*p == '\n')
        return *err = "bare LF at end of header section", HTTP1_E_BAD;
    if (is_ows(*p))
        return *err = "obs-fold or whitespace at start of a field line", HTTP1_E_BAD;

    const char *name = p;
    for (;;) {
        p = skip_name(p, end);
        if (p == end)
            return HTTP1_INCOMPLETE;
        if (!tchar[(unsigned char)*p])
            break;
        p++;
    }
    if (*p != ':') {
        if (is_ows(*p))
            return *err = "whitespace between field name and colon", HTTP1_E_BAD;
        return *err = "invalid byte in field name", HTTP1_E_BAD;
    }
    if (p == name)
        return *err = "empty field name", HTTP1_E_BAD;
    h->name = name;
    h->name_len = (uint32_t)(p - name);
    p++;
    while (p < end && is_ows(*p))
        p++;
    const char *value = p;
    for (;;) {
        p = skip_value(p, end);
        if (p == end)
            return HTTP1_INCOMPLETE;
        if (*p != '\t')
            break;
        p++;
    }
    if (*p == '\r') {
        if (end - p < 2)
            return HTTP1_INCOMPLETE;
        if (p[1] != '\n')
            return *err = "bare CR in field line", HTTP1_E_BAD;
    } else if (*p == '\n') {
        return *err = "bare LF at end of field line", HTTP1_E_BAD;
    } else {
        return *err = "control character in field value", HTTP1_E_BAD;
    }
    const char *vend = p;
    while (vend > value && is_ows(vend[-1]))
        vend--;
    h->value = value;
    h->value_len = (uint32_t)(vend - value);
    *pp = p + 2;
    return 1;
}

int http1_parse_fields(const char *buf, size_t len, http_headers_t *h, const char **error)
{
    const char *p = buf, *end = buf + (len > INT_MAX ? INT_MAX : len);
    const char *dummy_err = NULL;
    if (error == NULL)
        error = &dummy_err;
    if (h != NULL)
        h->n = 0;
    for (;;) {
        http_header_t f, *slot = &f;
        if (h != NULL && h->n < h->cap)
            slot = &h->v[h->n];
        int r = field_line(&p, end, slot, error);
        if (r <= 0)
            return r;
        if (r == 2)
            return (int)(p - buf);
        if (h != NULL) {
            if (h->n == h->cap)
                return *error = "too many fields", HTTP1_E_HEAD_TOO_LARGE;
            h->n++;
        }
    }
}

/* --- semantics of the fields that decide framing and routing ------------------------------ */

/* What the framing-relevant fields said, gathered line by line and judged at the end. */
typedef struct framing {
    uint64_t content_length;
    bool has_cl;
    bool has_te;
    bool te_empty;        /* an empty transfer-coding list element */
    bool te_last_chunked; /* the last coding seen so far is chunked */
    uint8_t te_chunked;   /* how many times chunked appeared */
    uint8_t te_other;     /* codings other than chunked */
    bool conn_close, conn_keep_alive, conn_upgrade;
    bool has_upgrade;
    bool expect_continue;
    uint8_t hosts;
    const http_header_t *host;
} framing_t;

/* Calls fn on each non-empty element of a comma-separated list value, OWS trimmed; an empty
 * element is reported with n == 0 so callers can reject it where it matters. */
typedef int (*list_fn)(framing_t *f, const char *p, size_t n, const char **err);

static int each_element(framing_t *f, const http_header_t *h, list_fn fn, const char **err)
{
    const char *p = h->value, *end = h->value + h->value_len;
    for (;;) {
        const char *e = memchr(p, ',', (size_t)(end - p));
        const char *stop = e ? e : end, *s = p;
        while (s < stop && is_ows(*s))
            s++;
        while (stop > s && is_ows(stop[-1]))
            stop--;
        int r = fn(f, s, (size_t)(stop - s), err);
        if (r < 0)
            return r;
        if (e == NULL)
            return 0;
        p = e + 1;
    }
}

static int content_length_elem(framing_t *f, const char *p, size_t n, const char **err)
{
    if (n == 0)
        return *err = "empty Content-Length", HTTP1_E_BAD;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return *err = "Content-Length is not all digits", HTTP1_E_BAD;
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > ((uint64_t)INT64_MAX - d) / 10)
            return *err = "Content-Length overflows", HTTP1_E_BAD;
        v = v * 10 + d;
    }
    if (f->has_cl && f->content_length != v)
        return *err = "conflicting Content-Length values", HTTP1_E_BAD;
    f->has_cl = true;
    f->content_length = v;
    return 0;
}

static int transfer_coding_elem(framing_t *f, const char *p, size_t n, const char **err)
{
    (void)err;
    if (n == 0) {
        f->te_empty = true;
        return 0;
    }
    bool chunked = EQ_LIT(p, n, "chunked");
    if (chunked && f->te_chunked < 255)
        f->te_chunked++;
    if (!chunked && f->te_other < 255)
        f->te_other++;
    f->te_last_chunked = chunked;
    return 0;
}

static int connection_elem(framing_t *f, const char *p, size_t n, const char **err)
{
    if (n == 0)
        return 0; /* RFC 9110 §5.6.1: empty list elements are ignored */
    for (size_t i = 0; i < n; i++)
        if (!tchar[(unsigned char)p[i]])
            return *err = "Connection option is not a token", HTTP1_E_BAD;
    if (EQ_LIT(p, n, "close"))
        f->conn_close = true;
    else if (EQ_LIT(p, n, "keep-alive"))
        f->conn_keep_alive = true;
    else if (EQ_LIT(p, n, "upgrade"))
        f->conn_upgrade = true;
    return 0;
}

/* Looks at one field for framing and routing; cheap for the fields it ignores (length switch). */
static int note_field(framing_t *f, const http_header_t *h, const char **err)
{
    switch (h->name_len) {
    case 4:
        if (EQ_LIT(h->name, 4, "host")) {
            f->hosts += f->hosts < 2;
            f->host = h;
        }
        return 0;
    case 6:
        if (EQ_LIT(h->name, 6, "expect"))
            f->expect_continue = EQ_LIT(h->value, h->value_len, "100-continue");
        return 0;
    case 7:
        if (EQ_LIT(h->name, 7, "upgrade"))
            f->has_upgrade = true;
        return 0;
    case 10:
        if (EQ_LIT(h->name, 10, "connection"))
            return each_element(f, h, connection_elem, err);
        return 0;
    case 14:
        if (EQ_LIT(h->name, 14, "content-length"))
            return each_element(f, h, content_length_elem, err);
        return 0;
    case 17:
        if (EQ_LIT(h->name, 17, "transfer-encoding")) {
            f->has_te = true;
            return each_element(f, h, transfer_coding_elem, err);
        }
        return 0;
    default:
        return 0;
    }
}

/* Content-Length vs Transfer-Encoding (RFC 9112 §6.1, §6.3). Returns 0 and sets *kind, or an
 * error: anything but exactly one final "chunked" is refused. */
static int framing_body(const framing_t *f, int minor, http1_body_kind_t *kind, const char **err)
{
    if (f->has_te) {
        if (minor == 0)
            return *err = "Transfer-Encoding in an HTTP/1.0 message", HTTP1_E_BAD;
        if (f->te_empty)
            return *err = "empty transfer-coding", HTTP1_E_BAD;
        if (f->te_chunked > 1)
            return *err = "chunked applied more than once", HTTP1_E_BAD;
        if (f->te_chunked == 1 && !f->te_last_chunked)
            return *err = "chunked is not the final transfer-coding", HTTP1_E_BAD;
        if (f->has_cl)
            return *err = "both Content-Length and Transfer-Encoding", HTTP1_E_BAD;
        if (f->te_other > 0)
            return *err = "transfer-coding other than chunked", HTTP1_E_NOT_IMPLEMENTED;
        *kind = HTTP1_BODY_CHUNKED;
        return 0;
    }
    *kind = (f->has_cl && f->content_length > 0) ? HTTP1_BODY_LENGTH : HTTP1_BODY_NONE;
    return 0;
}

static inline int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* uri-host [":" port] (RFC 9110 §7.2, RFC 3986 §3.2.2); an empty host is refused. IPv6 literals
 * are checked for their character set only. */
static bool valid_authority(const char *p, size_t n, bool need_port)
{
    size_t i = 0;
    if (n == 0)
        return false;
    if (p[0] == '[') {
        for (i = 1; i < n && p[i] != ']'; i++)
            if (hexval(p[i]) < 0 && p[i] != ':' && p[i] != '.')
                return false;
        if (i == n || i == 1)
            return false;
        i++;
    } else {
        for (; i < n && p[i] != ':'; i++) {
            if (p[i] == '%') {
                if (n - i < 3 || hexval(p[i + 1]) < 0 || hexval(p[i + 2]) < 0)
                    return false;
                i += 2;
            } else if (!hostchar[(unsigned char)p[i]]) {
                return false;
            }
        }
        if (i == 0)
            return false;
    }
    if (i == n)
        return !need_port;
    if (p[i] != ':')
        return false;
    size_t port = ++i;
    for (; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return false;
    return !(need_port && i == port) && i - port <= 5;
}

/* "HTTP/" DIGIT "." DIGIT at p (8 bytes available). Returns the minor version, or an error. */
static int parse_version(const char *p, const char **err)
{
    if (memcmp(p, "HTTP/", 5) != 0 || p[5] < '0' || p[5] > '9' || p[6] != '.' || p[7] < '0' ||
        p[7] > '9')
        return *err = "malformed HTTP-version", HTTP1_E_BAD;
    if (p[5] != '1' || p[7] > '1')
        return *err = "HTTP version not supported", HTTP1_E_VERSION;
    return p[7] - '0';
}

/* Splits the request-target into path and authority by its form (RFC 9112 §3.2). */
static int request_target(http1_request_t *req, const char **err)
{
    const char *t = req->target;
    size_t n = req->target_len;
    req->authority = t;
    req->authority_len = 0;
    if (req->connect) {
        if (!valid_authority(t, n, true))
            return *err = "CONNECT target is not host:port", HTTP1_E_BAD;
        req->authority = t;
        req->authority_len = (uint32_t)n;
        req->path = t;
        req->path_len = 0;
        return 0;
    }
    if (t[0] == '/') {
        req->path = t;
        req->path_len = (uint32_t)n;
        return 0;
    }
    if (n == 1 && t[0] == '*') {
        if (!(req->method_len == 7 && memcmp(req->method, "OPTIONS", 7) == 0))
            return *err = "asterisk-form target for a method other than OPTIONS", HTTP1_E_BAD;
        req->path = t;
        req->path_len = 1;
        return 0;
    }
    /* absolute-form: only http and https URIs make sense to route. */
    size_t i;
    if (n > 7 && EQ_LIT(t, 7, "http://"))
        i = 7;
    else if (n > 8 && EQ_LIT(t, 8, "https://"))
        i = 8;
    else
        return *err = "request-target is not origin-, absolute-, authority- or asterisk-form",
               HTTP1_E_BAD;
    size_t a = i;
    while (i < n && t[i] != '/' && t[i] != '?')
        i++;
    if (!valid_authority(t + a, i - a, false))
        return *err = "invalid authority in absolute-form target", HTTP1_E_BAD;
    req->authority = t + a;
    req->authority_len = (uint32_t)(i - a);
    if (i == n) {
        req->path = "/";
        req->path_len = 1;
    } else {
        req->path = t + i;
        req->path_len = (uint32_t)(n - i);
    }
    return 0;
}

/* Out of bytes: either wait for more or, if the limit cut the head, it is too large. */
static inline int out_of_bytes(size_t len, size_t max_head)
{
    return len >= max_head ? HTTP1_E_HEAD_TOO_LARGE : HTTP1_INCOMPLETE;
}

static inline size_t head_limit(size_t len, size_t max_head)
{
    size_t lim = len < max_head ? len : max_head;
    return lim > INT_MAX ? INT_MAX : lim;
}

#define FAIL(msg, code) return req->error = (msg), (code)

static int request_fields(const char *buf, const char *p, const char *end, size_t len,
                          size_t max_head, http1_request_t *req, framing_t *f)
{
    http_headers_t *hs = &req->headers;
    for (;;) {
        http_header_t tmp, *slot = hs->n < hs->cap ? &hs->v[hs->n] : &tmp;
        int r = field_line(&p, end, slot, &req->error);
        if (r == HTTP1_INCOMPLETE) {
            if (out_of_bytes(len, max_head) == HTTP1_INCOMPLETE)
                return HTTP1_INCOMPLETE;
            FAIL("request head too large", HTTP1_E_HEAD_TOO_LARGE);
        }
        if (r < 0)
            return r;
        if (r == 2)
            return (int)(p - buf);
        if (hs->n == hs->cap)
            FAIL("too many header fields", HTTP1_E_HEAD_TOO_LARGE);
        hs->n++;
        if ((r = note_field(f, slot, &req->error)) < 0)
            return r;
    }
}

int http1_parse_request(const char *buf, size_t len, size_t max_head, http1_request_t *req)
{
    const char *p = buf, *end = buf + head_limit(len, max_head);
    req->error = NULL;
    req->headers.n = 0;

    /* RFC 9112 §2.2: ignore empty lines before the request line (any number, within max_head). */
    while (p < end && *p == '\r') {
        if (end - p < 2)
            goto line_incomplete;
        if (p[1] != '\n')
            FAIL("bare CR before request line", HTTP1_E_BAD);
        p += 2;
    }
    req->method = p;
    while (p < end && tchar[(unsigned char)*p])
        p++;
    if (p == end)
        goto line_incomplete;
    if (*p != ' ' || p == req->method)
        FAIL(*p == '\n' ? "bare LF in request line" : "method is not a token", HTTP1_E_BAD);
    req->method_len = (uint32_t)(p - req->method);
    req->target = ++p;
    p = skip_target(p, end);
    if (p == end)
        goto line_incomplete;
    if (*p != ' ')
        FAIL(*p == '#' ? "fragment in request-target" : "invalid byte in request-target",
             HTTP1_E_BAD);
    if (p == req->target)
        FAIL("empty request-target", HTTP1_E_BAD);
    req->target_len = (uint32_t)(p - req->target);
    p++;
    if (end - p < 10)
        goto line_incomplete;
    int minor = parse_version(p, &req->error);
    if (minor < 0 && minor != HTTP1_E_VERSION)
        return minor;
    if (p[8] != '\r' || p[9] != '\n')
        FAIL(p[8] == '\n' ? "bare LF in request line" : "junk after HTTP-version", HTTP1_E_BAD);
    if (minor < 0)
        return minor;
    req->minor_version = minor;
    p += 10;

    req->connect = req->method_len == 7 && memcmp(req->method, "CONNECT", 7) == 0;
    int r = request_target(req, &req->error);
    if (r < 0)
        return r;

    framing_t f = {0};
    int head_len = request_fields(buf, p, end, len, max_head, req, &f);
    if (head_len <= 0)
        return head_len;

    if (f.hosts > 1)
        FAIL("more than one Host", HTTP1_E_BAD);
    if (f.hosts == 0 && minor == 1)
        FAIL("HTTP/1.1 request without Host", HTTP1_E_BAD);
    if (f.host != NULL && f.host->value_len > 0 &&
        !valid_authority(f.host->value, f.host->value_len, false))
        FAIL("invalid Host", HTTP1_E_BAD);
    if ((r = framing_body(&f, minor, &req->body, &req->error)) < 0)
        return r;
    if (req->connect && req->body != HTTP1_BODY_NONE)
        FAIL("CONNECT with a body", HTTP1_E_BAD);
    req->content_length = f.has_cl ? f.content_length : 0;
    if (req->authority_len == 0 && !req->connect && f.host != NULL) {
        req->authority = f.host->value;
        req->authority_len = f.host->value_len;
    }
    req->keep_alive = minor == 1 ? !f.conn_close : (f.conn_keep_alive && !f.conn_close);
    req->expect_continue = minor == 1 && f.expect_continue;
    req->upgrade = f.conn_upgrade && f.has_upgrade;
    return head_len;

line_incomplete:
    if (out_of_bytes(len, max_head) == HTTP1_INCOMPLETE)
        return HTTP1_INCOMPLETE;
    FAIL("request line too long", HTTP1_E_HEAD_TOO_LARGE);
}

#undef FAIL
#define FAIL(msg, code) return resp->error = (msg), (code)

int http1_parse_response(const char *buf, size_t len, size_t max_head, bool request_was_head,
                         bool request_was_connect, http1_response_t *resp)
{
    const char *p = buf, *end = buf + head_limit(len, max_head);
    resp->error = NULL;
    resp->headers.n = 0;

    if (end - p < 13)
        goto incomplete;
    int minor = parse_version(p, &resp->error);
    if (minor < 0)
        return minor;
    resp->minor_version = minor;
    if (p[8] != ' ' || p[9] < '0' || p[9] > '9' || p[10] < '0' || p[10] > '9' || p[11] < '0' ||
        p[11] > '9')
        FAIL("malformed status code", HTTP1_E_BAD);
    resp->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (resp->status < 100 || resp->status > 599)
        FAIL("status code out of range", HTTP1_E_BAD);
    p += 12;
    /* The SP before an empty reason is often left out; accept "HTTP/1.1 200\r\n" too. */
    if (*p == ' ')
        p++;
    else if (*p != '\r')
        FAIL(*p == '\n' ? "bare LF in status line" : "malformed status code", HTTP1_E_BAD);
    resp->reason = p;
    for (;;) {
        p = skip_value(p, end);
        if (p == end)
            goto incomplete;
        if (*p != '\t')
            break;
        p++;
    }
    if (*p != '\r')
        FAIL(*p == '\n' ? "bare LF in status line" : "control character in reason phrase",
             HTTP1_E_BAD);
    if (end - p < 2)
        goto incomplete;
    if (p[1] != '\n')
        FAIL("bare CR in status line", HTTP1_E_BAD);
    resp->reason_len = (uint32_t)(p - resp->reason);
    p += 2;

    framing_t f = {0};
    http_headers_t *hs = &resp->headers;
    int r;
    for (;;) {
        http_header_t tmp, *slot = hs->n < hs->cap ? &hs->v[hs->n] : &tmp;
        r = field_line(&p, end, slot, &resp->error);
        if (r == HTTP1_INCOMPLETE)
            goto incomplete;
        if (r < 0)
            return r;
        if (r == 2)
            break;
        if (hs->n == hs->cap)
            FAIL("too many header fields", HTTP1_E_HEAD_TOO_LARGE);
        hs->n++;
        if ((r = note_field(&f, slot, &resp->error)) < 0)
            return r;
    }

    http1_body_kind_t kind;
    if ((r = framing_body(&f, minor, &kind, &resp->error)) < 0)
        return r;
    resp->content_length = f.has_cl ? f.content_length : 0;
    int s = resp->status;
    if (request_was_head || s < 200 || s == 204 || s == 304 || (request_was_connect && s < 300))
        kind = HTTP1_BODY_NONE;
    else if (kind == HTTP1_BODY_NONE && !f.has_cl)
        kind = HTTP1_BODY_UNTIL_CLOSE;
    resp->body = kind;
    resp->keep_alive = kind != HTTP1_BODY_UNTIL_CLOSE &&
                       (minor == 1 ? !f.conn_close : (f.conn_keep_alive && !f.conn_close));
    return (int)(p - buf);

incomplete:
    if (out_of_bytes(len, max_head) == HTTP1_INCOMPLETE)
        return HTTP1_INCOMPLETE;
    FAIL("response head too large", HTTP1_E_HEAD_TOO_LARGE);
}
