/* libFuzzer harness for the HTTP/1.1 codec: the input as a pipelined request stream (heads and
 * bodies) and as a response stream. Every accepted head must survive write-then-parse unchanged,
 * every prefix of it must be incomplete, and a body must pump the same however it is split and
 * wherever the sink stops. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/http/h1/http1.h"

#define FUZZ_MAX_HEAD 8192
#define FUZZ_HEADERS  64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static bool same(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static bool inside(const char *p, size_t n, const char *buf, size_t len)
{
    return n == 0 || (p >= buf && p + n <= buf + len);
}

static void check_headers(const http_headers_t *a, const http_headers_t *b)
{
    CHECK(a->n == b->n);
    for (uint32_t i = 0; i < a->n; i++) {
        CHECK(same(a->v[i].name, a->v[i].name_len, b->v[i].name, b->v[i].name_len));
        CHECK(same(a->v[i].value, a->v[i].value_len, b->v[i].value, b->v[i].value_len));
    }
}

static void check_slices(const http_headers_t *h, const char *buf, size_t len)
{
    CHECK(h->n <= h->cap);
    for (uint32_t i = 0; i < h->n; i++) {
        CHECK(h->v[i].name_len > 0 && inside(h->v[i].name, h->v[i].name_len, buf, len));
        CHECK(inside(h->v[i].value, h->v[i].value_len, buf, len));
    }
}

/* What a body decode came to; the same bytes split differently must give the same summary. */
typedef struct body_sum {
    int err;
    size_t consumed, data_len;
    uint64_t hash;
    bool done;
    uint32_t trailers;
    const char *whole; /* all the bytes, and the current pump call's part of them */
    size_t whole_len;
    const char *in;
    size_t next; /* where in `in` the next piece must start */
    bool stop;   /* the sink stops the pump after every piece */
} body_sum_t;

static int sum_piece(void *arg, const http1_body_piece_t *p)
{
    body_sum_t *s = arg;
    CHECK(!s->done && p->offset == s->next && p->len <= p->used && (p->used > 0 || p->done));
    CHECK(inside(p->data, p->len, s->in + p->offset, p->used));
    CHECK((p->trailers != NULL) == p->done);
    for (size_t i = 0; i < p->len; i++)
        s->hash = (s->hash ^ (uint8_t)p->data[i]) * 1099511628211ULL;
    s->data_len += p->len;
    s->next = p->offset + p->used;
    if (p->done) {
        s->done = true;
        s->trailers = p->trailers->n;
        check_slices(p->trailers, s->whole, s->whole_len);
    }
    return s->stop ? 1 : 0;
}

/* Pumps the body the way a connection does: what has arrived (step bytes more each time), the
 * unconsumed rest first; with stop, the sink stops after every piece and is resumed at once. */
static void decode_body(http1_body_kind_t kind, uint64_t cl, const char *in, size_t len,
                        size_t step, bool stop, body_sum_t *s)
{
    http1_body_decoder_t d;
    http1_body_init(&d, kind, cl);
    memset(s, 0, sizeof(*s));
    s->hash = 1469598103934665603ULL;
    s->whole = in;
    s->whole_len = len;
    s->stop = stop;
    size_t pos = 0, avail = step < len ? step : len;
    for (;;) {
        size_t used;
        s->in = in + pos;
        s->next = 0;
        int rc = http1_body_pump(&d, in + pos, avail - pos, sum_piece, s, &used);
        CHECK(used == s->next && used <= avail - pos);
        pos += used;
        s->consumed = pos;
        if (rc < 0) {
            CHECK(rc == HTTP1_E_BAD && d.error != NULL);
            s->err = rc;
            return;
        }
        CHECK(rc == 0 || (stop && rc == 1));
        if (s->done)
            return;
        if (kind == HTTP1_BODY_UNTIL_CLOSE && pos == len)
            return;
        if (rc == 0) {
            if (avail == len)
                return;
            avail = len - avail < step ? len : avail + step;
        }
    }
}

/* Decodes all at once and in small steps; both must agree. Returns bytes consumed, or -1 when
 * the stream cannot go on (error, or body not complete). */
static ssize_t body(http1_body_kind_t kind, uint64_t cl, const char *in, size_t len, size_t step)
{
    body_sum_t whole, split;
    decode_body(kind, cl, in, len, len, false, &whole);
    decode_body(kind, cl, in, len, step, step % 2 == 0, &split);
    CHECK(whole.err == split.err && whole.done == split.done);
    if (whole.err == 0) {
        CHECK(whole.consumed == split.consumed && whole.data_len == split.data_len);
        CHECK(whole.hash == split.hash && whole.trailers == split.trailers);
    }
    if (whole.err != 0 || !whole.done)
        return -1;
    return (ssize_t)whole.consumed;
}

static void request_round_trip(const http1_request_t *req)
{
    /* Writers always say HTTP/1.1, which a Host-less 1.0 request cannot become. */
    if (req->minor_version == 0 && http_headers_find(&req->headers, "host") == NULL)
        return;
    static char out[FUZZ_MAX_HEAD * 2];
    size_t w = http1_write_request_head(out, sizeof(out), req->method, req->method_len, req->target,
                                        req->target_len, &req->headers);
    CHECK(w <= sizeof(out));
    http_header_t hv[FUZZ_HEADERS];
    http1_request_t again = {.headers = {.v = hv, .cap = FUZZ_HEADERS}};
    CHECK(http1_parse_request(out, w, sizeof(out), &again) == (int)w);
    CHECK(same(again.method, again.method_len, req->method, req->method_len));
    CHECK(same(again.target, again.target_len, req->target, req->target_len));
    CHECK(same(again.path, again.path_len, req->path, req->path_len));
    CHECK(same(again.authority, again.authority_len, req->authority, req->authority_len));
    check_headers(&again.headers, &req->headers);
    CHECK(again.body == req->body && again.content_length == req->content_length);
    CHECK(again.connect == req->connect && again.upgrade == req->upgrade);
    if (req->minor_version == 1)
        CHECK(again.keep_alive == req->keep_alive && again.expect_continue == req->expect_continue);
}

static void requests(const char *p, size_t left, size_t step)
{
    for (int i = 0; i < 16 && left > 0; i++) {
        http_header_t hv[FUZZ_HEADERS];
        http1_request_t req = {.headers = {.v = hv, .cap = FUZZ_HEADERS}};
        int n = http1_parse_request(p, left, FUZZ_MAX_HEAD, &req);
        if (n <= 0) {
            CHECK(n >= HTTP1_E_VERSION && (n == 0) == (req.error == NULL));
            return;
        }
        CHECK((size_t)n <= left && req.error == NULL && req.minor_version <= 1);
        CHECK(inside(req.method, req.method_len, p, (size_t)n) && req.method_len > 0);
        CHECK(inside(req.target, req.target_len, p, (size_t)n) && req.target_len > 0);
        CHECK(inside(req.authority, req.authority_len, p, (size_t)n));
        check_slices(&req.headers, p, (size_t)n);
        /* Every proper prefix of an accepted head is merely incomplete. */
        size_t cuts[3] = {(size_t)n - 1, (size_t)n / 2, step % (size_t)n};
        for (int c = 0; c < 3; c++) {
            http_header_t pv[FUZZ_HEADERS];
            http1_request_t part = {.headers = {.v = pv, .cap = FUZZ_HEADERS}};
            CHECK(http1_parse_request(p, cuts[c], FUZZ_MAX_HEAD, &part) == HTTP1_INCOMPLETE);
        }
        request_round_trip(&req);
        p += n;
        left -= (size_t)n;
        if (req.connect || req.upgrade)
            return;
        ssize_t used = body(req.body, req.content_length, p, left, step);
        if (used < 0)
            return;
        p += used;
        left -= (size_t)used;
    }
}

static void response_round_trip(const http1_response_t *resp, bool head, bool connect)
{
    char reason[FUZZ_MAX_HEAD + 1];
    memcpy(reason, resp->reason, resp->reason_len);
    reason[resp->reason_len] = '\0';
    static char out[FUZZ_MAX_HEAD * 2];
    size_t w = http1_write_response_head(out, sizeof(out), resp->status, reason, &resp->headers);
    CHECK(w <= sizeof(out));
    http_header_t hv[FUZZ_HEADERS];
    http1_response_t again = {.headers = {.v = hv, .cap = FUZZ_HEADERS}};
    CHECK(http1_parse_response(out, w, sizeof(out), head, connect, &again) == (int)w);
    CHECK(again.status == resp->status);
    CHECK(same(again.reason, again.reason_len, resp->reason, resp->reason_len));
    check_headers(&again.headers, &resp->headers);
    if (resp->minor_version == 1)
        CHECK(again.body == resp->body && again.keep_alive == resp->keep_alive);
}

static void responses(const char *p, size_t left, bool head, bool connect, size_t step)
{
    for (int i = 0; i < 16 && left > 0; i++) {
        http_header_t hv[FUZZ_HEADERS];
        http1_response_t resp = {.headers = {.v = hv, .cap = FUZZ_HEADERS}};
        int n = http1_parse_response(p, left, FUZZ_MAX_HEAD, head, connect, &resp);
        if (n <= 0) {
            CHECK(n >= HTTP1_E_VERSION && (n == 0) == (resp.error == NULL));
            return;
        }
        CHECK((size_t)n <= left && resp.status >= 100 && resp.status <= 599);
        CHECK(inside(resp.reason, resp.reason_len, p, (size_t)n));
        check_slices(&resp.headers, p, (size_t)n);
        http_header_t pv[FUZZ_HEADERS];
        http1_response_t part = {.headers = {.v = pv, .cap = FUZZ_HEADERS}};
        CHECK(http1_parse_response(p, (size_t)n - 1, FUZZ_MAX_HEAD, head, connect, &part) ==
              HTTP1_INCOMPLETE);
        response_round_trip(&resp, head, connect);
        p += n;
        left -= (size_t)n;
        if (resp.status < 200 && resp.status != 101)
            continue; /* interim response: the final one follows */
        if (resp.status == 101 || (connect && resp.status < 300))
            return;
        ssize_t used = body(resp.body, resp.content_length, p, left, step);
        if (used < 0)
            return;
        p += used;
        left -= (size_t)used;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    /* Derive the split step and the request context from the length, so the bytes themselves
     * stay a plain HTTP stream that seeds and the dictionary can shape. */
    size_t step = 1 + size % 13;
    requests(in, size, step);
    responses(in, size, (size / 13) % 2 == 1, (size / 26) % 2 == 1, step);
    return 0;
}
