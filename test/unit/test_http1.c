/* HTTP/1.1 codec: heads parse into the right slices and flags, bodies decode (and pump) the same
 * however the bytes are split, writers round-trip, and every framing ambiguity is refused with its
 * code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/http/h1/http1.h"

#define LIT(s) s, sizeof(s) - 1

static http_header_t hbuf[32];

static void req_init(http1_request_t *req)
{
    memset(req, 0, sizeof(*req));
    req->headers.v = hbuf;
    req->headers.cap = 32;
}

static void resp_init(http1_response_t *resp)
{
    memset(resp, 0, sizeof(*resp));
    resp->headers.v = hbuf;
    resp->headers.cap = 32;
}

static int parse_req(const char *s, size_t n, http1_request_t *req)
{
    req_init(req);
    return http1_parse_request(s, n, 8192, req);
}

static int parse_resp(const char *s, size_t n, bool head, bool connect, http1_response_t *resp)
{
    resp_init(resp);
    return http1_parse_response(s, n, 8192, head, connect, resp);
}

static bool slice_is(const char *p, uint32_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(p, lit, n) == 0;
}

#define assert_slice(p, n, lit) assert_true(slice_is((p), (n), (lit)))

static const char curl_get[] = "GET /api/v1/items?id=7 HTTP/1.1\r\n"
                               "Host: svc.ns.svc.cluster.local:8080\r\n"
                               "User-Agent: curl/8.4.0\r\n"
                               "Accept: */*\r\n"
                               "X-Request-Id:   abc-123  \r\n"
                               "\r\n";

static void test_http1_parses_every_field_of_a_request(void **state)
{
    (void)state;
    http1_request_t req;
    int n = parse_req(LIT(curl_get), &req);
    assert_int_equal(n, (int)sizeof(curl_get) - 1);
    assert_slice(req.method, req.method_len, "GET");
    assert_slice(req.target, req.target_len, "/api/v1/items?id=7");
    assert_slice(req.path, req.path_len, "/api/v1/items?id=7");
    assert_slice(req.authority, req.authority_len, "svc.ns.svc.cluster.local:8080");
    assert_int_equal(req.minor_version, 1);
    assert_int_equal(req.headers.n, 4);
    assert_slice(req.headers.v[1].name, req.headers.v[1].name_len, "User-Agent");
    assert_slice(req.headers.v[1].value, req.headers.v[1].value_len, "curl/8.4.0");
    assert_slice(req.headers.v[3].value, req.headers.v[3].value_len, "abc-123");
    assert_int_equal(req.body, HTTP1_BODY_NONE);
    assert_true(req.keep_alive);
    assert_false(req.expect_continue);
    assert_false(req.upgrade);
    assert_false(req.connect);
    assert_null(req.error);
}

static void test_http1_incremental_parse_matches_at_every_split(void **state)
{
    (void)state;
    static const char in[] = "\r\nPOST /upload HTTP/1.1\r\nHost: a.example\r\n"
                             "Content-Length: 11\r\nConnection: keep-alive\r\nX-Tab:\ta\tb\t\r\n"
                             "X-Long: 0123456789abcdef0123456789abcdef0123456789\r\n\r\n";
    http1_request_t full;
    int n = parse_req(LIT(in), &full);
    assert_int_equal(n, (int)sizeof(in) - 1);
    for (size_t cut = 0; cut < sizeof(in) - 1; cut++) {
        http1_request_t part;
        assert_int_equal(parse_req(in, cut, &part), HTTP1_INCOMPLETE);
    }
    http1_request_t again;
    assert_int_equal(parse_req(LIT(in), &again), n);
    assert_int_equal(again.body, HTTP1_BODY_LENGTH);
    assert_int_equal(again.content_length, 11);
    assert_int_equal(again.headers.n, 5);
    assert_slice(again.headers.v[3].value, again.headers.v[3].value_len, "a\tb");
}

static void test_http1_pipelined_second_head_starts_at_returned_length(void **state)
{
    (void)state;
    static const char in[] = "GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
                             "GET /two HTTP/1.1\r\nHost: b\r\n\r\n"
                             "GET /thr";
    http1_request_t req;
    int n1 = parse_req(LIT(in), &req);
    assert_true(n1 > 0);
    assert_slice(req.path, req.path_len, "/one");
    int n2 = parse_req(in + n1, sizeof(in) - 1 - (size_t)n1, &req);
    assert_true(n2 > 0);
    assert_slice(req.path, req.path_len, "/two");
    assert_slice(req.authority, req.authority_len, "b");
    assert_int_equal(parse_req(in + n1 + n2, sizeof(in) - 1 - (size_t)(n1 + n2), &req),
                     HTTP1_INCOMPLETE);
}

static void test_http1_absolute_form_gives_authority_and_path(void **state)
{
    (void)state;
    http1_request_t req;
    assert_true(parse_req(LIT("GET http://Up.Example:81/p/q?x=1 HTTP/1.1\r\nHost: other\r\n\r\n"),
                          &req) > 0);
    assert_slice(req.authority, req.authority_len, "Up.Example:81");
    assert_slice(req.path, req.path_len, "/p/q?x=1");
    assert_slice(req.target, req.target_len, "http://Up.Example:81/p/q?x=1");
}

static void test_http1_absolute_form_without_path_has_slash(void **state)
{
    (void)state;
    http1_request_t req;
    assert_true(parse_req(LIT("GET https://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n"), &req) >
                0);
    assert_slice(req.authority, req.authority_len, "a.example");
    assert_slice(req.path, req.path_len, "/");
}

static void test_http1_connect_uses_authority_form(void **state)
{
    (void)state;
    http1_request_t req;
    assert_true(
        parse_req(LIT("CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n"),
                  &req) > 0);
    assert_true(req.connect);
    assert_slice(req.authority, req.authority_len, "db.internal:5432");
    assert_int_equal(req.path_len, 0);
    assert_int_equal(req.body, HTTP1_BODY_NONE);
}

static void test_http1_options_asterisk(void **state)
{
    (void)state;
    http1_request_t req;
    assert_true(parse_req(LIT("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), &req) > 0);
    assert_slice(req.path, req.path_len, "*");
    assert_slice(req.authority, req.authority_len, "a");
}

static void test_http1_http10_keeps_alive_only_when_asked(void **state)
{
    (void)state;
    http1_request_t req;
    assert_true(parse_req(LIT("GET / HTTP/1.0\r\n\r\n"), &req) > 0);
    assert_int_equal(req.minor_version, 0);
    assert_false(req.keep_alive);
    assert_int_equal(req.authority_len, 0);
    assert_true(parse_req(LIT("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), &req) > 0);
    assert_true(req.keep_alive);
    assert_true(parse_req(LIT("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"), &req) >
                0);
    assert_false(req.keep_alive);
}

static void test_http1_connection_close_ends_keep_alive(void **state)
{
    (void)state;
    http1_request_t req;
    assert_true(
        parse_req(LIT("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE\r\n\r\n"), &req) > 0);
    assert_false(req.keep_alive);
}

static void test_http1_expect_100_continue(void **state)
{
    (void)state;
    http1_request_t req;
    assert_true(parse_req(LIT("PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                              "Expect: 100-Continue\r\n\r\n"),
                          &req) > 0);
    assert_true(req.expect_continue);
    /* RFC 9110 §10.1.1: ignored in HTTP/1.0. */
    assert_true(
        parse_req(LIT("PUT /x HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"),
                  &req) > 0);
    assert_false(req.expect_continue);
}

static void test_http1_upgrade_needs_connection_option_and_header(void **state)
{
    (void)state;
    http1_request_t req;
    assert_true(parse_req(LIT("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
                              "Upgrade: websocket\r\n\r\n"),
                          &req) > 0);
    assert_true(req.upgrade);
    assert_true(parse_req(LIT("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"), &req) >
                0);
    assert_false(req.upgrade);
    assert_true(parse_req(LIT("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n"), &req) >
                0);
    assert_false(req.upgrade);
}

static void test_http1_field_values_trim_ows_and_keep_obs_text(void **state)
{
    (void)state;
    http1_request_t req;
    assert_true(parse_req(LIT("GET / HTTP/1.1\r\nHost: a\r\nX-Name: \t caf\xc3\xa9 \t\r\n"
                              "X-Empty:\r\nX-Sp:   \r\n\r\n"),
                          &req) > 0);
    assert_slice(req.headers.v[1].value, req.headers.v[1].value_len, "caf\xc3\xa9");
    assert_int_equal(req.headers.v[2].value_len, 0);
    assert_int_equal(req.headers.v[3].value_len, 0);
}

static void test_http1_leading_empty_lines_are_skipped(void **state)
{
    (void)state;
    http1_request_t req;
    int n = parse_req(LIT("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), &req);
    assert_int_equal(n, 31);
    assert_slice(req.method, req.method_len, "GET");
}

static void test_http1_head_over_max_is_too_large_not_incomplete(void **state)
{
    (void)state;
    static const char in[] = "GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789\r\n\r\n";
    http1_request_t req;
    req_init(&req);
    assert_int_equal(http1_parse_request(in, 30, 31, &req), HTTP1_INCOMPLETE);
    assert_int_equal(http1_parse_request(in, 31, 31, &req), HTTP1_E_HEAD_TOO_LARGE);
    assert_int_equal(http1_parse_request(in, sizeof(in) - 1, 31, &req), HTTP1_E_HEAD_TOO_LARGE);
    assert_int_equal(http1_parse_request(in, sizeof(in) - 1, sizeof(in) - 1, &req),
                     (int)sizeof(in) - 1);
}

static void test_http1_long_request_line_says_so(void **state)
{
    (void)state;
    http1_request_t req;
    req_init(&req);
    assert_int_equal(
        http1_parse_request(LIT("GET /aaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n"), 16, &req),
        HTTP1_E_HEAD_TOO_LARGE);
    assert_string_equal(req.error, "request line too long");
}

static void test_http1_too_many_headers_is_too_large(void **state)
{
    (void)state;
    http_header_t two[2];
    http1_request_t req = {.headers = {.v = two, .cap = 2}};
    assert_int_equal(
        http1_parse_request(LIT("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\n\r\n"), 8192, &req), 33);
    assert_int_equal(
        http1_parse_request(LIT("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n"), 8192, &req),
        HTTP1_E_HEAD_TOO_LARGE);
}

/* --- bodies ---------------------------------------------------------------------------------- */

typedef struct body_result {
    char data[256];
    size_t data_len;
    bool done;
    ssize_t err;
    size_t consumed;
    http_header_t trailers[4];
    http_headers_t th;
} body_result_t;

/* Feeds in[0..len) to a fresh decoder the way a connection would: the unconsumed rest plus
 * whatever has arrived, the arrival boundary at `cut`. */
static void decode_split(http1_body_kind_t kind, uint64_t cl, const char *in, size_t len,
                         size_t cut, body_result_t *r)
{
    http1_body_decoder_t d;
    http1_body_init(&d, kind, cl);
    memset(r, 0, sizeof(*r));
    r->th.v = r->trailers;
    r->th.cap = 4;
    size_t pos = 0, avail = cut;
    for (int guard = 0; guard < 10000; guard++) {
        const char *data;
        size_t dlen;
        ssize_t n = http1_body_decode(&d, in + pos, avail - pos, &data, &dlen, &r->th, &r->done);
        if (n < 0) {
            r->err = n;
            return;
        }
        assert_true(dlen <= (size_t)n);
        assert_true(r->data_len + dlen <= sizeof(r->data));
        memcpy(r->data + r->data_len, data, dlen);
        r->data_len += dlen;
        pos += (size_t)n;
        r->consumed = pos;
        if (r->done)
            return;
        if (n == 0 && dlen == 0) {
            if (avail == len)
                return;
            avail = len;
        }
    }
    fail_msg("decoder made no progress");
}

static void test_http1_chunked_with_extensions_and_trailers_at_every_split(void **state)
{
    (void)state;
    static const char in[] = "5;name=value;flag\r\nhello\r\n"
                             "7 ; q=\"a \\\"quoted\\\" ;=,\"\r\n, world\r\n"
                             "1A\r\nabcdefghijklmnopqrstuvwxyz\r\n"
                             "0\r\nX-Checksum: abc \r\nX-Other: 1\r\n\r\n"
                             "NEXT";
    const char want[] = "hello, worldabcdefghijklmnopqrstuvwxyz";
    for (size_t cut = 0; cut <= sizeof(in) - 1; cut++) {
        body_result_t r;
        decode_split(HTTP1_BODY_CHUNKED, 0, in, sizeof(in) - 1, cut, &r);
        assert_int_equal(r.err, 0);
        assert_true(r.done);
        assert_int_equal(r.consumed, sizeof(in) - 1 - 4);
        assert_int_equal(r.data_len, sizeof(want) - 1);
        assert_memory_equal(r.data, want, r.data_len);
        assert_int_equal(r.th.n, 2);
        assert_slice(r.th.v[0].name, r.th.v[0].name_len, "X-Checksum");
        assert_slice(r.th.v[0].value, r.th.v[0].value_len, "abc");
    }
}

static void test_http1_chunked_trailers_can_be_discarded(void **state)
{
    (void)state;
    static const char in[] = "3\r\nabc\r\n0\r\nX: y\r\n\r\n";
    http1_body_decoder_t d;
    http1_body_init(&d, HTTP1_BODY_CHUNKED, 0);
    const char *data;
    size_t dlen, pos = 0;
    bool done = false;
    while (!done) {
        ssize_t n =
            http1_body_decode(&d, in + pos, sizeof(in) - 1 - pos, &data, &dlen, NULL, &done);
        assert_true(n >= 0);
        pos += (size_t)n;
    }
    assert_int_equal(pos, sizeof(in) - 1);
}

static void test_http1_content_length_body_stops_at_length(void **state)
{
    (void)state;
    static const char in[] = "0123456789GET / HTTP/1.1";
    for (size_t cut = 0; cut <= sizeof(in) - 1; cut++) {
        body_result_t r;
        decode_split(HTTP1_BODY_LENGTH, 10, in, sizeof(in) - 1, cut, &r);
        assert_true(r.done);
        assert_int_equal(r.consumed, 10);
        assert_memory_equal(r.data, "0123456789", 10);
    }
}

static void test_http1_until_close_takes_everything_and_never_ends(void **state)
{
    (void)state;
    http1_body_decoder_t d;
    http1_body_init(&d, HTTP1_BODY_UNTIL_CLOSE, 0);
    const char *data;
    size_t dlen;
    bool done = true;
    assert_int_equal(http1_body_decode(&d, LIT("abc\r\n0\r\n\r\n"), &data, &dlen, NULL, &done), 10);
    assert_int_equal(dlen, 10);
    assert_false(done);
}

static void test_http1_no_body_is_done_at_once(void **state)
{
    (void)state;
    http1_body_decoder_t d;
    http1_body_init(&d, HTTP1_BODY_NONE, 0);
    const char *data;
    size_t dlen;
    bool done = false;
    assert_int_equal(http1_body_decode(&d, LIT("GET"), &data, &dlen, NULL, &done), 0);
    assert_true(done);
    assert_int_equal(dlen, 0);
}

/* --- the body pump --------------------------------------------------------------------------- */

#define PUMP_STOP 7

/* What a pump's sink saw, checked piece by piece against the contract as it goes. */
typedef struct pump_log {
    body_result_t r;
    const char *in; /* the buffer of the current pump call */
    size_t next;    /* where in it the next piece must start */
    size_t pieces;
    bool stop; /* stop the pump after every piece */
} pump_log_t;

static int log_piece(void *arg, const http1_body_piece_t *p)
{
    pump_log_t *l = arg;
    assert_false(l->r.done); /* nothing follows the done piece */
    assert_int_equal(p->offset, l->next);
    assert_true((p->used > 0 || p->done) && p->len <= p->used);
    assert_true(p->len == 0 ||
                (p->data >= l->in + p->offset && p->data + p->len <= l->in + p->offset + p->used));
    assert_true((p->trailers != NULL) == p->done);
    assert_true(l->r.data_len + p->len <= sizeof(l->r.data));
    memcpy(l->r.data + l->r.data_len, p->data, p->len);
    l->r.data_len += p->len;
    l->next = p->offset + p->used;
    l->pieces++;
    if (p->done) {
        l->r.done = true;
        l->r.th.n = p->trailers->n; /* the pump's storage ends with the call: keep copies */
        for (uint32_t i = 0; i < p->trailers->n && i < 4; i++)
            l->r.trailers[i] = p->trailers->v[i];
    }
    return l->stop ? PUMP_STOP : 0;
}

/* Pumps in[0..len) the way a connection does: the unconsumed rest plus whatever has arrived,
 * the arrival boundary at `cut`; a sink that stops is resumed at once with what is left. */
static void pump_split(http1_body_kind_t kind, uint64_t cl, const char *in, size_t len, size_t cut,
                       bool stop, pump_log_t *l)
{
    http1_body_decoder_t d;
    http1_body_init(&d, kind, cl);
    memset(l, 0, sizeof(*l));
    l->r.th.v = l->r.trailers;
    l->r.th.cap = 4;
    l->stop = stop;
    size_t pos = 0, avail = cut;
    for (int guard = 0; guard < 10000; guard++) {
        size_t used = 12345;
        l->in = in + pos;
        l->next = 0;
        size_t before = l->pieces;
        int rc = http1_body_pump(&d, in + pos, avail - pos, log_piece, l, &used);
        assert_int_equal(used, l->next); /* consumed is where the last piece ended */
        assert_true(!stop || l->pieces - before <= 1);
        pos += used;
        l->r.consumed = pos;
        if (rc < 0) {
            assert_int_equal(rc, HTTP1_E_BAD);
            assert_non_null(d.error);
            l->r.err = rc;
            return;
        }
        assert_int_equal(rc, stop && l->pieces > before ? PUMP_STOP : 0);
        if (l->r.done)
            return;
        if (rc == 0) {
            if (avail == len)
                return;
            avail = len;
        }
    }
    fail_msg("pump made no progress");
}

static void test_http1_pump_chunked_with_trailers_at_every_split(void **state)
{
    (void)state;
    static const char in[] = "5;name=value\r\nhello\r\n7\r\n, world\r\n"
                             "0\r\nX-Checksum: abc \r\nX-Other: 1\r\n\r\n"
                             "NEXT";
    for (size_t cut = 0; cut <= sizeof(in) - 1; cut++) {
        for (int stop = 0; stop < 2; stop++) {
            pump_log_t l;
            pump_split(HTTP1_BODY_CHUNKED, 0, in, sizeof(in) - 1, cut, stop, &l);
            assert_int_equal(l.r.err, 0);
            assert_true(l.r.done);
            assert_int_equal(l.r.consumed, sizeof(in) - 1 - 4);
            assert_int_equal(l.r.data_len, 12);
            assert_memory_equal(l.r.data, "hello, world", 12);
            assert_int_equal(l.r.th.n, 2);
            assert_slice(l.r.th.v[0].name, l.r.th.v[0].name_len, "X-Checksum");
            assert_slice(l.r.th.v[0].value, l.r.th.v[0].value_len, "abc");
            assert_slice(l.r.th.v[1].name, l.r.th.v[1].name_len, "X-Other");
        }
    }
}

static void test_http1_pump_sink_that_stops_gets_its_value_and_the_bytes_so_far(void **state)
{
    (void)state;
    static const char in[] = "5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n";
    http1_body_decoder_t d;
    http1_body_init(&d, HTTP1_BODY_CHUNKED, 0);
    pump_log_t l = {.r.th = {.v = l.r.trailers, .cap = 4}, .in = in, .stop = true};
    size_t used = 0;
    assert_int_equal(http1_body_pump(&d, in, sizeof(in) - 1, log_piece, &l, &used), PUMP_STOP);
    assert_int_equal(l.pieces, 1);
    assert_int_equal(used, 8); /* "5\r\nhello": the stopping piece counts */
    l.stop = false;
    l.in = in + used;
    l.next = 0;
    assert_int_equal(http1_body_pump(&d, in + 8, sizeof(in) - 1 - 8, log_piece, &l, &used), 0);
    assert_true(l.r.done);
    assert_int_equal(used, sizeof(in) - 1 - 8);
    assert_memory_equal(l.r.data, "helloabc", 8);
}

static void test_http1_pump_content_length_stops_at_length(void **state)
{
    (void)state;
    static const char in[] = "0123456789GET / HTTP/1.1";
    for (size_t cut = 0; cut <= sizeof(in) - 1; cut++) {
        pump_log_t l;
        pump_split(HTTP1_BODY_LENGTH, 10, in, sizeof(in) - 1, cut, false, &l);
        assert_true(l.r.done);
        assert_int_equal(l.r.consumed, 10);
        assert_int_equal(l.r.data_len, 10);
        assert_memory_equal(l.r.data, "0123456789", 10);
        assert_int_equal(l.r.th.n, 0); /* a done piece without trailers still has the list */
    }
}

static void test_http1_pump_framing_steps_reach_the_sink_for_byte_counts(void **state)
{
    (void)state;
    static const char in[] = "5\r\nhello\r\n1"; /* the next chunk-size line is incomplete */
    http1_body_decoder_t d;
    http1_body_init(&d, HTTP1_BODY_CHUNKED, 0);
    pump_log_t l = {.r.th = {.v = l.r.trailers, .cap = 4}, .in = in};
    size_t used = 0;
    assert_int_equal(http1_body_pump(&d, in, sizeof(in) - 1, log_piece, &l, &used), 0);
    assert_int_equal(l.pieces, 2); /* "5\r\nhello", then the CRLF alone */
    assert_int_equal(used, 10);
    assert_false(l.r.done);
}

static void test_http1_pump_bad_framing_reports_the_bytes_before_it(void **state)
{
    (void)state;
    static const char in[] = "3\r\nabc\r\nZZ\r\n";
    for (size_t cut = 0; cut <= sizeof(in) - 1; cut++) {
        pump_log_t l;
        pump_split(HTTP1_BODY_CHUNKED, 0, in, sizeof(in) - 1, cut, false, &l);
        assert_int_equal(l.r.err, HTTP1_E_BAD);
        /* The CRLF before "ZZ" is a step of its own only when the bytes end right after it. */
        assert_int_equal(l.r.consumed, cut == 8 ? 8 : 6);
        assert_memory_equal(l.r.data, "abc", 3);
    }
}

static void test_http1_pump_until_close_hands_everything_and_never_ends(void **state)
{
    (void)state;
    static const char in[] = "abc\r\n0\r\n\r\n";
    pump_log_t l;
    pump_split(HTTP1_BODY_UNTIL_CLOSE, 0, in, sizeof(in) - 1, 4, false, &l);
    assert_int_equal(l.r.err, 0);
    assert_false(l.r.done);
    assert_int_equal(l.pieces, 2);
    assert_int_equal(l.r.consumed, sizeof(in) - 1);
    assert_memory_equal(l.r.data, in, sizeof(in) - 1);
}

static void test_http1_pump_complete_body_hands_one_empty_done_piece(void **state)
{
    (void)state;
    http1_body_decoder_t d;
    http1_body_init(&d, HTTP1_BODY_LENGTH, 0);
    pump_log_t l = {.r.th = {.v = l.r.trailers, .cap = 4}, .in = "GET"};
    size_t used = 1;
    assert_int_equal(http1_body_pump(&d, "", 0, log_piece, &l, &used), 0);
    assert_int_equal(l.pieces + used, 0); /* no bytes: no piece */
    assert_int_equal(http1_body_pump(&d, "GET", 3, log_piece, &l, &used), 0);
    assert_int_equal(l.pieces, 1);
    assert_true(l.r.done);
    assert_int_equal(used, 0);
}

/* --- responses ------------------------------------------------------------------------------- */

static void test_http1_response_to_head_has_no_body(void **state)
{
    (void)state;
    http1_response_t r;
    assert_true(
        parse_resp(LIT("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"), true, false, &r) > 0);
    assert_int_equal(r.body, HTTP1_BODY_NONE);
    assert_int_equal(r.content_length, 1234);
    assert_true(r.keep_alive);
}

static void test_http1_response_204_and_304_have_no_body(void **state)
{
    (void)state;
    http1_response_t r;
    assert_true(parse_resp(LIT("HTTP/1.1 204 No Content\r\n\r\n"), false, false, &r) > 0);
    assert_int_equal(r.body, HTTP1_BODY_NONE);
    assert_true(r.keep_alive);
    assert_true(parse_resp(LIT("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"), false,
                           false, &r) > 0);
    assert_int_equal(r.body, HTTP1_BODY_NONE);
}

static void test_http1_response_1xx_is_a_complete_head(void **state)
{
    (void)state;
    static const char in[] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                             "\r\nok";
    http1_response_t r;
    int n = parse_resp(LIT(in), false, false, &r);
    assert_int_equal(n, 25);
    assert_int_equal(r.status, 100);
    assert_int_equal(r.body, HTTP1_BODY_NONE);
    assert_true(parse_resp(in + n, sizeof(in) - 1 - (size_t)n, false, false, &r) > 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body, HTTP1_BODY_LENGTH);
    assert_slice(r.reason, r.reason_len, "OK");
}

static void test_http1_response_2xx_to_connect_is_a_tunnel(void **state)
{
    (void)state;
    http1_response_t r;
    assert_true(parse_resp(LIT("HTTP/1.1 200 Connection Established\r\n\r\n"), false, true, &r) >
                0);
    assert_int_equal(r.body, HTTP1_BODY_NONE);
    assert_true(parse_resp(LIT("HTTP/1.1 407 Auth\r\nContent-Length: 3\r\n\r\n"), false, true, &r) >
                0);
    assert_int_equal(r.body, HTTP1_BODY_LENGTH);
}

static void test_http1_response_without_length_reads_until_close(void **state)
{
    (void)state;
    http1_response_t r;
    assert_true(parse_resp(LIT("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n"), false, false, &r) > 0);
    assert_int_equal(r.body, HTTP1_BODY_UNTIL_CLOSE);
    assert_false(r.keep_alive);
}

static void test_http1_response_chunked_and_length(void **state)
{
    (void)state;
    http1_response_t r;
    assert_true(parse_resp(LIT("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), false,
                           false, &r) > 0);
    assert_int_equal(r.body, HTTP1_BODY_CHUNKED);
    assert_true(parse_resp(LIT("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"), false, false, &r) >
                0);
    assert_int_equal(r.body, HTTP1_BODY_NONE);
    assert_false(r.keep_alive);
}

static void test_http1_response_status_without_reason(void **state)
{
    (void)state;
    http1_response_t r;
    assert_true(parse_resp(LIT("HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n"), false, false, &r) > 0);
    assert_int_equal(r.status, 404);
    assert_int_equal(r.reason_len, 0);
}

/* --- writers --------------------------------------------------------------------------------- */

static void test_http1_request_writer_round_trips(void **state)
{
    (void)state;
    http1_request_t req;
    assert_true(parse_req(LIT(curl_get), &req) > 0);
    char out[512];
    size_t n = http1_write_request_head(out, sizeof(out), req.method, req.method_len, req.target,
                                        req.target_len, &req.headers);
    assert_true(n < sizeof(out));
    http_header_t again_h[8];
    http1_request_t again = {.headers = {.v = again_h, .cap = 8}};
    assert_int_equal(http1_parse_request(out, n, 8192, &again), (int)n);
    assert_int_equal(again.headers.n, req.headers.n);
    for (uint32_t i = 0; i < req.headers.n; i++) {
        assert_int_equal(again.headers.v[i].name_len, req.headers.v[i].name_len);
        assert_memory_equal(again.headers.v[i].name, req.headers.v[i].name,
                            req.headers.v[i].name_len);
        assert_int_equal(again.headers.v[i].value_len, req.headers.v[i].value_len);
        assert_memory_equal(again.headers.v[i].value, req.headers.v[i].value,
                            req.headers.v[i].value_len);
    }
    static const char line[] = "GET /api/v1/items?id=7 HTTP/1.1\r\nHost: svc";
    assert_memory_equal(out, line, sizeof(line) - 1);
}

static void test_http1_response_writer_uses_standard_reason(void **state)
{
    (void)state;
    http_header_t hs[1] = {
        {.name = "Content-Length", .value = "0", .name_len = 14, .value_len = 1}};
    http_headers_t h = {.v = hs, .n = 1, .cap = 1};
    char out[128];
    size_t n = http1_write_response_head(out, sizeof(out), 404, NULL, &h);
    assert_int_equal(n, strlen("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"));
    assert_memory_equal(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", n);
    http1_response_t r;
    assert_int_equal(parse_resp(out, n, false, false, &r), (int)n);
    assert_int_equal(r.status, 404);
    assert_slice(r.reason, r.reason_len, "Not Found");
    n = http1_write_response_head(out, sizeof(out), 299, "Custom", NULL);
    assert_memory_equal(out, "HTTP/1.1 299 Custom\r\n\r\n", n);
}

static void test_http1_writer_reports_needed_size_when_truncated(void **state)
{
    (void)state;
    char out[8];
    memset(out, 'Z', sizeof(out));
    size_t n = http1_write_request_head(out, 5, LIT("DELETE"), LIT("/x"), NULL);
    assert_int_equal(n, strlen("DELETE /x HTTP/1.1\r\n\r\n"));
    assert_memory_equal(out, "DELETZZZ", 8);
}

static void test_http1_chunk_size_writer(void **state)
{
    (void)state;
    char out[24];
    assert_int_equal(http1_write_chunk_size(out, 0x1a2b), 6);
    assert_memory_equal(out, "1a2b\r\n", 6);
    assert_int_equal(http1_write_chunk_size(out, 0), 3);
    assert_memory_equal(out, "0\r\n", 3);
    assert_int_equal(http1_write_chunk_size(out, SIZE_MAX), sizeof(size_t) * 2 + 2);
}

static void test_http1_last_chunk_writer(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(http1_write_last_chunk(NULL, 0, NULL), 5);
    assert_int_equal(http1_write_last_chunk(out, sizeof(out), NULL), 5);
    assert_memory_equal(out, "0\r\n\r\n", 5);
    http_header_t tv[2] = {{"x-checksum", "abc", 10, 3}, {"grpc-status", "0", 11, 1}};
    http_headers_t t = {.v = tv, .n = 2, .cap = 2};
    const char *want = "0\r\nx-checksum: abc\r\ngrpc-status: 0\r\n\r\n";
    size_t need = http1_write_last_chunk(NULL, 0, &t);
    assert_int_equal(need, strlen(want));
    /* Too small a buffer: it writes what fits and says what it needs. */
    memset(out, 'Z', sizeof(out));
    assert_int_equal(http1_write_last_chunk(out, 8, &t), need);
    assert_memory_equal(out, want, 8);
    assert_int_equal(out[8], 'Z');
    assert_int_equal(http1_write_last_chunk(out, sizeof(out), &t), need);
    assert_memory_equal(out, want, need);
}

static void test_http1_reason_phrases(void **state)
{
    (void)state;
    assert_string_equal(http1_reason(200), "OK");
    assert_string_equal(http1_reason(431), "Request Header Fields Too Large");
    assert_string_equal(http1_reason(799), "");
}

static void test_http1_hop_by_hop_fixed_names(void **state)
{
    (void)state;
    static const char *const names[] = {"Connection", "keep-alive",        "Proxy-Connection", "TE",
                                        "Trailer",    "Transfer-Encoding", "UPGRADE"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        http_header_t h = {.name = names[i], .name_len = (uint32_t)strlen(names[i])};
        assert_true(http1_is_hop_by_hop(&h, NULL));
    }
    http_header_t h = {.name = "Content-Length", .name_len = 14};
    assert_false(http1_is_hop_by_hop(&h, NULL));
    http_header_t tes = {.name = "Tes", .name_len = 3};
    assert_false(http1_is_hop_by_hop(&tes, NULL));
}

static void test_http1_hop_by_hop_includes_connection_listed_names(void **state)
{
    (void)state;
    http1_request_t req;
    assert_true(
        parse_req(LIT("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive , X-Secret\r\n"
                      "X-Secret: 1\r\nX-Secret-Not: 2\r\nConnection: x-b\r\nX-B: 3\r\n\r\n"),
                  &req) > 0);
    assert_false(http1_is_hop_by_hop(&req.headers.v[0], &req.headers)); /* Host */
    assert_true(http1_is_hop_by_hop(&req.headers.v[2], &req.headers));
    assert_false(http1_is_hop_by_hop(&req.headers.v[3], &req.headers));
    assert_true(http1_is_hop_by_hop(&req.headers.v[5], &req.headers));
}

/* --- the smuggling table --------------------------------------------------------------------- */

enum { ACCEPT = 1, REQ = 0, RESP = 1 };

typedef struct smuggle_case {
    const char *in;
    size_t len;
    int kind; /* REQ or RESP */
    int expect;
} smuggle_case_t;

#define R(s, e)                                                                                    \
    {                                                                                              \
        s, sizeof(s) - 1, REQ, e                                                                   \
    }
#define RS(s, e)                                                                                   \
    {                                                                                              \
        s, sizeof(s) - 1, RESP, e                                                                  \
    }
#define H11     " HTTP/1.1\r\nHost: a\r\n"
#define GET     "GET /" H11
#define POST    "POST /" H11
#define CHUNKED POST "Transfer-Encoding: chunked\r\n\r\n"
#define BAD     HTTP1_E_BAD
#define TOOBIG  HTTP1_E_HEAD_TOO_LARGE
#define NOTIMPL HTTP1_E_NOT_IMPLEMENTED
#define VERSION HTTP1_E_VERSION

/* One row per case: the bytes, and what the whole message (head, then body) must come to. */
static const smuggle_case_t smuggle_cases[] = {
    R(GET "\r\n", ACCEPT),
    /* Content-Length */
    R(POST "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", BAD),
    R(POST "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", BAD),
    R(POST "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", BAD),
    R(POST "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", ACCEPT),
    R(POST "Content-Length: 5, 5\r\n\r\nhello", ACCEPT),
    R(POST "Content-Length: 5, 6\r\n\r\nhello!", BAD),
    R(POST "Content-Length: 5,\r\n\r\nhello", BAD),
    R(POST "Content-Length: 5a\r\n\r\nhello", BAD),
    R(POST "Content-Length: \r\n\r\n", BAD),
    R(POST "Content-Length: -5\r\n\r\n", BAD),
    R(POST "Content-Length: +5\r\n\r\nhello", BAD),
    R(POST "Content-Length: 0x5\r\n\r\nhello", BAD),
    R(POST "Content-Length: 5 5\r\n\r\nhello", BAD),
    R(POST "Content-Length: 99999999999999999999\r\n\r\n", BAD),
    R(POST "Content-Length: 9223372036854775808\r\n\r\n", BAD),
    R(POST "Content-Length: \t 5 \t\r\n\r\nhello", ACCEPT),
    R(POST "Content-Length : 5\r\n\r\nhello", BAD),
    /* Transfer-Encoding */
    R(POST "Transfer-Encoding: gzip\r\n\r\n", NOTIMPL),
    R(POST "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", NOTIMPL),
    R(POST "Transfer-Encoding: x-custom\r\n\r\n", NOTIMPL),
    R(POST "Transfer-Encoding: chunked, gzip\r\n\r\n", BAD),
    R(POST "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", BAD),
    R(POST "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", BAD),
    R(POST "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", BAD),
    R(POST "Transfer-Encoding: \r\n\r\n", BAD),
    R(POST "Transfer-Encoding: chunked,\r\n\r\n0\r\n\r\n", BAD),
    R(POST "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", BAD),
    R(POST "Transfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n", ACCEPT),
    R("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", BAD),
    R("POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nok", ACCEPT),
    /* chunk lines */
    R(CHUNKED "5;a=b;flag;q=\"x\"\r\nhello\r\n0\r\n\r\n", ACCEPT),
    R(CHUNKED "5 ; a = b\r\nhello\r\n0\r\n\r\n", ACCEPT),
    R(CHUNKED "g\r\nhello\r\n0\r\n\r\n", BAD),
    R(CHUNKED "\r\nhello\r\n0\r\n\r\n", BAD),
    R(CHUNKED "0x5\r\nhello\r\n0\r\n\r\n", BAD),
    R(CHUNKED " 5\r\nhello\r\n0\r\n\r\n", BAD),
    R(CHUNKED "+5\r\nhello\r\n0\r\n\r\n", BAD),
    R(CHUNKED "-5\r\nhello\r\n0\r\n\r\n", BAD),
    R(CHUNKED "5 \r\nhello\r\n0\r\n\r\n", BAD),
    R(CHUNKED "8000000000000000\r\nhello\r\n0\r\n\r\n", BAD),
    R(CHUNKED "10000000000000005\r\nhello\r\n0\r\n\r\n", BAD),
    R(CHUNKED "5;\r\nhello\r\n0\r\n\r\n", BAD),
    R(CHUNKED "5;=x\r\nhello\r\n0\r\n\r\n", BAD),
    R(CHUNKED "5;a=\r\nhello\r\n0\r\n\r\n", BAD),
    R(CHUNKED "5;a=\"b\rc\"\r\nhello\r\n0\r\n\r\n", BAD),
    R(CHUNKED "5;a b\r\nhello\r\n0\r\n\r\n", BAD),
    R(CHUNKED "5\nhello\r\n0\r\n\r\n", BAD),
    R(CHUNKED "5\rhello\r\n0\r\n\r\n", BAD),
    R(CHUNKED "5\r\nhello\n0\r\n\r\n", BAD),
    R(CHUNKED "5\r\nhelloX\r\n0\r\n\r\n", BAD),
    R(CHUNKED "5\r\nhello\r\n0\n\r\n", BAD),
    R(CHUNKED "5\r\nhello\r\n0\r\n\n", BAD),
    R(CHUNKED "5\r\nhello\r\n0\r\nX: y\r\n\r\n", ACCEPT),
    R(CHUNKED "5\r\nhello\r\n0\r\nbad trailer\r\n\r\n", BAD),
    R(CHUNKED "5\r\nhello\r\n0\r\nX: y\n\r\n", BAD),
    R(CHUNKED "5\r\nhello\r\n0\r\n folded\r\n\r\n", BAD),
    /* line endings and field syntax */
    R("GET / HTTP/1.1\nHost: a\r\n\r\n", BAD),
    R("GET / HTTP/1.1\rHost: a\r\n\r\n", BAD),
    R("GET /\n HTTP/1.1\r\nHost: a\r\n\r\n", BAD),
    R("GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", BAD),
    R("GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", BAD),
    R("GET / HTTP/1.1\r\nHost: a\r\n\n", BAD),
    R("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", BAD),
    R(GET "X: a\r\n b\r\n\r\n", BAD),
    R(GET "X: a\r\n\tb\r\n\r\n", BAD),
    R("GET / HTTP/1.1\r\n Host: a\r\n\r\n", BAD),
    R(GET "X : y\r\n\r\n", BAD),
    R(GET "X\t: y\r\n\r\n", BAD),
    R(GET "X(: y\r\n\r\n", BAD),
    R(GET "X@Y: z\r\n\r\n", BAD),
    R(GET "X\xc3\xa9: z\r\n\r\n", BAD),
    R(GET "X\0Y: z\r\n\r\n", BAD),
    R(GET "X: a\0b\r\n\r\n", BAD),
    R(GET "X: a\x01"
          "b\r\n\r\n",
      BAD),
    R(GET "X: a\x7f"
          "b\r\n\r\n",
      BAD),
    R(GET "X: a\x1b[0m\r\n\r\n", BAD),
    R(GET "X: a\tb\r\n\r\n", ACCEPT),
    R(GET "X: caf\xc3\xa9\xff\r\n\r\n", ACCEPT),
    R(GET ": x\r\n\r\n", BAD),
    R(GET "NoColon\r\n\r\n", BAD),
    /* request line */
    R("G(ET / HTTP/1.1\r\nHost: a\r\n\r\n", BAD),
    R("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", BAD),
    R(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", BAD),
    R("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", BAD),
    R("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", BAD),
    R("GET /a\x01"
      "b HTTP/1.1\r\nHost: a\r\n\r\n",
      BAD),
    R("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n", BAD),
    R("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", BAD),
    R("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", BAD),
    R("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", BAD),
    R("GET a HTTP/1.1\r\nHost: a\r\n\r\n", BAD),
    R("GET * HTTP/1.1\r\nHost: a\r\n\r\n", BAD),
    R("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", BAD),
    R("GET http://user@a/ HTTP/1.1\r\nHost: a\r\n\r\n", BAD),
    R("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", BAD),
    R("CONNECT a HTTP/1.1\r\nHost: a\r\n\r\n", BAD),
    R("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", BAD),
    R("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 1\r\n\r\nx", BAD),
    R("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", ACCEPT),
    R("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", BAD),
    R("\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", BAD),
    /* version */
    R("GET / HTTP/2.0\r\nHost: a\r\n\r\n", VERSION),
    R("GET / HTTP/1.2\r\nHost: a\r\n\r\n", VERSION),
    R("GET / HTTP/0.9\r\nHost: a\r\n\r\n", VERSION),
    R("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", BAD),
    R("GET / HTTP/1.10\r\nHost: a\r\n\r\n", BAD),
    R("GET / http/1.1\r\nHost: a\r\n\r\n", BAD),
    R("GET / HTTP/11.1\r\nHost: a\r\n\r\n", BAD),
    R("GET / HTTP/1.1\r\n\r\n", BAD),
    /* Host */
    R("GET / HTTP/1.0\r\n\r\n", ACCEPT),
    R(GET "Host: b\r\n\r\n", BAD),
    R(GET "HOST: a\r\n\r\n", BAD),
    R("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", BAD),
    R("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", BAD),
    R("GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", BAD),
    R("GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n", BAD),
    R("GET / HTTP/1.1\r\nHost: a:80:90\r\n\r\n", BAD),
    R("GET / HTTP/1.1\r\nHost: [::1:8080\r\n\r\n", BAD),
    R("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", ACCEPT),
    R("GET / HTTP/1.1\r\nHost: \r\n\r\n", ACCEPT),
    /* Connection */
    R(GET "Connection: close, a b\r\n\r\n", BAD),
    /* sizes: the table parses with max_head 1024 and 8 header slots */
    R(GET "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\nG: 7\r\nH: 8\r\n\r\n", TOOBIG),
    R("GET /"
      "0123456789012345678901234567890123456789012345678901234567890123456789"
      "0123456789012345678901234567890123456789012345678901234567890123456789"
      "0123456789012345678901234567890123456789012345678901234567890123456789"
      "0123456789012345678901234567890123456789012345678901234567890123456789"
      "0123456789012345678901234567890123456789012345678901234567890123456789"
      "0123456789012345678901234567890123456789012345678901234567890123456789"
      "0123456789012345678901234567890123456789012345678901234567890123456789"
      "0123456789012345678901234567890123456789012345678901234567890123456789"
      "0123456789012345678901234567890123456789012345678901234567890123456789"
      "0123456789012345678901234567890123456789012345678901234567890123456789"
      "0123456789012345678901234567890123456789012345678901234567890123456789"
      "0123456789012345678901234567890123456789012345678901234567890123456789"
      "0123456789012345678901234567890123456789012345678901234567890123456789"
      "0123456789012345678901234567890123456789012345678901234567890123456789"
      "0123456789012345678901234567890123456789012345678901234567890123456789 HTTP/1.1\r\n",
      TOOBIG),
    /* responses */
    RS("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", ACCEPT),
    RS("HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", ACCEPT),
    RS("HTTP/1.1 20 OK\r\n\r\n", BAD),
    RS("HTTP/1.1 2000 OK\r\n\r\n", BAD),
    RS("HTTP/1.1 abc OK\r\n\r\n", BAD),
    RS("HTTP/1.1 099 Low\r\n\r\n", BAD),
    RS("HTTP/1.1 600 High\r\n\r\n", BAD),
    RS("HTTP/1.1  200 OK\r\n\r\n", BAD),
    RS("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", BAD),
    RS("HTTP/1.1 200 O\x01K\r\n\r\n", BAD),
    RS("HTTP/2.0 200 OK\r\n\r\n", VERSION),
    RS("HTTP/2 200 OK\r\n\r\n", BAD),
    RS("\r\nHTTP/1.1 200 OK\r\n\r\n", BAD),
    RS("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", BAD),
    RS("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", BAD),
    RS("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", NOTIMPL),
    RS("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", BAD),
    RS("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", BAD),
    RS("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", ACCEPT),
    RS("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok0\r\n\r\n", BAD),
    RS("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", BAD),
};

/* Parses one message (head, then its body) and says how it ended: ACCEPT, or the first error. */
static int message_result(const smuggle_case_t *c)
{
    http_header_t hs[8];
    http1_body_kind_t kind;
    uint64_t cl;
    int n;
    if (c->kind == REQ) {
        http1_request_t req = {.headers = {.v = hs, .cap = 8}};
        n = http1_parse_request(c->in, c->len, 1024, &req);
        if (n > 0)
            assert_null(req.error);
        else
            assert_non_null(req.error);
        kind = req.body;
        cl = req.content_length;
    } else {
        http1_response_t resp = {.headers = {.v = hs, .cap = 8}};
        n = http1_parse_response(c->in, c->len, 1024, false, false, &resp);
        if (n <= 0)
            assert_non_null(resp.error);
        kind = resp.body;
        cl = resp.content_length;
    }
    if (n <= 0)
        return n;
    body_result_t r;
    decode_split(kind, cl, c->in + n, c->len - (size_t)n, c->len - (size_t)n, &r);
    if (r.err != 0)
        return (int)r.err;
    if (!r.done && kind != HTTP1_BODY_UNTIL_CLOSE)
        return HTTP1_INCOMPLETE;
    return ACCEPT;
}

static void test_http1_smuggling_cases(void **state)
{
    (void)state;
    size_t n = sizeof(smuggle_cases) / sizeof(smuggle_cases[0]);
    int failures = 0;
    assert_true(n >= 40);
    for (size_t i = 0; i < n; i++) {
        int got = message_result(&smuggle_cases[i]);
        if (got != smuggle_cases[i].expect) {
            print_error("row %zu: got %d, want %d: %.*s\n", i, got, smuggle_cases[i].expect,
                        (int)(smuggle_cases[i].len > 120 ? 120 : smuggle_cases[i].len),
                        smuggle_cases[i].in);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http1_parses_every_field_of_a_request),
        cmocka_unit_test(test_http1_incremental_parse_matches_at_every_split),
        cmocka_unit_test(test_http1_pipelined_second_head_starts_at_returned_length),
        cmocka_unit_test(test_http1_absolute_form_gives_authority_and_path),
        cmocka_unit_test(test_http1_absolute_form_without_path_has_slash),
        cmocka_unit_test(test_http1_connect_uses_authority_form),
        cmocka_unit_test(test_http1_options_asterisk),
        cmocka_unit_test(test_http1_http10_keeps_alive_only_when_asked),
        cmocka_unit_test(test_http1_connection_close_ends_keep_alive),
        cmocka_unit_test(test_http1_expect_100_continue),
        cmocka_unit_test(test_http1_upgrade_needs_connection_option_and_header),
        cmocka_unit_test(test_http1_field_values_trim_ows_and_keep_obs_text),
        cmocka_unit_test(test_http1_leading_empty_lines_are_skipped),
        cmocka_unit_test(test_http1_head_over_max_is_too_large_not_incomplete),
        cmocka_unit_test(test_http1_long_request_line_says_so),
        cmocka_unit_test(test_http1_too_many_headers_is_too_large),
        cmocka_unit_test(test_http1_chunked_with_extensions_and_trailers_at_every_split),
        cmocka_unit_test(test_http1_chunked_trailers_can_be_discarded),
        cmocka_unit_test(test_http1_content_length_body_stops_at_length),
        cmocka_unit_test(test_http1_until_close_takes_everything_and_never_ends),
        cmocka_unit_test(test_http1_no_body_is_done_at_once),
        cmocka_unit_test(test_http1_pump_chunked_with_trailers_at_every_split),
        cmocka_unit_test(test_http1_pump_sink_that_stops_gets_its_value_and_the_bytes_so_far),
        cmocka_unit_test(test_http1_pump_content_length_stops_at_length),
        cmocka_unit_test(test_http1_pump_framing_steps_reach_the_sink_for_byte_counts),
        cmocka_unit_test(test_http1_pump_bad_framing_reports_the_bytes_before_it),
        cmocka_unit_test(test_http1_pump_until_close_hands_everything_and_never_ends),
        cmocka_unit_test(test_http1_pump_complete_body_hands_one_empty_done_piece),
        cmocka_unit_test(test_http1_response_to_head_has_no_body),
        cmocka_unit_test(test_http1_response_204_and_304_have_no_body),
        cmocka_unit_test(test_http1_response_1xx_is_a_complete_head),
        cmocka_unit_test(test_http1_response_2xx_to_connect_is_a_tunnel),
        cmocka_unit_test(test_http1_response_without_length_reads_until_close),
        cmocka_unit_test(test_http1_response_chunked_and_length),
        cmocka_unit_test(test_http1_response_status_without_reason),
        cmocka_unit_test(test_http1_request_writer_round_trips),
        cmocka_unit_test(test_http1_response_writer_uses_standard_reason),
        cmocka_unit_test(test_http1_writer_reports_needed_size_when_truncated),
        cmocka_unit_test(test_http1_chunk_size_writer),
        cmocka_unit_test(test_http1_last_chunk_writer),
        cmocka_unit_test(test_http1_reason_phrases),
        cmocka_unit_test(test_http1_hop_by_hop_fixed_names),
        cmocka_unit_test(test_http1_hop_by_hop_includes_connection_listed_names),
        cmocka_unit_test(test_http1_smuggling_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
