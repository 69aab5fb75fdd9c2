/* The HTTP/2 upstream codec (proxy/http/h2/h2_upstream.c) and its connections
 * (proxy/upstream/h2_pool.c) against a real nghttp2 server session on 127.0.0.1, both on one
 * libuv loop: the request's pseudo-headers and fields, the response's events, multiplexing,
 * resets, malformed responses, cancellation of one stream, flow control while paused, a lost
 * connection, and CONNECT refused. The codec's owner is a recorder of the events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>
#include <uv.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "proxy/core/log.h"
#include "proxy/core/worker.h"
#include "proxy/http/h2/h2_upstream.h"
#include "proxy/upstream/cluster_state.h"
#include "proxy/upstream/h2_pool.h"
#include "proxy/upstream/lb.h"
#include "test/unit/snap_opts.h"
#include "xds/config/config.h"

/* ---- the server: nghttp2's server session per accepted connection ------------------------- */

#define BIG_BYTES (1u << 20)

typedef struct srv_conn {
    uv_tcp_t tcp;
    nghttp2_session *h2;
    struct server *srv;
    char rbuf[65536];
} srv_conn_t;

typedef struct server {
    uv_tcp_t listener;
    int port;
    int accepted;
    srv_conn_t *conns[8];
    char seen[4096]; /* the last request's header block, "name: value\n" each */
    size_t body_bytes;
    uint32_t rst_code[64]; /* by stream id: the code of the RST_STREAM received (0: none) */
    size_t big_sent;
    uint32_t max_streams; /* advertised; 0: no limit */
    int pings;            /* PINGs received (each answered by nghttp2) */
} server_t;

static void srv_write_done(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void srv_flush(srv_conn_t *c)
{
    const uint8_t *data;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(c->h2, &data)) > 0) {
        uv_write_t *req = malloc(sizeof(*req) + (size_t)n);
        memcpy(req + 1, data, (size_t)n);
        uv_buf_t b = uv_buf_init((char *)(req + 1), (unsigned)n);
        if (uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, srv_write_done) < 0)
            free(req);
    }
}

static ssize_t srv_read_big(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
                            uint32_t *flags, nghttp2_data_source *src, void *user)
{
    (void)s;
    (void)id;
    (void)src;
    srv_conn_t *c = user;
    size_t left = BIG_BYTES - c->srv->big_sent;
    size_t n = len < left ? len : left;
    memset(buf, 'x', n);
    c->srv->big_sent += n;
    if (c->srv->big_sent == BIG_BYTES)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

typedef struct fixed_body {
    const char *data;
    size_t len, off;
    bool trailers;
} fixed_body_t;

static fixed_body_t body_hello = {"hello", 5, 0, false};
static fixed_body_t body_short = {"short", 5, 0, false};
static fixed_body_t body_trailed = {"abc", 3, 0, true};
static fixed_body_t body_second = {"second", 6, 0, false};

static ssize_t srv_read_fixed(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
                              uint32_t *flags, nghttp2_data_source *src, void *user)
{
    (void)user;
    fixed_body_t *b = src->ptr;
    size_t n = b->len - b->off < len ? b->len - b->off : len;
    memcpy(buf, b->data + b->off, n);
    b->off += n;
    if (b->off == b->len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (b->trailers) {
            nghttp2_nv t[] = {{(uint8_t *)"x-checksum", (uint8_t *)"abc123", 10, 6, 0}};
            nghttp2_submit_trailer(s, id, t, 1);
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        }
    }
    return (ssize_t)n;
}

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, 0                            \
    }

static void srv_respond(nghttp2_session *s, int32_t id, const char *path)
{
    nghttp2_nv ok[] = {NV(":status", "200")};
    nghttp2_nv ok5[] = {NV(":status", "200"), NV("content-length", "5")};
    nghttp2_nv bad[] = {NV(":status", "200"), NV("content-length", "10")};
    nghttp2_data_provider p = {.read_callback = srv_read_fixed};
    if (strcmp(path, "/hello") == 0) {
        body_hello.off = 0;
        p.source.ptr = &body_hello;
        nghttp2_submit_response(s, id, ok5, 2, &p);
    } else if (strcmp(path, "/second") == 0) {
        body_second.off = 0;
        p.source.ptr = &body_second;
        nghttp2_submit_response(s, id, ok, 1, &p);
    } else if (strcmp(path, "/trailers") == 0) {
        body_trailed.off = 0;
        p.source.ptr = &body_trailed;
        nghttp2_submit_response(s, id, ok, 1, &p);
    } else if (strcmp(path, "/badlen") == 0) {
        body_short.off = 0;
        p.source.ptr = &body_short;
        nghttp2_submit_response(s, id, bad, 2, &p);
    } else if (strcmp(path, "/big") == 0) {
        nghttp2_data_provider big = {.read_callback = srv_read_big};
        nghttp2_submit_response(s, id, ok, 1, &big);
    } else if (strcmp(path, "/nostatus") == 0) {
        nghttp2_nv nostatus[] = {NV("x-field", "1")};
        nghttp2_submit_response(s, id, nostatus, 1, NULL);
    } else if (strcmp(path, "/goaway0") == 0) {
        nghttp2_submit_goaway(s, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
    } else if (strcmp(path, "/refuse") == 0) {
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
    } else if (strcmp(path, "/rst") == 0) {
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
    } else if (strcmp(path, "/hold") == 0) {
        nghttp2_submit_headers(s, NGHTTP2_FLAG_NONE, id, NULL, ok, 1, NULL);
    } else {
        nghttp2_submit_response(s, id, ok, 1, NULL);
    }
}

static char path_of[64][32]; /* by stream id */

static int srv_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                         size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    (void)s;
    (void)flags;
    srv_conn_t *c = user;
    server_t *srv = c->srv;
    size_t used = strlen(srv->seen);
    snprintf(srv->seen + used, sizeof(srv->seen) - used, "%.*s: %.*s\n", (int)nlen, name, (int)vlen,
             value);
    if (nlen == 5 && memcmp(name, ":path", 5) == 0 && f->hd.stream_id < 64)
        snprintf(path_of[f->hd.stream_id], 32, "%.*s", (int)vlen, value);
    return 0;
}

static int srv_on_begin(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    (void)s;
    (void)f;
    srv_conn_t *c = user;
    c->srv->seen[0] = '\0';
    return 0;
}

static int srv_on_frame(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    srv_conn_t *c = user;
    int32_t id = f->hd.stream_id;
    if (f->hd.type == NGHTTP2_PING && !(f->hd.flags & NGHTTP2_FLAG_ACK))
        c->srv->pings++;
    if (f->hd.type == NGHTTP2_RST_STREAM && id < 64)
        c->srv->rst_code[id] = f->rst_stream.error_code;
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM) && id < 64)
        srv_respond(s, id, path_of[id]);
    return 0;
}

static int srv_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *d, size_t len,
                       void *user)
{
    (void)s;
    (void)flags;
    (void)id;
    (void)d;
    srv_conn_t *c = user;
    c->srv->body_bytes += len;
    return 0;
}

static void srv_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    srv_conn_t *c = h->data;
    *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void srv_closed(uv_handle_t *h)
{
    srv_conn_t *c = h->data;
    nghttp2_session_del(c->h2);
    free(c);
}

static void srv_close_conn(srv_conn_t *c)
{
    for (int i = 0; i < 8; i++)
        if (c->srv->conns[i] == c)
            c->srv->conns[i] = NULL;
    uv_close((uv_handle_t *)&c->tcp, srv_closed);
}

static void srv_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    srv_conn_t *c = st->data;
    if (n < 0) {
        srv_close_conn(c);
        return;
    }
    if (nghttp2_session_mem_recv(c->h2, (const uint8_t *)buf->base, (size_t)n) < 0) {
        srv_close_conn(c);
        return;
    }
    srv_flush(c);
}

static void srv_accept(uv_stream_t *l, int status)
{
    assert_int_equal(status, 0);
    server_t *srv = l->data;
    srv_conn_t *c = calloc(1, sizeof(*c));
    c->srv = srv;
    uv_tcp_init(l->loop, &c->tcp);
    c->tcp.data = c;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, srv_on_header);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, srv_on_begin);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, srv_on_frame);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, srv_on_data);
    nghttp2_session_server_new(&c->h2, cbs, c);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, srv->max_streams}};
    nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, srv->max_streams ? 1 : 0);
    srv->conns[srv->accepted++ % 8] = c;
    uv_read_start((uv_stream_t *)&c->tcp, srv_alloc, srv_read);
    srv_flush(c);
}

/* ---- the fixture: a worker with a snapshot of one HTTP/2 cluster at the server ------------- */

typedef struct fixture {
    server_t srv;
    stats_store_t *stats;
    cluster_states_t *states;
    worker_t w;
    const snap_cluster_t *cluster;
    struct sockaddr_in addr;
} fixture_t;

static fixture_t *fx;

/* extra: fields of http2_protocol_options; common: of common_http_protocol_options. */
static snapshot_t *build_with(fixture_t *f, const char *extra, const char *timeout,
                              const char *common)
{
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "static_resources:\n"
             "  clusters:\n"
             "  - name: h2\n"
             "    connect_timeout: %s\n"
             "    typed_extension_protocol_options:\n"
             "      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n"
             "        '@type': type.googleapis.com/envoy.extensions.upstreams.http.v3."
             "HttpProtocolOptions\n"
             "        explicit_http_config: {http2_protocol_options: {%s}}\n"
             "        common_http_protocol_options: {%s}\n"
             "    load_assignment:\n"
             "      cluster_name: h2\n"
             "      endpoints:\n"
             "      - lb_endpoints:\n"
             "        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: "
             "%d}}}\n",
             timeout, extra, common, f->srv.port);
    ProtobufCMessage *msg = NULL;
    char err[1024];
    if (config_yaml_load(yaml, strlen(yaml), "test.yaml",
                         &envoy__config__bootstrap__v3__bootstrap__descriptor, &msg, err,
                         sizeof(err)) < 0)
        fail_msg("%s", err);
    snap_build_opts_t opts = test_snap_opts;
    opts.cluster_runtime = &cluster_runtime;
    opts.cluster_states = f->states;
    snapshot_t *snap = NULL;
    if (snapshot_build(msg, &opts, f->stats, 1, &snap, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    return snap;
}

static snapshot_t *build(fixture_t *f, const char *extra)
{
    return build_with(f, extra, "1s", "");
}

static void fixture_up(const char *extra, uint32_t max_streams)
{
    fixture_t *f = fx = calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->w.loop), 0);
    uv_tcp_init(&f->w.loop, &f->srv.listener);
    f->srv.listener.data = &f->srv;
    f->srv.max_streams = max_streams;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&f->srv.listener, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&f->srv.listener, 16, srv_accept), 0);
    int len = sizeof(f->addr);
    uv_tcp_getsockname(&f->srv.listener, (struct sockaddr *)&f->addr, &len);
    f->srv.port = ntohs(f->addr.sin_port);
    f->stats = stats_store_new(1);
    assert_int_equal(cluster_states_new(1, &f->states), 0);
    f->w.stats = stats_slots(f->stats, 0);
    bufpool_init(&f->w.pool, 16);
    f->w.snap = build(f, extra);
    f->cluster = &f->w.snap->clusters[0];
    assert_true(f->cluster->http2);
}

static void fixture_down(void)
{
    fixture_t *f = fx;
    h2_pool_close_all(&f->w);
    for (int i = 0; i < 8; i++)
        if (f->srv.conns[i])
            srv_close_conn(f->srv.conns[i]);
    uv_close((uv_handle_t *)&f->srv.listener, NULL);
    uv_run(&f->w.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->w.loop), 0);
    snapshot_unref(f->w.snap);
    cluster_states_unref(f->states);
    stats_store_free(f->stats);
    bufpool_destroy(&f->w.pool);
    free(f);
    fx = NULL;
    memset(path_of, 0, sizeof(path_of));
}

/* ---- the recorder: the codec's owner ------------------------------------------------------- */

typedef struct rec {
    unsigned char cs[512]; /* the codec's state */
    int ready, heads, status, trailers, resets, drained;
    int64_t content_length;
    bool has_body, ended, retryable, pause_on_data;
    http_up_reset_t why;
    size_t data;
    char trailer[64];
} rec_t;

static void ev_ready(void *o)
{
    ((rec_t *)o)->ready++;
}

static int ev_head(void *o, const http_response_head_t *h)
{
    rec_t *r = o;
    r->heads++;
    r->status = h->status;
    r->content_length = h->content_length;
    r->has_body = h->has_body;
    return 0;
}

static int ev_data(void *o, const char *d, size_t len, bool end)
{
    (void)d;
    rec_t *r = o;
    r->data += len;
    r->ended |= end;
    if (r->pause_on_data && len)
        h2_upstream_codec.pause(r->cs);
    return 0;
}

static int ev_trailers(void *o, const http_headers_t *t)
{
    rec_t *r = o;
    r->trailers++;
    r->ended = true;
    if (t->n)
        snprintf(r->trailer, sizeof(r->trailer), "%.*s: %.*s", (int)t->v[0].name_len, t->v[0].name,
                 (int)t->v[0].value_len, t->v[0].value);
    return 0;
}

static void ev_reset(void *o, http_up_reset_t why, bool retryable)
{
    rec_t *r = o;
    r->resets++;
    r->why = why;
    r->retryable = retryable;
}

static void ev_drained(void *o)
{
    ((rec_t *)o)->drained++;
}

static const http_up_events_t events = {ev_ready,    ev_head,  ev_data,
                                        ev_trailers, ev_reset, ev_drained};

static bool done_of(rec_t *r)
{
    return r->ended || r->resets;
}

static void run_until_done(rec_t *r)
{
    uint64_t end = uv_now(&fx->w.loop) + 5000;
    while (!done_of(r) && uv_now(&fx->w.loop) < end) {
        uv_run(&fx->w.loop, UV_RUN_NOWAIT);
        uv_sleep(1);
        uv_update_time(&fx->w.loop);
    }
}

static void run_for(unsigned ms)
{
    uint64_t end = uv_now(&fx->w.loop) + ms;
    while (uv_now(&fx->w.loop) < end) {
        uv_run(&fx->w.loop, UV_RUN_NOWAIT);
        uv_sleep(1);
        uv_update_time(&fx->w.loop);
    }
}

/* Starts r's request and waits for its connection. */
static void start(rec_t *r)
{
    memset(r->cs, 0, sizeof(r->cs));
    assert_true(h2_upstream_codec.state_size <= sizeof(r->cs));
    bool ready = false;
    assert_int_equal(h2_upstream_codec.start(r->cs, &fx->w, fx->cluster, 0,
                                             (const struct sockaddr *)&fx->addr, r, &events,
                                             &ready),
                     0);
    if (!ready) {
        bool got = false;
        uint64_t end = uv_now(&fx->w.loop) + 5000;
        while (!(got = r->ready > 0) && !r->resets && uv_now(&fx->w.loop) < end) {
            uv_run(&fx->w.loop, UV_RUN_NOWAIT);
            uv_sleep(1);
            uv_update_time(&fx->w.loop);
        }
        assert_true(got);
    }
}

static void get(rec_t *r, const char *path, const http_header_t *fields, uint32_t n)
{
    http_request_head_t h = {.method = "GET",
                             .method_len = 3,
                             .path = path,
                             .path_len = (uint32_t)strlen(path),
                             .authority = "test",
                             .authority_len = n ? 0 : 4, /* with fields: from their Host */
                             .headers = {(http_header_t *)fields, n, n},
                             .content_length = -1,
                             .has_body = false};
    bool retryable = true;
    assert_int_equal(h2_upstream_codec.send_head(r->cs, &h, NULL, 0, true, &retryable), 0);
}

#define FIELD(n, v)                                                                                \
    {                                                                                              \
        n, v, sizeof(n) - 1, sizeof(v) - 1                                                         \
    }

static int64_t stat_of(stat_id_t id)
{
    return stats_value(fx->stats, id);
}

/* ---- behaviours ---------------------------------------------------------------------------- */

static void test_h2_get_gives_head_body_and_end(void **state)
{
    (void)state;
    fixture_up("", 0);
    rec_t r = {0};
    start(&r);
    get(&r, "/hello", NULL, 0);
    run_until_done(&r);
    assert_int_equal(r.resets, 0);
    assert_int_equal(r.heads, 1);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.content_length, 5);
    assert_true(r.has_body);
    assert_int_equal(r.data, 5);
    assert_true(r.ended);
    h2_upstream_codec.release(r.cs, true);
    run_for(20);
    assert_int_equal(stat_of(fx->cluster->st.upstream_cx_http2_total), 1);
    assert_int_equal(stat_of(fx->cluster->st.http2_tx_reset), 0);
    fixture_down();
}

static void test_h2_request_fields_lowercased_hop_fields_dropped(void **state)
{
    (void)state;
    fixture_up("", 0);
    rec_t r = {0};
    start(&r);
    http_header_t f[] = {FIELD("Host", "svc.example"),
                         FIELD("Connection", "keep-alive, X-Hop"),
                         FIELD("X-Hop", "1"),
                         FIELD("Keep-Alive", "5"),
                         FIELD("Transfer-Encoding", "chunked"),
                         FIELD("TE", "trailers"),
                         FIELD("X-Kept", "Yes"),
                         FIELD("Content-Length", "99")};
    get(&r, "/echo", f, sizeof(f) / sizeof(f[0]));
    run_until_done(&r);
    assert_string_equal(fx->srv.seen, ":method: GET\n:scheme: http\n:authority: svc.example\n"
                                      ":path: /echo\nte: trailers\nx-kept: Yes\n");
    assert_false(r.has_body); /* END_STREAM on the response's HEADERS */
    assert_true(r.ended);
    h2_upstream_codec.release(r.cs, true);
    fixture_down();
}

static void test_h2_post_body_and_trailers_reach_the_server(void **state)
{
    (void)state;
    fixture_up("", 0);
    rec_t r = {0};
    start(&r);
    static char body[300000];
    memset(body, 'b', sizeof(body));
    http_request_head_t h = {.method = "POST",
                             .method_len = 4,
                             .path = "/echo",
                             .path_len = 5,
                             .authority = "test",
                             .authority_len = 4,
                             .content_length = -1,
                             .has_body = true};
    bool retryable;
    assert_int_equal(h2_upstream_codec.send_head(r.cs, &h, body, 1000, false, &retryable), 0);
    http_header_t t[] = {FIELD("X-Sum", "42")};
    http_headers_t th = {t, 1, 1};
    assert_int_equal(h2_upstream_codec.send_data(r.cs, body, sizeof(body), true, &th), 0);
    run_until_done(&r);
    assert_int_equal(fx->srv.body_bytes, 1000 + sizeof(body));
    assert_non_null(strstr(fx->srv.seen, "x-sum: 42\n")); /* the trailer block */
    h2_upstream_codec.release(r.cs, true);
    fixture_down();
}

static void test_h2_response_trailers_end_the_response(void **state)
{
    (void)state;
    fixture_up("", 0);
    rec_t r = {0};
    start(&r);
    get(&r, "/trailers", NULL, 0);
    run_until_done(&r);
    assert_int_equal(r.data, 3);
    assert_int_equal(r.trailers, 1);
    assert_string_equal(r.trailer, "x-checksum: abc123");
    h2_upstream_codec.release(r.cs, true);
    fixture_down();
}

static void test_h2_streams_share_one_connection(void **state)
{
    (void)state;
    fixture_up("", 0);
    rec_t a = {0}, b = {0};
    start(&a);
    start(&b);
    get(&a, "/hello", NULL, 0);
    get(&b, "/second", NULL, 0);
    run_until_done(&a);
    run_until_done(&b);
    assert_int_equal(a.data, 5);
    assert_int_equal(b.data, 6);
    assert_int_equal(fx->srv.accepted, 1);
    h2_upstream_codec.release(a.cs, true);
    h2_upstream_codec.release(b.cs, true);
    fixture_down();
}

static void test_h2_cluster_stream_limit_opens_another_connection(void **state)
{
    (void)state;
    fixture_up("max_concurrent_streams: 1", 0);
    rec_t a = {0}, b = {0};
    start(&a);
    start(&b);
    run_for(50);
    assert_int_equal(fx->srv.accepted, 2);
    h2_upstream_codec.release(a.cs, false);
    h2_upstream_codec.release(b.cs, false);
    fixture_down();
}

static void test_h2_refused_stream_is_retryable_other_resets_not(void **state)
{
    (void)state;
    fixture_up("", 0);
    rec_t a = {0}, b = {0};
    start(&a);
    get(&a, "/refuse", NULL, 0);
    run_until_done(&a);
    assert_int_equal(a.resets, 1);
    assert_int_equal(a.why, HTTP_UP_CLOSED);
    assert_true(a.retryable);
    start(&b);
    get(&b, "/rst", NULL, 0);
    run_until_done(&b);
    assert_int_equal(b.resets, 1);
    assert_int_equal(b.why, HTTP_UP_CLOSED);
    assert_false(b.retryable);
    assert_int_equal(stat_of(fx->cluster->st.http2_rx_reset), 2);
    assert_int_equal(fx->srv.accepted, 1); /* a reset ends the stream, not the connection */
    fixture_down();
}

static void test_h2_stream_above_goaway_is_retryable_on_a_new_connection(void **state)
{
    (void)state;
    fixture_up("", 0);
    rec_t a = {0}, b = {0};
    start(&a);
    get(&a, "/goaway0", NULL, 0); /* the server never processed it: last_stream_id 0 */
    run_until_done(&a);
    assert_int_equal(a.resets, 1);
    assert_int_equal(a.why, HTTP_UP_CLOSED);
    assert_true(a.retryable);
    assert_int_equal(stat_of(fx->cluster->st.upstream_cx_close_notify), 1);
    start(&b);
    get(&b, "/hello", NULL, 0);
    run_until_done(&b);
    assert_int_equal(b.data, 5);
    assert_int_equal(fx->srv.accepted, 2);
    h2_upstream_codec.release(b.cs, true);
    fixture_down();
}

static void test_h2_content_length_mismatch_is_a_bad_body(void **state)
{
    (void)state;
    fixture_up("", 0);
    rec_t r = {0};
    start(&r);
    get(&r, "/badlen", NULL, 0);
    run_until_done(&r);
    assert_int_equal(r.heads, 1);
    assert_int_equal(r.resets, 1);
    assert_int_equal(r.why, HTTP_UP_BAD_BODY);
    assert_false(r.retryable);
    fixture_down();
}

static void test_h2_head_without_status_is_a_bad_head(void **state)
{
    (void)state;
    fixture_up("", 0);
    rec_t r = {0};
    start(&r);
    get(&r, "/nostatus", NULL, 0);
    run_until_done(&r);
    assert_int_equal(r.heads, 0);
    assert_int_equal(r.resets, 1);
    assert_int_equal(r.why, HTTP_UP_BAD_HEAD);
    fixture_down();
}

static void test_h2_release_mid_stream_cancels_only_that_stream(void **state)
{
    (void)state;
    fixture_up("", 0);
    rec_t a = {0}, b = {0};
    start(&a);
    start(&b);
    get(&a, "/hold", NULL, 0);
    bool headed = false;
    uint64_t end = uv_now(&fx->w.loop) + 5000;
    while (!(headed = a.heads > 0) && uv_now(&fx->w.loop) < end)
        run_for(1);
    assert_true(headed);
    h2_upstream_codec.release(a.cs, false);
    get(&b, "/hello", NULL, 0);
    run_until_done(&b);
    assert_int_equal(b.data, 5);
    assert_int_equal(fx->srv.rst_code[1], NGHTTP2_CANCEL);
    assert_int_equal(stat_of(fx->cluster->st.http2_tx_reset), 1);
    assert_int_equal(fx->srv.accepted, 1);
    h2_upstream_codec.release(b.cs, true);
    fixture_down();
}

static void test_h2_paused_stream_holds_the_server_to_its_window(void **state)
{
    (void)state;
    fixture_up("", 0);
    rec_t r = {0};
    r.pause_on_data = true;
    start(&r);
    get(&r, "/big", NULL, 0);
    run_for(300);
    /* Paused after the first bytes: nothing more is consumed, the stream's window stops the
     * server well short of the whole body. */
    assert_true(fx->srv.big_sent < BIG_BYTES / 2);
    size_t before = r.data;
    assert_true(before > 0);
    r.pause_on_data = false;
    while (!r.ended && !r.resets) {
        h2_upstream_codec.resume(r.cs);
        run_for(5);
    }
    assert_int_equal(r.resets, 0);
    assert_int_equal(r.data, BIG_BYTES);
    h2_upstream_codec.release(r.cs, true);
    fixture_down();
}

static void test_h2_lost_connection_resets_every_stream(void **state)
{
    (void)state;
    fixture_up("", 0);
    rec_t a = {0}, b = {0};
    start(&a);
    start(&b);
    get(&a, "/hold", NULL, 0);
    get(&b, "/hold", NULL, 0);
    run_for(100);
    srv_close_conn(fx->srv.conns[0]);
    run_until_done(&a);
    run_until_done(&b);
    assert_int_equal(a.resets, 1);
    assert_int_equal(b.resets, 1);
    assert_int_equal(a.why, HTTP_UP_CLOSED);
    /* Their response heads had come: neither may go again. */
    assert_false(a.retryable);
    assert_false(b.retryable);
    fixture_down();
}

static void test_h2_connect_is_refused(void **state)
{
    (void)state;
    fixture_up("", 0);
    rec_t r = {0};
    start(&r);
    http_request_head_t h = {.method = "CONNECT",
                             .method_len = 7,
                             .authority = "x:443",
                             .authority_len = 5,
                             .content_length = -1,
                             .has_body = true,
                             .connect = true};
    bool retryable = true;
    assert_true(h2_upstream_codec.send_head(r.cs, &h, NULL, 0, false, &retryable) < 0);
    assert_false(retryable);
    fixture_down();
}

/* The worker installs next in place of its snapshot, as worker.c does: the pools hear of it
 * while the old one is alive. */
static void install(snapshot_t *next)
{
    snapshot_t *old = fx->w.snap;
    fx->w.snap = next;
    h2_pool_retire_snapshot(&fx->w, old);
    snapshot_unref(old);
    fx->cluster = &next->clusters[0];
}

static void test_h2_pool_moves_to_a_compatible_snapshot(void **state)
{
    (void)state;
    fixture_up("", 0);
    rec_t a = {0}, b = {0};
    start(&a);
    get(&a, "/hello", NULL, 0);
    run_until_done(&a);
    h2_upstream_codec.release(a.cs, true);
    install(build(fx, "")); /* the same cluster: its connection stays */
    start(&b);
    assert_true(h2_upstream_codec.reused(b.cs));
    get(&b, "/hello", NULL, 0);
    run_until_done(&b);
    assert_int_equal(b.data, 5);
    assert_int_equal(fx->srv.accepted, 1);
    h2_upstream_codec.release(b.cs, true);
    fixture_down();
}

static void test_h2_pool_retires_when_the_cluster_changed(void **state)
{
    (void)state;
    fixture_up("", 0);
    rec_t a = {0}, b = {0}, c = {0};
    start(&a);
    start(&b);
    get(&b, "/hold", NULL, 0);
    get(&a, "/hello", NULL, 0);
    run_until_done(&a);
    h2_upstream_codec.release(a.cs, true);
    install(build_with(fx, "", "2s", "")); /* another connect timeout: new connections */
    start(&c);
    get(&c, "/hello", NULL, 0);
    run_until_done(&c);
    assert_int_equal(c.data, 5);
    assert_int_equal(fx->srv.accepted, 2);
    assert_int_equal(b.resets, 0); /* the stream in flight goes on on the retired connection */
    h2_upstream_codec.release(b.cs, false);
    h2_upstream_codec.release(c.cs, true);
    run_for(50); /* the retired connection, left without streams, closes */
    assert_int_equal(stat_of(fx->cluster->st.upstream_cx_active), 1);
    fixture_down();
}

static void test_h2_max_requests_per_connection_opens_a_new_one(void **state)
{
    (void)state;
    fixture_up("", 0);
    install(build_with(fx, "", "1s", "max_requests_per_connection: 1"));
    rec_t a = {0}, b = {0};
    start(&a);
    get(&a, "/hello", NULL, 0);
    run_until_done(&a);
    h2_upstream_codec.release(a.cs, true);
    start(&b);
    get(&b, "/hello", NULL, 0);
    run_until_done(&b);
    h2_upstream_codec.release(b.cs, true);
    assert_int_equal(a.data + b.data, 10);
    assert_int_equal(fx->srv.accepted, 2);
    fixture_down();
}

static void test_h2_keepalive_pings_an_idle_connection(void **state)
{
    (void)state;
    fixture_up("connection_keepalive: {interval: 0.05s, timeout: 1s}", 0);
    rec_t a = {0};
    start(&a);
    get(&a, "/hello", NULL, 0);
    run_until_done(&a);
    h2_upstream_codec.release(a.cs, true);
    run_for(300);
    assert_true(fx->srv.pings >= 2);
    assert_int_equal(stat_of(fx->cluster->st.upstream_cx_active), 1); /* answered: kept */
    fixture_down();
}

int main(void)
{
    if (getenv("H2_DEBUG"))
        log_set_level(LOG_DEBUG);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_h2_get_gives_head_body_and_end),
        cmocka_unit_test(test_h2_request_fields_lowercased_hop_fields_dropped),
        cmocka_unit_test(test_h2_post_body_and_trailers_reach_the_server),
        cmocka_unit_test(test_h2_response_trailers_end_the_response),
        cmocka_unit_test(test_h2_streams_share_one_connection),
        cmocka_unit_test(test_h2_cluster_stream_limit_opens_another_connection),
        cmocka_unit_test(test_h2_refused_stream_is_retryable_other_resets_not),
        cmocka_unit_test(test_h2_stream_above_goaway_is_retryable_on_a_new_connection),
        cmocka_unit_test(test_h2_content_length_mismatch_is_a_bad_body),
        cmocka_unit_test(test_h2_head_without_status_is_a_bad_head),
        cmocka_unit_test(test_h2_release_mid_stream_cancels_only_that_stream),
        cmocka_unit_test(test_h2_paused_stream_holds_the_server_to_its_window),
        cmocka_unit_test(test_h2_lost_connection_resets_every_stream),
        cmocka_unit_test(test_h2_connect_is_refused),
        cmocka_unit_test(test_h2_pool_moves_to_a_compatible_snapshot),
        cmocka_unit_test(test_h2_pool_retires_when_the_cluster_changed),
        cmocka_unit_test(test_h2_max_requests_per_connection_opens_a_new_one),
        cmocka_unit_test(test_h2_keepalive_pings_an_idle_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
