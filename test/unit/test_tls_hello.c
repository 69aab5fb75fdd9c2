/* ClientHello sniffing: real hellos from openssl s_client, curl and an mbedTLS client give their
 * SNI and ALPN however the records are split, every prefix asks for more, plaintext is told apart
 * from the first byte, and each inconsistent length is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/listener/tls_hello.h"

/* Captured from real clients connecting to a listener that only recorded the bytes:
 *   openssl_h2:    openssl s_client -servername x -alpn h2,http/1.1 (OpenSSL 3.0)
 *   openssl_tls12: openssl s_client -servername api.example.com -tls1_2 -alpn http/1.1
 *   openssl_nosni: openssl s_client -noservername
 *   curl:          curl https://www.example.com:PORT/ (curl 7.88, OpenSSL 3.0; padded to 512)
 *   mbedtls:       an mbedTLS 2.28 client with Istio's SNI and ALPN for sidecar-to-sidecar mTLS */
static const char openssl_h2_hex[] =
    "16030101400100013c0303d95ced85a4c558fdb3910601fcfe750b25c30e809801c420095a039133e004dd20351f"
    "f9115aa45fbce264f7ff22c43cd50095a7fc7c73c5ebcbad9732b1db8b56003e130213031301c02cc030009fcca9"
    "cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f"
    "00ff010000b500000006000400000178000b000403000102000a00160014001d0017001e00190018010001010102"
    "01030104002300000010000e000c02683208687474702f312e310016000000170000000d002a0028040305030603"
    "080708080809080a080b080408050806040105010601030303010302040205020602002b00090803040303030203"
    "01002d00020101003300260024001d0020624f0053fc66543caa3029ab3b337f174e0567ab803fe60cba2d96acb3"
    "2e690b";
static const char openssl_tls12_hex[] =
    "16030100de010000da030372b3d995c0319d5fff6e1c1c857720ec4fa85ce85db9ebc9c22362f18808776a000038"
    "c02cc030009fcca9cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c"
    "003d003c0035002f00ff0100007900000014001200000f6170692e6578616d706c652e636f6d000b000403000102"
    "000a000c000a001d0017001e00190018002300000010000b000908687474702f312e310016000000170000000d00"
    "2a0028040305030603080708080809080a080b080408050806040105010601030303010302040205020602";
static const char openssl_nosni_hex[] =
    "1603010124010001200303c2e320de7bde945d4226531efdf4567a3a32612cf53b048f79dc11501fca9b2a208f1d"
    "c793bd8a0a337483ac4ed94b7780d6971cb062f6bde0b0c431b336d16867003e130213031301c02cc030009fcca9"
    "cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f"
    "00ff01000099000b000403000102000a00160014001d0017001e0019001801000101010201030104002300000016"
    "000000170000000d002a0028040305030603080708080809080a080b080408050806040105010601030303010302"
    "040205020602002b0009080304030303020301002d00020101003300260024001d002056b6b288339c639d679734"
    "1810e2a2b303f88723d238364967284464d81f4864";
static const char curl_hex[] =
    "1603010200010001fc03030debb074010555b8fb42e65ea2b023d80aed9cf410347196896fbc5a6bf4972120e4ac"
    "f87ac2708dc848b8a0a929887e4e001d391ed74f25eff198f72505358632003e130213031301c02cc030009fcca9"
    "cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f"
    "00ff0100017500000014001200000f7777772e6578616d706c652e636f6d000b000403000102000a00160014001d"
    "0017001e00190018010001010102010301040010000e000c02683208687474702f312e3100160000001700000031"
    "0000000d002a0028040305030603080708080809080a080b08040805080604010501060103030301030204020502"
    "0602002b0009080304030303020301002d00020101003300260024001d0020ad1eb5adb90d6c4283e1973695864f"
    "6c91408ec4950f4131650e3d807cfbab03001500ae00000000000000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000";
static const char mbedtls_hex[] =
    "16030101740100017003036b06b6f828289dabc60f19140c396f25ac8222fb1665aeba2eaa7a3d770889c60000a0"
    "cca8cca9ccaac02cc030009fc0adc09fc024c028006bc00ac0140039c0afc0a3c087c08bc07dc073c07700c40088"
    "c02bc02f009ec0acc09ec023c0270067c009c0130033c0aec0a2c086c08ac07cc072c07600be0045009dc09d003d"
    "0035c032c02ac00fc02ec026c005c0a1c07b00c00084c08dc079c089c075009cc09c003c002fc031c029c00ec02d"
    "c025c004c0a0c07a00ba0041c08cc078c088c07400ff010000a70000003800360000336f7574626f756e645f2e39"
    "3038305f2e5f2e726576696577732e64656661756c742e7376632e636c75737465722e6c6f63616c000d00120010"
    "06030601050305010403040103030301000a001c001a0019001c0018001b00170016001a0015001400130012001d"
    "001e000b0002010000160000001700000010001f001d13697374696f2d706565722d65786368616e676505697374"
    "696f02683200230000";

#define BIG (128 * 1024)

static uint8_t in[BIG], out[BIG];

static size_t unhex(const char *hex, uint8_t *dst)
{
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        dst[i] = (uint8_t)v;
    }
    return n;
}

static int parse(const uint8_t *buf, size_t len, tls_hello_t *h)
{
    /* A private copy, so that ASan sees any read past len. */
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len > 0)
        memcpy(copy, buf, len);
    int rc = tls_hello_parse(copy, len, h);
    free(copy);
    return rc;
}

static size_t put16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return 2;
}

/* The handshake message msg[0..n) cut into records of at most frag bytes. */
static size_t reframe(const uint8_t *msg, size_t n, size_t frag, uint8_t *dst)
{
    size_t w = 0;
    for (size_t off = 0; off < n; off += frag) {
        size_t k = n - off < frag ? n - off : frag;
        dst[w++] = 0x16;
        dst[w++] = 3;
        dst[w++] = 1;
        w += put16(dst + w, k);
        memcpy(dst + w, msg + off, k);
        w += k;
    }
    return w;
}

/* A minimal ClientHello in one record carrying the given extension block (none when ext is
 * NULL). Offsets: record header 0, handshake header 5, legacy_version 9, session_id length 43,
 * cipher_suites length 44, compression_methods length 48, extension block length 50. */
static size_t hello(uint8_t *dst, const uint8_t *ext, size_t ext_len)
{
    uint8_t *p = dst + 9;
    *p++ = 3;
    *p++ = 3;
    memset(p, 0x5a, 32);
    p += 32;
    *p++ = 0;
    p += put16(p, 2);
    *p++ = 0x13;
    *p++ = 0x01;
    *p++ = 1;
    *p++ = 0;
    if (ext != NULL) {
        p += put16(p, ext_len);
        memcpy(p, ext, ext_len);
        p += ext_len;
    }
    size_t body = (size_t)(p - (dst + 9));
    dst[0] = 0x16;
    dst[1] = 3;
    dst[2] = 1;
    put16(dst + 3, body + 4);
    dst[5] = 1;
    dst[6] = (uint8_t)(body >> 16);
    put16(dst + 7, body);
    return (size_t)(p - dst);
}

static size_t ext_header(uint8_t *p, unsigned type, size_t len)
{
    put16(p, type);
    put16(p + 2, len);
    return 4;
}

static size_t sni_ext(uint8_t *p, const char *name, size_t n)
{
    size_t w = ext_header(p, 0, n + 5);
    w += put16(p + w, n + 3);
    p[w++] = 0;
    w += put16(p + w, n);
    memcpy(p + w, name, n);
    return w + n;
}

static size_t alpn_ext(uint8_t *p, const char *const *protos, size_t k)
{
    size_t list = 0;
    for (size_t i = 0; i < k; i++)
        list += 1 + strlen(protos[i]);
    size_t w = ext_header(p, 16, list + 2);
    w += put16(p + w, list);
    for (size_t i = 0; i < k; i++) {
        p[w++] = (uint8_t)strlen(protos[i]);
        memcpy(p + w, protos[i], strlen(protos[i]));
        w += strlen(protos[i]);
    }
    return w;
}

static size_t versions_ext(uint8_t *p, const uint16_t *v, size_t k)
{
    size_t w = ext_header(p, 43, 1 + 2 * k);
    p[w++] = (uint8_t)(2 * k);
    for (size_t i = 0; i < k; i++)
        w += put16(p + w, v[i]);
    return w;
}

static void assert_alpn(const tls_hello_t *h, size_t i, const char *want)
{
    assert_true(i < h->n_alpn);
    assert_int_equal(h->alpn_len[i], strlen(want));
    assert_memory_equal(h->alpn[i], want, strlen(want) + 1);
}

static void test_tls_hello_openssl_s_client_gives_sni_alpn_and_tls13(void **state)
{
    (void)state;
    tls_hello_t h;
    size_t n = unhex(openssl_h2_hex, in);
    assert_int_equal(parse(in, n, &h), TLS_HELLO_OK);
    assert_string_equal(h.server_name, "x");
    assert_int_equal(h.server_name_len, 1);
    assert_int_equal(h.n_alpn, 2);
    assert_alpn(&h, 0, "h2");
    assert_alpn(&h, 1, "http/1.1");
    assert_false(h.alpn_truncated);
    assert_int_equal(h.record_version, 0x0301);
    assert_int_equal(h.legacy_version, 0x0303);
    assert_int_equal(h.max_version, 0x0304);
    assert_true(h.tls13);
    assert_int_equal(h.length, n);
    assert_null(h.error);
}

static void test_tls_hello_curl_gives_sni_and_alpn(void **state)
{
    (void)state;
    tls_hello_t h;
    size_t n = unhex(curl_hex, in);
    assert_int_equal(parse(in, n, &h), TLS_HELLO_OK);
    assert_string_equal(h.server_name, "www.example.com");
    assert_int_equal(h.n_alpn, 2);
    assert_alpn(&h, 0, "h2");
    assert_alpn(&h, 1, "http/1.1");
    assert_true(h.tls13);
    assert_int_equal(h.length, 517);
}

static void test_tls_hello_mbedtls_sidecar_name_keeps_underscores(void **state)
{
    (void)state;
    tls_hello_t h;
    size_t n = unhex(mbedtls_hex, in);
    assert_int_equal(parse(in, n, &h), TLS_HELLO_OK);
    assert_string_equal(h.server_name, "outbound_.9080_._.reviews.default.svc.cluster.local");
    assert_int_equal(h.n_alpn, 3);
    assert_alpn(&h, 0, "istio-peer-exchange");
    assert_alpn(&h, 1, "istio");
    assert_alpn(&h, 2, "h2");
    assert_true(tls_hello_offers_alpn(&h, "istio", 5));
    assert_false(tls_hello_offers_alpn(&h, "istio-peer", 10));
    assert_false(tls_hello_offers_alpn(&h, "http/1.1", 8));
    assert_false(h.tls13);
    assert_int_equal(h.max_version, 0x0303);
}

static void test_tls_hello_tls12_only_client_is_not_tls13(void **state)
{
    (void)state;
    tls_hello_t h;
    size_t n = unhex(openssl_tls12_hex, in);
    assert_int_equal(parse(in, n, &h), TLS_HELLO_OK);
    assert_string_equal(h.server_name, "api.example.com");
    assert_int_equal(h.n_alpn, 1);
    assert_alpn(&h, 0, "http/1.1");
    assert_false(h.tls13);
    assert_int_equal(h.legacy_version, 0x0303);
    assert_int_equal(h.max_version, 0x0303);
}

static void test_tls_hello_without_sni_or_alpn_is_still_tls(void **state)
{
    (void)state;
    tls_hello_t h;
    size_t n = unhex(openssl_nosni_hex, in);
    assert_int_equal(parse(in, n, &h), TLS_HELLO_OK);
    assert_string_equal(h.server_name, "");
    assert_int_equal(h.server_name_len, 0);
    assert_int_equal(h.n_alpn, 0);
    assert_false(tls_hello_offers_alpn(&h, "h2", 2));
    assert_true(h.tls13);
}

static const char *const captures[] = {openssl_h2_hex, openssl_tls12_hex, openssl_nosni_hex,
                                       curl_hex, mbedtls_hex};

static void test_tls_hello_every_prefix_needs_more(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof(captures) / sizeof(captures[0]); c++) {
        size_t n = unhex(captures[c], in);
        for (size_t cut = 0; cut < n; cut++) {
            tls_hello_t h;
            assert_int_equal(parse(in, cut, &h), TLS_HELLO_NEED_MORE);
            assert_true(h.need > cut);
            assert_true(h.need <= n);
        }
    }
}

static void test_tls_hello_need_counts_the_rest_of_the_record(void **state)
{
    (void)state;
    tls_hello_t h;
    size_t n = unhex(curl_hex, in);
    assert_int_equal(n, 517);
    assert_int_equal(parse(in, 100, &h), TLS_HELLO_NEED_MORE);
    assert_int_equal(h.need, 517);
    assert_int_equal(parse(in, 3, &h), TLS_HELLO_NEED_MORE);
    assert_int_equal(h.need, 9); /* a record header and a handshake header */
}

static void test_tls_hello_http_requests_are_not_tls(void **state)
{
    (void)state;
    static const char *const plain[] = {
        "GET / HTTP/1.1\r\nHost: reviews:9080\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "POST /api HTTP/1.0\r\n",
        "G",
        "\r\n",
    };
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        tls_hello_t h;
        assert_int_equal(parse((const uint8_t *)plain[i], strlen(plain[i]), &h), TLS_HELLO_NOT_TLS);
    }
    /* A handshake content type but no TLS major version: not TLS either. */
    tls_hello_t h;
    assert_int_equal(parse((const uint8_t *)"\x16\x02", 2, &h), TLS_HELLO_NOT_TLS);
    assert_int_equal(parse((const uint8_t *)"\x16", 1, &h), TLS_HELLO_NEED_MORE);
    assert_int_equal(parse(NULL, 0, &h), TLS_HELLO_NEED_MORE);
}

static void test_tls_hello_sslv2_hello_is_not_tls(void **state)
{
    (void)state;
    /* An SSLv2-compatible ClientHello: two-byte length with the top bit set, msg type 1. */
    static const uint8_t v2[] = {0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00,
                                 0x00, 0x00, 0x10, 0x00, 0x00, 0x2f, 0x00, 0x00};
    tls_hello_t h;
    assert_int_equal(parse(v2, sizeof(v2), &h), TLS_HELLO_NOT_TLS);
    assert_int_equal(parse(v2, 1, &h), TLS_HELLO_NOT_TLS);
}

static void test_tls_hello_split_over_two_records_at_every_point(void **state)
{
    (void)state;
    size_t n = unhex(curl_hex, in);
    size_t msg = n - 5;
    for (size_t at = 1; at < msg; at++) {
        memcpy(out, in, 5);
        put16(out + 3, at);
        memcpy(out + 5, in + 5, at);
        size_t w = 5 + at;
        w += reframe(in + 5 + at, msg - at, msg, out + w);
        tls_hello_t h;
        assert_int_equal(parse(out, w, &h), TLS_HELLO_OK);
        assert_string_equal(h.server_name, "www.example.com");
        assert_int_equal(h.n_alpn, 2);
        assert_alpn(&h, 1, "http/1.1");
        assert_true(h.tls13);
        assert_int_equal(h.length, n + 5);
        /* Cut in the second record's header: more is needed, and at most the rest. */
        assert_int_equal(parse(out, 5 + at + 2, &h), TLS_HELLO_NEED_MORE);
        assert_true(h.need > 5 + at + 2 && h.need <= n + 5);
    }
}

static void test_tls_hello_one_byte_records(void **state)
{
    (void)state;
    size_t n = unhex(mbedtls_hex, in);
    size_t w = reframe(in + 5, n - 5, 1, out);
    assert_int_equal(w, (n - 5) * 6);
    tls_hello_t h;
    assert_int_equal(parse(out, w, &h), TLS_HELLO_OK);
    assert_string_equal(h.server_name, "outbound_.9080_._.reviews.default.svc.cluster.local");
    assert_int_equal(h.n_alpn, 3);
    assert_int_equal(h.length, w);
    for (size_t cut = 0; cut < w; cut += 7)
        assert_int_equal(parse(out, cut, &h), TLS_HELLO_NEED_MORE);
}

/* One byte of the curl hello changed; what the parser must say then. */
typedef struct patch {
    size_t at;
    uint8_t value;
    int want;
    const char *why;
} patch_t;

static void test_tls_hello_corrupted_lengths_are_errors(void **state)
{
    (void)state;
    /* curl: record length 0x0200 at 3, handshake length 0x0001fc at 6, legacy_session_id length
     * 0x20 at 43, cipher_suites length 0x003e at 76, extension block length 0x0175 at 142,
     * server_name: extension length 0x0014 at 146, list length 0x0012 at 148, name length 0x000f
     * at 151; ALPN list length 0x000c at 206, first protocol length 0x02 at 208. */
    static const patch_t patches[] = {
        {3, 0x00, TLS_HELLO_ERROR, "empty record"},
        {3, 0x41, TLS_HELLO_ERROR, "record length over 2^14"},
        {3, 0x01, TLS_HELLO_ERROR, "record shorter than the message: next is no record header"},
        {8, 0xfb, TLS_HELLO_ERROR, "message one byte shorter than its contents"},
        {6, 0x01, TLS_HELLO_TOO_LARGE, "message over 16 KiB"},
        {2, 0x05, TLS_HELLO_ERROR, "record version 3.5"},
        {5, 0x02, TLS_HELLO_ERROR, "a ServerHello"},
        {9, 0x02, TLS_HELLO_ERROR, "legacy_version 2.3"},
        {43, 0x21, TLS_HELLO_ERROR, "session_id over 32 bytes"},
        {77, 0x3d, TLS_HELLO_ERROR, "odd cipher_suites length"},
        {76, 0xff, TLS_HELLO_ERROR, "cipher_suites past the message"},
        {143, 0x76, TLS_HELLO_ERROR, "extension block past the message"},
        {143, 0x74, TLS_HELLO_ERROR, "extension block short of the message"},
        {147, 0x15, TLS_HELLO_ERROR, "server_name extension longer than it is"},
        {149, 0x13, TLS_HELLO_ERROR, "server_name list longer than the extension"},
        {149, 0x11, TLS_HELLO_ERROR, "server_name list shorter than the extension"},
        {152, 0x10, TLS_HELLO_ERROR, "host_name longer than the list"},
        {152, 0x00, TLS_HELLO_ERROR, "empty host_name"},
        {207, 0x0d, TLS_HELLO_ERROR, "ALPN list longer than the extension"},
        {208, 0x00, TLS_HELLO_ERROR, "empty ALPN protocol"},
        {208, 0x0c, TLS_HELLO_ERROR, "ALPN protocol longer than the list"},
    };
    size_t n = unhex(curl_hex, in);
    /* The offsets above are where the comment says they are. */
    assert_int_equal(in[43], 0x20);
    assert_int_equal(in[77], 0x3e);
    assert_int_equal(in[143], 0x75);
    assert_int_equal(in[149], 0x12);
    assert_int_equal(in[152], 0x0f);
    assert_int_equal(in[207], 0x0c);
    assert_int_equal(in[208], 0x02);
    for (size_t i = 0; i < sizeof(patches) / sizeof(patches[0]); i++) {
        memcpy(out, in, n);
        out[patches[i].at] = patches[i].value;
        tls_hello_t h;
        int rc = parse(out, n, &h);
        if (rc != patches[i].want)
            fail_msg("%s: got %d, want %d", patches[i].why, rc, patches[i].want);
        assert_non_null(h.error);
        assert_string_equal(h.server_name, "");
        assert_int_equal(h.n_alpn, 0);
    }
}

static void test_tls_hello_message_longer_than_its_record_waits_for_the_next(void **state)
{
    (void)state;
    size_t n = unhex(curl_hex, in);
    in[8] = 0xfd; /* one byte more than the record holds */
    tls_hello_t h;
    assert_int_equal(parse(in, n, &h), TLS_HELLO_NEED_MORE);
    assert_int_equal(h.need, n + 5 + 1);
    /* What follows is application data, not the rest of the handshake. */
    static const uint8_t appdata[] = {0x17, 0x03, 0x03, 0x00, 0x01, 0x00};
    memcpy(in + n, appdata, sizeof(appdata));
    assert_int_equal(parse(in, n + sizeof(appdata), &h), TLS_HELLO_ERROR);
}

static void test_tls_hello_bytes_after_the_hello_are_ignored(void **state)
{
    (void)state;
    size_t n = unhex(openssl_h2_hex, in);
    /* A middlebox-compatibility ChangeCipherSpec, then anything. */
    static const uint8_t more[] = {0x14, 0x03, 0x03, 0x00, 0x01, 0x01, 0xde, 0xad};
    memcpy(in + n, more, sizeof(more));
    tls_hello_t h;
    assert_int_equal(parse(in, n + sizeof(more), &h), TLS_HELLO_OK);
    assert_int_equal(h.length, n);
    assert_string_equal(h.server_name, "x");
}

static void test_tls_hello_host_name_is_lowercased(void **state)
{
    (void)state;
    uint8_t ext[300];
    static const char name[] = "Reviews.Default.SVC.cluster.local";
    size_t e = sni_ext(ext, name, strlen(name));
    size_t n = hello(in, ext, e);
    tls_hello_t h;
    assert_int_equal(parse(in, n, &h), TLS_HELLO_OK);
    assert_string_equal(h.server_name, "reviews.default.svc.cluster.local");
    assert_int_equal(h.server_name_len, strlen(name));
}

static void test_tls_hello_host_name_of_255_bytes_fits_and_256_does_not(void **state)
{
    (void)state;
    char name[257];
    uint8_t ext[300];
    memset(name, 'a', sizeof(name));
    for (size_t i = 63; i < sizeof(name); i += 64)
        name[i] = '.';
    tls_hello_t h;
    size_t n = hello(in, ext, sni_ext(ext, name, 255));
    assert_int_equal(parse(in, n, &h), TLS_HELLO_OK);
    assert_int_equal(h.server_name_len, 255);
    assert_int_equal(strlen(h.server_name), 255);
    n = hello(in, ext, sni_ext(ext, name, 256));
    assert_int_equal(parse(in, n, &h), TLS_HELLO_ERROR);
}

static void test_tls_hello_bad_host_names_are_errors(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        size_t len;
    } bad[] = {
        {"a/b", 3}, {"a..b", 4},   {".a", 2},          {"a.", 2},    {"a b", 3},       {"x\0y", 3},
        {"", 0},    {"a\r\nb", 4}, {"caf\xc3\xa9", 5}, {"a:443", 5}, {"*.example", 9},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t ext[64];
        size_t n = hello(in, ext, sni_ext(ext, bad[i].name, bad[i].len));
        tls_hello_t h;
        if (parse(in, n, &h) != TLS_HELLO_ERROR)
            fail_msg("host_name %zu (\"%s\") was accepted", i, bad[i].name);
        assert_string_equal(h.server_name, "");
    }
}

static void test_tls_hello_two_host_names_or_two_sni_extensions_are_errors(void **state)
{
    (void)state;
    uint8_t ext[128];
    size_t e = sni_ext(ext, "a.b", 3);
    e += sni_ext(ext + e, "c.d", 3);
    size_t n = hello(in, ext, e);
    tls_hello_t h;
    assert_int_equal(parse(in, n, &h), TLS_HELLO_ERROR);
    /* One extension whose list holds two host_names. */
    static const uint8_t two[] = {0,   0,   0,   14, 0, 12, 0,   0,   3,
                                  'a', '.', 'b', 0,  0, 3,  'c', '.', 'd'};
    n = hello(in, two, sizeof(two));
    assert_int_equal(parse(in, n, &h), TLS_HELLO_ERROR);
    /* A name type other than host_name is skipped. */
    static const uint8_t other[] = {0,   0,   0,   14, 0, 12, 7,   0,   3,
                                    'x', 'y', 'z', 0,  0, 3,  'c', '.', 'd'};
    n = hello(in, other, sizeof(other));
    assert_int_equal(parse(in, n, &h), TLS_HELLO_OK);
    assert_string_equal(h.server_name, "c.d");
}

static void test_tls_hello_alpn_past_the_limit_is_truncated(void **state)
{
    (void)state;
    static const char *const protos[] = {"h2",
                                         "http/1.1",
                                         "istio-peer-exchange",
                                         "istio",
                                         "istio-h2",
                                         "istio-http/1.0",
                                         "istio-http/1.1",
                                         "grpc-exp",
                                         "spdy/3",
                                         "h3"};
    uint8_t ext[256];
    size_t n = hello(in, ext, alpn_ext(ext, protos, 10));
    tls_hello_t h;
    assert_int_equal(parse(in, n, &h), TLS_HELLO_OK);
    assert_int_equal(h.n_alpn, TLS_HELLO_MAX_ALPN);
    assert_true(h.alpn_truncated);
    for (size_t i = 0; i < TLS_HELLO_MAX_ALPN; i++)
        assert_alpn(&h, i, protos[i]);
    assert_false(tls_hello_offers_alpn(&h, "h3", 2));
}

static void test_tls_hello_long_alpn_names_fill_the_buffer_then_truncate(void **state)
{
    (void)state;
    static char names[3][256];
    const char *protos[3];
    for (size_t i = 0; i < 3; i++) {
        memset(names[i], 'a' + (int)i, 255);
        names[i][255] = '\0';
        protos[i] = names[i];
    }
    uint8_t ext[1024];
    size_t n = hello(in, ext, alpn_ext(ext, protos, 3));
    tls_hello_t h;
    assert_int_equal(parse(in, n, &h), TLS_HELLO_OK);
    assert_int_equal(h.n_alpn, 2); /* 2 × 256 bytes fill TLS_HELLO_ALPN_BUF */
    assert_true(h.alpn_truncated);
    assert_alpn(&h, 1, names[1]);
}

static void test_tls_hello_supported_versions_skips_grease_and_drafts(void **state)
{
    (void)state;
    static const uint16_t offered[] = {0x3a3a, 0x7f1c, 0x0304, 0x0303};
    uint8_t ext[64];
    size_t n = hello(in, ext, versions_ext(ext, offered, 4));
    tls_hello_t h;
    assert_int_equal(parse(in, n, &h), TLS_HELLO_OK);
    assert_true(h.tls13);
    assert_int_equal(h.max_version, 0x0304);

    static const uint16_t only12[] = {0x0303, 0x0302};
    n = hello(in, ext, versions_ext(ext, only12, 2));
    assert_int_equal(parse(in, n, &h), TLS_HELLO_OK);
    assert_false(h.tls13);
    assert_int_equal(h.max_version, 0x0303);

    n = hello(in, ext, versions_ext(ext, only12, 2));
    in[56] = 3; /* odd list length */
    assert_int_equal(parse(in, n, &h), TLS_HELLO_ERROR);
}

static void test_tls_hello_without_extensions_is_an_old_client(void **state)
{
    (void)state;
    size_t n = hello(in, NULL, 0);
    tls_hello_t h;
    assert_int_equal(parse(in, n, &h), TLS_HELLO_OK);
    assert_string_equal(h.server_name, "");
    assert_false(h.tls13);
    assert_int_equal(h.max_version, 0x0303);
    /* One stray byte where the extension block would start. */
    in[3]++;
    in[8]++;
    in[n] = 0;
    assert_int_equal(parse(in, n + 1, &h), TLS_HELLO_ERROR);
}

static void test_tls_hello_record_of_another_type_inside_the_hello_is_error(void **state)
{
    (void)state;
    size_t n = unhex(openssl_h2_hex, in);
    size_t w = reframe(in + 5, n - 5, 100, out);
    tls_hello_t h;
    assert_int_equal(parse(out, w, &h), TLS_HELLO_OK);
    out[105] = 0x17; /* the second record becomes application data */
    assert_int_equal(parse(out, w, &h), TLS_HELLO_ERROR);
    out[105] = 0x16;
    out[106] = 0x02;
    assert_int_equal(parse(out, w, &h), TLS_HELLO_ERROR);
}

static void test_tls_hello_past_64_kib_of_records_is_too_large(void **state)
{
    (void)state;
    /* 12000 bytes of an unknown extension, one byte per record: 72 KiB of records. */
    static uint8_t ext[12004];
    ext_header(ext, 0xfe01, sizeof(ext) - 4);
    size_t n = hello(in, ext, sizeof(ext));
    tls_hello_t h;
    assert_int_equal(parse(in, n, &h), TLS_HELLO_OK);
    size_t w = reframe(in + 5, n - 5, 1, out);
    assert_true(w > TLS_HELLO_MAX_INPUT);
    assert_int_equal(parse(out, w, &h), TLS_HELLO_TOO_LARGE);
    assert_non_null(h.error);
    /* Every answer before that asked for no more than 64 KiB. */
    for (size_t cut = 0; cut < TLS_HELLO_MAX_INPUT; cut += 997) {
        int rc = parse(out, cut, &h);
        assert_true(rc == TLS_HELLO_NEED_MORE || rc == TLS_HELLO_TOO_LARGE);
        if (rc == TLS_HELLO_NEED_MORE)
            assert_true(h.need <= TLS_HELLO_MAX_INPUT);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_hello_openssl_s_client_gives_sni_alpn_and_tls13),
        cmocka_unit_test(test_tls_hello_curl_gives_sni_and_alpn),
        cmocka_unit_test(test_tls_hello_mbedtls_sidecar_name_keeps_underscores),
        cmocka_unit_test(test_tls_hello_tls12_only_client_is_not_tls13),
        cmocka_unit_test(test_tls_hello_without_sni_or_alpn_is_still_tls),
        cmocka_unit_test(test_tls_hello_every_prefix_needs_more),
        cmocka_unit_test(test_tls_hello_need_counts_the_rest_of_the_record),
        cmocka_unit_test(test_tls_hello_http_requests_are_not_tls),
        cmocka_unit_test(test_tls_hello_sslv2_hello_is_not_tls),
        cmocka_unit_test(test_tls_hello_split_over_two_records_at_every_point),
        cmocka_unit_test(test_tls_hello_one_byte_records),
        cmocka_unit_test(test_tls_hello_corrupted_lengths_are_errors),
        cmocka_unit_test(test_tls_hello_message_longer_than_its_record_waits_for_the_next),
        cmocka_unit_test(test_tls_hello_bytes_after_the_hello_are_ignored),
        cmocka_unit_test(test_tls_hello_host_name_is_lowercased),
        cmocka_unit_test(test_tls_hello_host_name_of_255_bytes_fits_and_256_does_not),
        cmocka_unit_test(test_tls_hello_bad_host_names_are_errors),
        cmocka_unit_test(test_tls_hello_two_host_names_or_two_sni_extensions_are_errors),
        cmocka_unit_test(test_tls_hello_alpn_past_the_limit_is_truncated),
        cmocka_unit_test(test_tls_hello_long_alpn_names_fill_the_buffer_then_truncate),
        cmocka_unit_test(test_tls_hello_supported_versions_skips_grease_and_drafts),
        cmocka_unit_test(test_tls_hello_without_extensions_is_an_old_client),
        cmocka_unit_test(test_tls_hello_record_of_another_type_inside_the_hello_is_error),
        cmocka_unit_test(test_tls_hello_past_64_kib_of_records_is_too_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
