/* libFuzzer harness for the ClientHello sniffer: the input as peeked bytes, and (so that mutations
 * reach the extensions without first fixing two outer lengths) as a ClientHello body that the
 * harness frames itself. An accepted hello must read the same however its records are cut, every
 * prefix of it must ask for more, and every answer must keep the header's promises. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/listener/tls_hello.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

#define MSG_MAX (4 + TLS_HELLO_MAX_MESSAGE)

static uint8_t msg[MSG_MAX];
static uint8_t framed[6 * MSG_MAX]; /* one-byte records at worst */

static size_t rd16(const uint8_t *p)
{
    return (size_t)p[0] << 8 | p[1];
}

/* Records of at most frag bytes carrying msg[0..n), with record version ver. */
static size_t frame(const uint8_t *m, size_t n, size_t frag, uint16_t ver, uint8_t *out)
{
    size_t w = 0;
    for (size_t off = 0; off < n; off += frag) {
        size_t k = n - off < frag ? n - off : frag;
        out[w++] = 0x16;
        out[w++] = (uint8_t)(ver >> 8);
        out[w++] = (uint8_t)ver;
        out[w++] = (uint8_t)(k >> 8);
        out[w++] = (uint8_t)k;
        memcpy(out + w, m + off, k);
        w += k;
    }
    return w;
}

static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

/* What every answer promises, whatever the input. */
static void check_answer(int rc, const tls_hello_t *h, const uint8_t *in, size_t len)
{
    CHECK(rc == TLS_HELLO_NEED_MORE || rc == TLS_HELLO_OK || rc == TLS_HELLO_NOT_TLS ||
          rc == TLS_HELLO_ERROR || rc == TLS_HELLO_TOO_LARGE);
    CHECK((rc < 0) == (h->error != NULL));
    if (rc == TLS_HELLO_NEED_MORE)
        CHECK(h->need > len && h->need <= TLS_HELLO_MAX_INPUT);
    if (rc == TLS_HELLO_NOT_TLS)
        CHECK(len >= 1 && (in[0] != 0x16 || (len >= 2 && in[1] != 3)));
    if (rc != TLS_HELLO_OK) {
        CHECK(h->server_name_len == 0 && h->n_alpn == 0);
        return;
    }
    CHECK(h->length <= len && h->length <= TLS_HELLO_MAX_INPUT);
    CHECK(h->server_name_len <= TLS_HELLO_MAX_SNI);
    CHECK(strlen(h->server_name) == h->server_name_len);
    for (size_t i = 0; i < h->server_name_len; i++)
        CHECK(host_char(h->server_name[i]));
    CHECK(h->n_alpn <= TLS_HELLO_MAX_ALPN);
    for (size_t i = 0; i < h->n_alpn; i++) {
        CHECK(h->alpn_len[i] > 0);
        CHECK(h->alpn[i] >= h->alpn_buf &&
              h->alpn[i] + h->alpn_len[i] < h->alpn_buf + sizeof(h->alpn_buf));
        CHECK(h->alpn[i][h->alpn_len[i]] == '\0');
        CHECK(tls_hello_offers_alpn(h, h->alpn[i], h->alpn_len[i]));
    }
    CHECK(h->legacy_version >> 8 == 3 && h->max_version >= 0x0300 && h->max_version <= 0x03ff);
    CHECK(!h->tls13 || h->max_version >= 0x0304);
}

static void check_same(const tls_hello_t *a, const tls_hello_t *b)
{
    CHECK(a->legacy_version == b->legacy_version && a->max_version == b->max_version);
    CHECK(a->tls13 == b->tls13);
    CHECK(a->server_name_len == b->server_name_len);
    CHECK(strcmp(a->server_name, b->server_name) == 0);
    CHECK(a->n_alpn == b->n_alpn && a->alpn_truncated == b->alpn_truncated);
    for (size_t i = 0; i < a->n_alpn; i++) {
        CHECK(a->alpn_len[i] == b->alpn_len[i]);
        CHECK(memcmp(a->alpn[i], b->alpn[i], a->alpn_len[i]) == 0);
    }
}

static int parse(const uint8_t *in, size_t len, tls_hello_t *h)
{
    int rc = tls_hello_parse(in, len, h);
    check_answer(rc, h, in, len);
    return rc;
}

/* An accepted hello: prefixes ask for more, and the same message in one record reads the same. */
static void check_accepted(const uint8_t *in, const tls_hello_t *h)
{
    size_t cuts[3] = {h->length - 1, h->length / 2, (h->length * 7) / 11};
    for (size_t i = 0; i < 3; i++) {
        tls_hello_t part;
        CHECK(parse(in, cuts[i], &part) == TLS_HELLO_NEED_MORE);
        CHECK(part.need > cuts[i] && part.need <= h->length);
    }
    size_t n = 0;
    for (size_t pos = 0; pos < h->length;) {
        size_t rec = rd16(in + pos + 3), body = pos + 5;
        size_t k = rec < h->length - body ? rec : h->length - body;
        CHECK(n + k <= MSG_MAX);
        memcpy(msg + n, in + body, k);
        n += k;
        pos = body + rec;
    }
    CHECK(n == 4 + ((size_t)msg[1] << 16 | rd16(msg + 2)));
    if (n > 16384)
        return;
    size_t w = frame(msg, n, n, (uint16_t)rd16(in + 1), framed);
    tls_hello_t again;
    CHECK(parse(framed, w, &again) == TLS_HELLO_OK && again.length == w);
    check_same(h, &again);
}

/* body[0..n) as a ClientHello body, in one record and in records of frag bytes. */
static void check_body(const uint8_t *body, size_t n, size_t frag)
{
    if (n > 16384 - 4)
        n = 16384 - 4;
    msg[0] = 1;
    msg[1] = (uint8_t)(n >> 16);
    msg[2] = (uint8_t)(n >> 8);
    msg[3] = (uint8_t)n;
    memcpy(msg + 4, body, n);
    tls_hello_t one, cut;
    size_t w = frame(msg, n + 4, n + 4, 0x0301, framed);
    int rc = parse(framed, w, &one);
    CHECK(rc != TLS_HELLO_NEED_MORE && rc != TLS_HELLO_NOT_TLS && rc != TLS_HELLO_TOO_LARGE);
    if (rc == TLS_HELLO_OK) {
        CHECK(one.length == w);
        check_accepted(framed, &one);
    }
    w = frame(msg, n + 4, frag, 0x0303, framed);
    int rc2 = parse(framed, w, &cut);
    if (w > TLS_HELLO_MAX_INPUT) {
        CHECK(rc2 == TLS_HELLO_TOO_LARGE);
        return;
    }
    CHECK(rc2 == rc);
    if (rc == TLS_HELLO_OK)
        check_same(&one, &cut);
    else
        CHECK(strcmp(one.error, cut.error) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tls_hello_t h;
    if (parse(data, size, &h) == TLS_HELLO_OK)
        check_accepted(data, &h);
    /* A captured hello's body starts after its record and handshake headers. */
    size_t skip = size >= 9 && data[0] == 0x16 ? 9 : 0;
    check_body(data + skip, size - skip, 1 + size % 251);
    return 0;
}
