/* ClientHello sniffing (RFC 8446 §4.1.2, §5.1; RFC 6066 §3; RFC 7301 §3.1): first the record
 * layer is walked to find where the handshake message ends, then the message is parsed through
 * a cursor that steps over record headers, so a fragmented hello is read without copying it. */
#include "proxy/listener/tls_hello.h"

#include <string.h>

#define REC_HEADER       5
#define REC_MAX          16384 /* 2^14: the plaintext limit of one record */
#define HS_HEADER        4
#define CT_HANDSHAKE     0x16
#define HS_CLIENT_HELLO  1
#define EXT_SERVER_NAME  0
#define EXT_ALPN         16
#define EXT_SUPP_VERSION 43
#define SNI_HOST_NAME    0
#define TLS13            0x0304

static int fail(tls_hello_t *h, int rc, const char *why)
{
    h->error = why;
    return rc;
}

static int need_more(tls_hello_t *h, size_t need)
{
    h->need = (uint32_t)need;
    return TLS_HELLO_NEED_MORE;
}

static size_t rd16(const uint8_t *p)
{
    return (size_t)p[0] << 8 | p[1];
}

/* Checks the avail (<= 5) bytes of a record header present at p. On the first record a wrong
 * content type or major version means the peer is not speaking TLS at all; later, inside a
 * hello, it means the hello is malformed. */
static int check_record_header(const uint8_t *p, size_t avail, bool first, tls_hello_t *h)
{
    if (avail >= 1 && p[0] != CT_HANDSHAKE)
        return first ? TLS_HELLO_NOT_TLS
                     : fail(h, TLS_HELLO_ERROR, "a non-handshake record inside the ClientHello");
    if (avail >= 2 && p[1] != 3)
        return first
                   ? TLS_HELLO_NOT_TLS
                   : fail(h, TLS_HELLO_ERROR, "a record version other than 3.x in the ClientHello");
    if (avail >= 3 && p[2] > 4)
        return fail(h, TLS_HELLO_ERROR, "record version above TLS 1.3");
    if (avail >= 5 && rd16(p + 3) == 0)
        return fail(h, TLS_HELLO_ERROR, "empty handshake record");
    if (avail >= 5 && rd16(p + 3) > REC_MAX)
        return fail(h, TLS_HELLO_ERROR, "record longer than 2^14 bytes");
    return 0;
}

/* Walks the handshake records at buf[0..len) until the first handshake message is complete.
 * Returns TLS_HELLO_OK with *msg_len (header included) and h->length set, or another result.
 * Every bound below is a lower bound on where the message can end, so that a prefix of an
 * accepted input always asks for more and never gets a different answer. */
static int frame(const uint8_t *buf, size_t len, tls_hello_t *h, size_t *msg_len)
{
    uint8_t hs[HS_HEADER];
    size_t have = 0;  /* message bytes seen, header included */
    size_t total = 0; /* the message's length once its header is known */
    size_t pos = 0;   /* the current record header */
    for (;;) {
        size_t avail = len - pos;
        int rc =
            check_record_header(buf + pos, avail < REC_HEADER ? avail : REC_HEADER, pos == 0, h);
        if (rc != 0)
            return rc;
        if (pos == 0 && avail >= 3)
            h->record_version = (uint16_t)rd16(buf + 1);
        size_t want = total ? total - have : HS_HEADER - have; /* still missing, at least */
        if (avail < REC_HEADER)
            return need_more(h, pos + REC_HEADER + want);

        size_t rec = rd16(buf + pos + 3), body = pos + REC_HEADER;
        size_t got = rec < len - body ? rec : len - body;
        size_t i = 0;
        for (; total == 0 && i < got; i++) {
            hs[have++] = buf[body + i];
            if (have == 1 && hs[0] != HS_CLIENT_HELLO)
                return fail(h, TLS_HELLO_ERROR, "the first handshake message is not a ClientHello");
            if (have == HS_HEADER) {
                size_t n = (size_t)hs[1] << 16 | rd16(hs + 2);
                if (n > TLS_HELLO_MAX_MESSAGE)
                    return fail(h, TLS_HELLO_TOO_LARGE, "ClientHello longer than 16 KiB");
                total = HS_HEADER + n;
            }
        }
        if (total != 0) {
            size_t take = got - i < total - have ? got - i : total - have;
            have += take;
            i += take;
        }
        want = total ? total - have : HS_HEADER - have;
        size_t rest = rec - i; /* bytes of this record after the message bytes seen */
        size_t end = want <= rest ? body + i + want : body + rec + REC_HEADER + (want - rest);
        if (end > TLS_HELLO_MAX_INPUT)
            return fail(h, TLS_HELLO_TOO_LARGE, "ClientHello records longer than 64 KiB");
        if (want == 0) {
            h->length = (uint32_t)(body + i);
            *msg_len = total;
            return TLS_HELLO_OK;
        }
        /* Here every byte present in the record was taken: a part of it is missing when i < rec,
         * and end > len then. */
        if (i < rec)
            return need_more(h, end);
        pos = body + rec;
    }
}

/* Reads the handshake message across records. frame() has checked that every record up to
 * limit is present and non-empty; the limit checks only guard that invariant. */
typedef struct cursor {
    const uint8_t *buf;
    size_t pos;   /* next byte, or the next record header when left == 0 */
    size_t left;  /* message bytes left in the current record */
    size_t off;   /* offset in the handshake message */
    size_t limit; /* the end of the message in buf */
} cursor_t;

/* Copies n message bytes to dst (or skips them when dst is NULL); n must not pass the end. */
static int cur_read(cursor_t *c, uint8_t *dst, size_t n)
{
    while (n > 0) {
        if (c->left == 0) {
            if (c->limit - c->pos <= REC_HEADER)
                return -1;
            c->left = rd16(c->buf + c->pos + 3);
            c->pos += REC_HEADER;
        }
        size_t k = n < c->left ? n : c->left;
        if (k > c->limit - c->pos)
            return -1;
        if (dst != NULL) {
            memcpy(dst, c->buf + c->pos, k);
            dst += k;
        }
        c->pos += k;
        c->left -= k;
        c->off += k;
        n -= k;
    }
    return 0;
}

/* n bytes within [off, end), copied to dst or skipped. */
static int take(cursor_t *c, size_t end, size_t n, uint8_t *dst)
{
    if (n > end - c->off)
        return -1;
    return cur_read(c, dst, n);
}

static int get_u8(cursor_t *c, size_t end, size_t *v)
{
    uint8_t b;
    if (take(c, end, 1, &b) < 0)
        return -1;
    *v = b;
    return 0;
}

static int get_u16(cursor_t *c, size_t end, size_t *v)
{
    uint8_t b[2];
    if (take(c, end, 2, b) < 0)
        return -1;
    *v = rd16(b);
    return 0;
}

static bool host_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_' || ch == '.';
}

/* A DNS name as SNI carries it: no trailing dot, no empty label, no byte that could end up in a
 * log line or a matcher as something else. Lowercases in place. */
static bool host_name_ok(char *s, size_t n)
{
    if (s[0] == '.' || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!host_char(s[i]) || (s[i] == '.' && s[i + 1] == '.'))
            return false;
        if (s[i] >= 'A' && s[i] <= 'Z')
            s[i] = (char)(s[i] - 'A' + 'a');
    }
    return true;
}

static int parse_server_name(cursor_t *c, size_t end, tls_hello_t *h)
{
    size_t n;
    if (get_u16(c, end, &n) < 0 || n != end - c->off || n == 0)
        return fail(h, TLS_HELLO_ERROR, "server_name list length does not match the extension");
    while (c->off < end) {
        size_t type, len;
        if (get_u8(c, end, &type) < 0 || get_u16(c, end, &len) < 0 || len > end - c->off)
            return fail(h, TLS_HELLO_ERROR, "server_name entry longer than its list");
        if (type != SNI_HOST_NAME) { /* no other type is defined; skip, as RFC 6066 allows */
            if (take(c, end, len, NULL) < 0)
                return fail(h, TLS_HELLO_ERROR, "server_name entry longer than its list");
            continue;
        }
        if (h->server_name_len != 0)
            return fail(h, TLS_HELLO_ERROR, "more than one host_name in server_name");
        if (len == 0 || len > TLS_HELLO_MAX_SNI)
            return fail(h, TLS_HELLO_ERROR, "host_name empty or longer than 255 bytes");
        if (take(c, end, len, (uint8_t *)h->server_name) < 0)
            return fail(h, TLS_HELLO_ERROR, "server_name entry longer than its list");
        h->server_name[len] = '\0';
        if (!host_name_ok(h->server_name, len)) {
            h->server_name[0] = '\0';
            return fail(h, TLS_HELLO_ERROR, "host_name is not a DNS name");
        }
        h->server_name_len = len;
    }
    return 0;
}

static int parse_alpn(cursor_t *c, size_t end, tls_hello_t *h)
{
    size_t n, used = 0;
    if (get_u16(c, end, &n) < 0 || n != end - c->off || n < 2)
        return fail(h, TLS_HELLO_ERROR, "ALPN list length does not match the extension");
    while (c->off < end) {
        size_t len;
        if (get_u8(c, end, &len) < 0 || len == 0)
            return fail(h, TLS_HELLO_ERROR, "empty ALPN protocol name");
        if (h->n_alpn == TLS_HELLO_MAX_ALPN || len + 1 > sizeof(h->alpn_buf) - used) {
            h->alpn_truncated = true;
            if (take(c, end, len, NULL) < 0)
                return fail(h, TLS_HELLO_ERROR, "ALPN protocol name longer than its list");
            continue;
        }
        char *dst = h->alpn_buf + used;
        if (take(c, end, len, (uint8_t *)dst) < 0)
            return fail(h, TLS_HELLO_ERROR, "ALPN protocol name longer than its list");
        dst[len] = '\0';
        h->alpn[h->n_alpn] = dst;
        h->alpn_len[h->n_alpn] = (uint8_t)len;
        h->n_alpn++;
        used += len + 1;
    }
    return 0;
}

static bool grease(size_t v)
{
    return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff); /* RFC 8701 */
}

static int parse_supported_versions(cursor_t *c, size_t end, tls_hello_t *h)
{
    size_t n, best = 0;
    if (get_u8(c, end, &n) < 0 || n != end - c->off || n < 2 || n % 2 != 0)
        return fail(h, TLS_HELLO_ERROR, "supported_versions length does not match the extension");
    while (c->off < end) {
        size_t v;
        if (get_u16(c, end, &v) < 0)
            return fail(h, TLS_HELLO_ERROR,
                        "supported_versions length does not match the extension");
        if (grease(v) || (v >> 8) != 3)
            continue;
        if (v == TLS13)
            h->tls13 = true;
        if (v > best)
            best = v;
    }
    if (best != 0) /* RFC 8446 §4.2.1: the list, not legacy_version, says what the client has */
        h->max_version = (uint16_t)best;
    return 0;
}

static int parse_extensions(cursor_t *c, size_t end, tls_hello_t *h)
{
    unsigned seen = 0;
    while (c->off < end) {
        size_t type, n;
        if (get_u16(c, end, &type) < 0 || get_u16(c, end, &n) < 0 || n > end - c->off)
            return fail(h, TLS_HELLO_ERROR, "extension longer than the extension block");
        size_t ext_end = c->off + n;
        /* Two copies of an extension we read could mean one thing to us and another to the
         * TLS stack behind us: refuse them (RFC 8446 §4.2 forbids them anyway). */
        unsigned bit = type == EXT_SERVER_NAME    ? 1u
                       : type == EXT_ALPN         ? 2u
                       : type == EXT_SUPP_VERSION ? 4u
                                                  : 0u;
        if (seen & bit)
            return fail(h, TLS_HELLO_ERROR, "duplicate extension");
        seen |= bit;
        int rc = 0;
        switch (type) {
        case EXT_SERVER_NAME:
            rc = parse_server_name(c, ext_end, h);
            break;
        case EXT_ALPN:
            rc = parse_alpn(c, ext_end, h);
            break;
        case EXT_SUPP_VERSION:
            rc = parse_supported_versions(c, ext_end, h);
            break;
        default:
            if (take(c, ext_end, n, NULL) < 0)
                rc = fail(h, TLS_HELLO_ERROR, "extension longer than the extension block");
            break;
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The ClientHello body, from legacy_version to the end of the message (RFC 8446 §4.1.2). */
static int parse_client_hello(cursor_t *c, size_t end, tls_hello_t *h)
{
    size_t v, n;
    if (get_u16(c, end, &v) < 0)
        return fail(h, TLS_HELLO_ERROR, "ClientHello ends in its version");
    if ((v >> 8) != 3)
        return fail(h, TLS_HELLO_ERROR, "ClientHello version is not 3.x");
    h->legacy_version = h->max_version = (uint16_t)v;
    if (take(c, end, 32, NULL) < 0)
        return fail(h, TLS_HELLO_ERROR, "ClientHello ends in its random");
    if (get_u8(c, end, &n) < 0 || n > 32 || take(c, end, n, NULL) < 0)
        return fail(h, TLS_HELLO_ERROR, "bad legacy_session_id length");
    if (get_u16(c, end, &n) < 0 || n < 2 || n % 2 != 0 || take(c, end, n, NULL) < 0)
        return fail(h, TLS_HELLO_ERROR, "bad cipher_suites length");
    if (get_u8(c, end, &n) < 0 || n < 1 || take(c, end, n, NULL) < 0)
        return fail(h, TLS_HELLO_ERROR, "bad compression_methods length");
    if (c->off == end)
        return 0; /* no extensions at all: allowed before TLS 1.3 */
    if (get_u16(c, end, &n) < 0 || n != end - c->off)
        return fail(h, TLS_HELLO_ERROR, "extension block length does not match the ClientHello");
    return parse_extensions(c, end, h);
}

int tls_hello_parse(const uint8_t *buf, size_t len, tls_hello_t *h)
{
    memset(h, 0, sizeof(*h));
    if (len == 0) /* buf may be NULL then */
        return need_more(h, REC_HEADER + HS_HEADER);
    size_t msg_len = 0;
    int rc = frame(buf, len, h, &msg_len);
    if (rc != TLS_HELLO_OK)
        return rc;
    cursor_t c = {.buf = buf, .pos = 0, .left = 0, .off = 0, .limit = h->length};
    if (cur_read(&c, NULL, HS_HEADER) < 0)
        return fail(h, TLS_HELLO_ERROR, "ClientHello framing");
    rc = parse_client_hello(&c, msg_len, h);
    if (rc < 0) {
        h->n_alpn = 0;
        h->server_name_len = 0;
        h->server_name[0] = '\0';
        return rc;
    }
    return TLS_HELLO_OK;
}

bool tls_hello_offers_alpn(const tls_hello_t *h, const char *name, size_t len)
{
    for (size_t i = 0; i < h->n_alpn; i++)
        if (h->alpn_len[i] == len && memcmp(h->alpn[i], name, len) == 0)
            return true;
    return false;
}
