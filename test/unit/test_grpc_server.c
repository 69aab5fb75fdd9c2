/* The gRPC server (proxy/grpc/grpc_server.h) against the project's gRPC client and, for what that
 * client never sends (a wrong content-type, a 4 GiB prefix, garbage), a raw nghttp2 client, all
 * in one libuv loop over 127.0.0.1: calls are routed, messages arrive whole however they are
 * split, every call ends exactly once with the status the client was told, a client that does
 * not read holds the server's queue at the low-water mark, and TLS hands each call the client's
 * SPIFFE ID. Every test ends with no handle left on the loop (ASan checks the rest). */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>
#include <uv.h>

#include "certs/tls.h"
#include "proxy/grpc/grpc_client.h"
#include "proxy/grpc/grpc_server.h"
#include "h2_raw.h"

#define CERTS     "test/data/certs/"
#define GUARD_MS  10000
#define MAX_CALLS 4

static uv_loop_t loop;
static grpc_server_t *srv;
static struct sockaddr_in srv_addr;
static uv_timer_t guard;

/* ---- what the server's methods saw ------------------------------------------------------- */

typedef struct scall_rec {
    int started, closed, half_closed, writable;
    int code;
    char message[256];
    char peer[128];
    char md[64];
    int nmsg;
    size_t bytes;
    uint64_t hash;
    size_t max_pending;
    size_t produced;
    grpc_scall_t *call;
} scall_rec_t;

static scall_rec_t sr[MAX_CALLS];
static int n_sr;

typedef enum {
    MODE_ECHO,   /* echo each message; finish OK on half-close */
    MODE_SILENT, /* never answer */
    MODE_STATUS, /* finish PERMISSION_DENIED with a message and trailers on the first message */
    MODE_FLOOD,  /* on start, produce 4 KiB messages until 2 MiB, as on_writable allows */
    MODE_SHARED, /* on start, send one shared buffer twice and finish OK */
} mode_t_;

static mode_t_ mode;

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

#define FLOOD_MSG   4096
#define FLOOD_TOTAL (2u << 20)
#define LOW_WATER   (16 * 1024)

static void flood(scall_rec_t *r)
{
    static uint8_t block[FLOOD_MSG];
    while (r->produced < FLOOD_TOTAL && grpc_scall_pending_bytes(r->call) < LOW_WATER) {
        assert_int_equal(grpc_scall_send(r->call, block, sizeof(block)), 0);
        r->produced += sizeof(block);
        size_t p = grpc_scall_pending_bytes(r->call);
        if (p > r->max_pending)
            r->max_pending = p;
    }
    if (r->produced >= FLOOD_TOTAL)
        grpc_scall_finish(r->call, GRPC_OK, NULL, NULL, 0);
}

static int releases;

static void release_shared(void *arg)
{
    assert_ptr_equal(arg, &releases);
    releases++;
}

static void s_start(grpc_scall_t *call, void *user)
{
    (void)user;
    assert_true(n_sr < MAX_CALLS);
    scall_rec_t *r = &sr[n_sr++];
    r->call = call;
    r->started++;
    r->hash = 14695981039346656037ULL;
    const char *peer = grpc_scall_peer_id(call);
    snprintf(r->peer, sizeof(r->peer), "%s", peer ? peer : "");
    const char *md = grpc_scall_metadata(call, "x-test");
    snprintf(r->md, sizeof(r->md), "%s", md ? md : "");
    grpc_scall_set_user(call, r);
    if (mode == MODE_FLOOD)
        flood(r);
    if (mode == MODE_SHARED) {
        static const char shared[] = "shared";
        for (int i = 0; i < 2; i++)
            assert_int_equal(grpc_scall_send_shared(call, shared, 6, release_shared, &releases), 0);
        assert_int_equal(grpc_scall_finish(call, GRPC_OK, NULL, NULL, 0), 0);
        assert_int_equal(grpc_scall_send_shared(call, shared, 6, release_shared, &releases),
                         -EPIPE);
        assert_int_equal(releases, 1); /* the refused one, at once */
    }
}

static void s_message(grpc_scall_t *call, const uint8_t *msg, size_t len, void *user)
{
    scall_rec_t *r = user;
    r->nmsg++;
    r->bytes += len;
    r->hash = fnv(r->hash, msg, len);
    if (mode == MODE_ECHO) {
        assert_int_equal(grpc_scall_send(call, msg, len), 0);
    } else if (mode == MODE_STATUS) {
        grpc_metadata_t tr = {"x-why", "policy"};
        assert_int_equal(
            grpc_scall_finish(call, GRPC_PERMISSION_DENIED, "no: 100% \xc3\xa9", &tr, 1), 0);
        assert_int_equal(grpc_scall_send(call, "x", 1), -EPIPE);
    }
}

static void s_half_close(grpc_scall_t *call, void *user)
{
    scall_rec_t *r = user;
    r->half_closed++;
    if (mode == MODE_ECHO)
        assert_int_equal(grpc_scall_finish(call, GRPC_OK, NULL, NULL, 0), 0);
}

static void s_writable(grpc_scall_t *call, void *user)
{
    (void)call;
    scall_rec_t *r = user;
    r->writable++;
    if (mode == MODE_FLOOD)
        flood(r);
}

static bool close_server_in_on_close;

static void s_close(grpc_scall_t *call, int code, const char *message, void *user)
{
    (void)call;
    scall_rec_t *r = user;
    r->closed++;
    r->code = code;
    snprintf(r->message, sizeof(r->message), "%s", message);
    if (close_server_in_on_close) {
        grpc_server_close(srv);
        srv = NULL;
    }
}

static const grpc_method_ops_t s_ops = {
    .on_start = s_start,
    .on_message = s_message,
    .on_half_close = s_half_close,
    .on_writable = s_writable,
    .on_close = s_close,
};

/* ---- the loop ---------------------------------------------------------------------------- */

static void on_guard(uv_timer_t *t)
{
    (void)t;
    fail_msg("the test did not finish within %d ms", GUARD_MS);
}

/* Runs the loop until done() or the guard fires. */
static void run_until(bool (*done)(void))
{
    uv_timer_start(&guard, on_guard, GUARD_MS, 0);
    while (!done() && uv_run(&loop, UV_RUN_ONCE))
        ;
    uv_timer_stop(&guard);
    assert_true(done());
}

static void server_start_opts(grpc_server_opts_t *o);

static void server_start(tls_config_t *tls, uint32_t stream_window)
{
    grpc_server_opts_t o = {
        .tls = tls, .stream_window = stream_window, .send_low_water = LOW_WATER};
    server_start_opts(&o);
}

static void server_start_opts(grpc_server_opts_t *o)
{
    assert_int_equal(grpc_server_new(&loop, o, &srv), 0);
    assert_int_equal(grpc_server_add_method(srv, "/t.T/M", &s_ops, NULL), 0);
    assert_int_equal(grpc_server_add_method(srv, "/t.T/M", &s_ops, NULL), -EEXIST);
    struct sockaddr_in any;
    uv_ip4_addr("127.0.0.1", 0, &any);
    assert_int_equal(grpc_server_listen(srv, (const struct sockaddr *)&any), 0);
    struct sockaddr_storage ss;
    assert_int_equal(grpc_server_address(srv, &ss), 0);
    memcpy(&srv_addr, &ss, sizeof(srv_addr));
}

static int setup(void **state)
{
    (void)state;
    memset(sr, 0, sizeof(sr));
    n_sr = 0;
    mode = MODE_ECHO;
    close_server_in_on_close = false;
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_timer_init(&loop, &guard);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    grpc_server_close(srv);
    srv = NULL;
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    return 0;
}

/* ---- the project's client ---------------------------------------------------------------- */

typedef struct ccall {
    int closed, nmsg, code;
    size_t bytes;
    uint64_t hash;
    char message[256];
    bool cancel_on_message;
    grpc_call_t *call;
} ccall_t;

static grpc_conn_t *conn;
static ccall_t cc;
static int conn_closed_error = 1; /* 1: not closed */

static void c_message(grpc_call_t *call, const uint8_t *msg, size_t len, void *user)
{
    ccall_t *r = user;
    r->nmsg++;
    r->bytes += len;
    r->hash = fnv(r->hash, msg, len);
    if (r->cancel_on_message)
        grpc_call_cancel(call);
}

static void c_close(grpc_call_t *call, int code, const char *message, void *user)
{
    (void)call;
    ccall_t *r = user;
    r->closed++;
    r->code = code;
    snprintf(r->message, sizeof(r->message), "%s", message);
}

static const grpc_call_ops_t c_ops = {.on_message = c_message, .on_close = c_close};

static void c_state(grpc_conn_t *c, grpc_conn_state_t st, int error, void *user)
{
    (void)c;
    (void)user;
    if (st == GRPC_CONN_CLOSED)
        conn_closed_error = error;
}

static void client_connect(tls_config_t *tls)
{
    memset(&cc, 0, sizeof(cc));
    cc.hash = 14695981039346656037ULL;
    conn_closed_error = 1;
    grpc_conn_opts_t o = {.tls = tls, .on_state = c_state};
    assert_int_equal(grpc_conn_new(&loop, (const struct sockaddr *)&srv_addr, &o, &conn), 0);
}

static void client_call(const char *path, uint64_t timeout_ms)
{
    grpc_metadata_t md = {"x-test", "hello"};
    grpc_call_opts_t o = {.path = path, .metadata = &md, .n_metadata = 1, .timeout_ms = timeout_ms};
    assert_int_equal(grpc_call_start(conn, &o, &c_ops, &cc, &cc.call), 0);
}

static void client_close(void)
{
    grpc_conn_close(conn);
    conn = NULL;
}

static bool client_call_closed(void)
{
    return cc.closed > 0;
}

static bool both_closed(void)
{
    return cc.closed > 0 && n_sr > 0 && sr[0].closed > 0;
}

static bool two_started(void)
{
    return n_sr == 2 && sr[0].nmsg > 0 && sr[1].nmsg > 0;
}

/* ---- tests with the project's client ----------------------------------------------------- */

static void test_unary_call_echoes_and_ends_ok_on_both_sides(void **state)
{
    (void)state;
    server_start(NULL, 0);
    client_connect(NULL);
    client_call("/t.T/M", 0);
    assert_int_equal(grpc_call_send(cc.call, "ping", 4), 0);
    assert_int_equal(grpc_call_close_send(cc.call), 0);
    run_until(both_closed);
    assert_int_equal(cc.code, GRPC_OK);
    assert_int_equal(cc.nmsg, 1);
    assert_int_equal(cc.bytes, 4);
    assert_int_equal(sr[0].started, 1);
    assert_int_equal(sr[0].closed, 1);
    assert_int_equal(sr[0].half_closed, 1);
    assert_int_equal(sr[0].code, GRPC_OK);
    assert_string_equal(sr[0].md, "hello");
    assert_string_equal(sr[0].peer, ""); /* plaintext: no identity */
    client_close();
}

/* 1,000 messages of growing size both ways on one stream: every byte arrives, in order. */
static void test_bidi_stream_carries_many_messages_in_order(void **state)
{
    (void)state;
    server_start(NULL, 0);
    client_connect(NULL);
    client_call("/t.T/M", 0);
    uint8_t buf[1000];
    uint64_t h = 14695981039346656037ULL;
    size_t total = 0;
    for (size_t i = 0; i < 1000; i++) {
        for (size_t k = 0; k < i; k++)
            buf[k] = (uint8_t)(i * 7 + k);
        assert_int_equal(grpc_call_send(cc.call, buf, i), 0);
        h = fnv(h, buf, i);
        total += i;
    }
    assert_int_equal(grpc_call_close_send(cc.call), 0);
    run_until(both_closed);
    assert_int_equal(sr[0].nmsg, 1000);
    assert_int_equal(sr[0].bytes, total);
    assert_true(sr[0].hash == h);
    assert_int_equal(cc.nmsg, 1000);
    assert_true(cc.hash == h);
    assert_int_equal(cc.code, GRPC_OK);
    client_close();
}

/* The server's stream window is 16 KiB: a 300 KiB message comes in many DATA frames and is
 * handed to the method whole; fifty small ones sent together come out one by one. */
static void test_message_split_across_frames_arrives_whole(void **state)
{
    (void)state;
    server_start(NULL, 16384);
    client_connect(NULL);
    client_call("/t.T/M", 0);
    size_t big = 300 * 1024;
    uint8_t *buf = malloc(big);
    assert_non_null(buf);
    for (size_t i = 0; i < big; i++)
        buf[i] = (uint8_t)(i * 31 + 7);
    uint64_t h = fnv(14695981039346656037ULL, buf, big);
    assert_int_equal(grpc_call_send(cc.call, buf, big), 0);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(grpc_call_send(cc.call, buf, 3), 0);
        h = fnv(h, buf, 3);
    }
    free(buf);
    assert_int_equal(grpc_call_close_send(cc.call), 0);
    run_until(both_closed);
    assert_int_equal(sr[0].nmsg, 51);
    assert_int_equal(sr[0].bytes, big + 150);
    assert_true(sr[0].hash == h);
    assert_int_equal(cc.code, GRPC_OK);
    client_close();
}

/* One buffer queued twice without a copy: both arrive, each release runs once. */
static void test_shared_message_is_sent_and_released(void **state)
{
    (void)state;
    mode = MODE_SHARED;
    releases = 0;
    server_start(NULL, 0);
    client_connect(NULL);
    client_call("/t.T/M", 0);
    assert_int_equal(grpc_call_close_send(cc.call), 0);
    run_until(both_closed);
    assert_int_equal(cc.code, GRPC_OK);
    assert_int_equal(cc.nmsg, 2);
    assert_int_equal(cc.bytes, 12);
    assert_int_equal(releases, 3);
    client_close();
}

static void test_unknown_method_is_unimplemented(void **state)
{
    (void)state;
    server_start(NULL, 0);
    client_connect(NULL);
    client_call("/t.T/Nope", 0);
    assert_int_equal(grpc_call_send(cc.call, "x", 1), 0);
    run_until(client_call_closed);
    assert_int_equal(cc.code, GRPC_UNIMPLEMENTED);
    assert_string_equal(cc.message, "unknown method /t.T/Nope");
    assert_int_equal(n_sr, 0);
    client_close();
}

static void test_status_message_and_trailers_reach_the_client(void **state)
{
    (void)state;
    mode = MODE_STATUS;
    server_start(NULL, 0);
    client_connect(NULL);
    client_call("/t.T/M", 0);
    assert_int_equal(grpc_call_send(cc.call, "x", 1), 0);
    run_until(both_closed);
    assert_int_equal(cc.code, GRPC_PERMISSION_DENIED);
    assert_string_equal(cc.message, "no: 100% \xc3\xa9"); /* percent-encoded on the wire */
    assert_int_equal(sr[0].code, GRPC_PERMISSION_DENIED);
    assert_string_equal(sr[0].message, "no: 100% \xc3\xa9");
    client_close();
}

static void test_deadline_passes_and_the_method_hears_it(void **state)
{
    (void)state;
    mode = MODE_SILENT;
    server_start(NULL, 0);
    client_connect(NULL);
    client_call("/t.T/M", 150);
    assert_int_equal(grpc_call_send(cc.call, "x", 1), 0);
    run_until(both_closed);
    assert_int_equal(cc.code, GRPC_DEADLINE_EXCEEDED);
    assert_int_equal(sr[0].closed, 1);
    /* The client gives up at the same moment: the server's on_close says either. */
    assert_true(sr[0].code == GRPC_DEADLINE_EXCEEDED || sr[0].code == GRPC_CANCELLED);
    client_close();
}

static void test_client_cancel_reaches_the_method(void **state)
{
    (void)state;
    server_start(NULL, 0);
    client_connect(NULL);
    client_call("/t.T/M", 0);
    cc.cancel_on_message = true;
    assert_int_equal(grpc_call_send(cc.call, "x", 1), 0);
    run_until(both_closed);
    assert_int_equal(cc.code, GRPC_CANCELLED);
    assert_int_equal(sr[0].code, GRPC_CANCELLED);
    assert_int_equal(sr[0].closed, 1);
    client_close();
}

/* The method's on_close releases the whole server: the other call ends too, nothing is freed
 * twice, and the loop closes. */
static void test_server_closed_from_on_close(void **state)
{
    (void)state;
    mode = MODE_SILENT;
    server_start(NULL, 0);
    client_connect(NULL);
    ccall_t other = {0};
    grpc_call_opts_t o = {.path = "/t.T/M"};
    assert_int_equal(grpc_call_start(conn, &o, &c_ops, &other, &other.call), 0);
    assert_int_equal(grpc_call_send(other.call, "y", 1), 0);
    client_call("/t.T/M", 0);
    assert_int_equal(grpc_call_send(cc.call, "x", 1), 0);
    run_until(two_started);
    close_server_in_on_close = true;
    grpc_call_cancel(cc.call);
    run_until(both_closed);
    assert_null(srv);
    assert_int_equal(sr[0].closed + sr[1].closed, 2);
    assert_true(sr[0].code == GRPC_CANCELLED || sr[1].code == GRPC_CANCELLED);
    assert_true(sr[0].code == GRPC_UNAVAILABLE || sr[1].code == GRPC_UNAVAILABLE);
    client_close();
}

static bool started(void)
{
    return n_sr > 0 && sr[0].nmsg > 0;
}

static bool server_closed(void)
{
    return n_sr > 0 && sr[0].closed > 0;
}

static void test_connection_loss_ends_the_call_unavailable(void **state)
{
    (void)state;
    mode = MODE_SILENT;
    server_start(NULL, 0);
    client_connect(NULL);
    client_call("/t.T/M", 0);
    assert_int_equal(grpc_call_send(cc.call, "x", 1), 0);
    run_until(started);
    client_close();
    run_until(server_closed);
    assert_int_equal(sr[0].code, GRPC_UNAVAILABLE);
    assert_int_equal(sr[0].closed, 1);
}

static bool drained;

static void on_drained(grpc_server_t *s, void *user)
{
    (void)s;
    (void)user;
    drained = true;
}

static bool is_drained(void)
{
    return drained && cc.closed > 0;
}

/* A drain sends GOAWAY; the call that runs past the grace ends UNAVAILABLE on both sides. */
static void test_drain_finishes_running_calls_unavailable(void **state)
{
    (void)state;
    mode = MODE_SILENT;
    drained = false;
    server_start(NULL, 0);
    client_connect(NULL);
    client_call("/t.T/M", 0);
    assert_int_equal(grpc_call_send(cc.call, "x", 1), 0);
    run_until(started);
    grpc_server_drain(srv, 100, on_drained, NULL);
    run_until(is_drained);
    assert_int_equal(sr[0].code, GRPC_UNAVAILABLE);
    assert_int_equal(cc.code, GRPC_UNAVAILABLE);
    assert_string_equal(cc.message, "the server is stopping");
    assert_int_equal(grpc_server_connections(srv), 0);
    client_close();
}

/* ---- TLS --------------------------------------------------------------------------------- */

static tls_config_t *tls_cfg(tls_role_t role, const char *leaf, bool require)
{
    static const char *const alpn[] = {"h2"};
    char cert[128], key[128];
    snprintf(cert, sizeof(cert), CERTS "%s.pem", leaf ? leaf : "");
    snprintf(key, sizeof(key), CERTS "%s.key", leaf ? leaf : "");
    tls_config_opts_t o = {
        .role = role,
        .cert_chain.path = leaf ? cert : NULL,
        .private_key.path = leaf ? key : NULL,
        .trust_bundle.path = CERTS "root-a.pem",
        .require_client_cert = require,
        .alpn = alpn,
        .alpn_count = 1,
    };
    tls_config_t *cfg = NULL;
    char err[256];
    int rc = tls_config_new(&o, &cfg, err, sizeof(err));
    if (rc < 0)
        fail_msg("tls config: %s", err);
    return cfg;
}

static void test_tls_client_certificate_gives_the_peer_identity(void **state)
{
    (void)state;
    tls_config_t *s = tls_cfg(TLS_ROLE_SERVER, "server", true);
    tls_config_t *c = tls_cfg(TLS_ROLE_CLIENT, "client", false);
    server_start(s, 0);
    client_connect(c);
    tls_config_unref(s);
    tls_config_unref(c);
    client_call("/t.T/M", 0);
    assert_int_equal(grpc_call_send(cc.call, "ping", 4), 0);
    assert_int_equal(grpc_call_close_send(cc.call), 0);
    run_until(both_closed);
    assert_int_equal(cc.code, GRPC_OK);
    assert_int_equal(cc.nmsg, 1);
    assert_string_equal(sr[0].peer, "spiffe://cluster.local/ns/default/sa/client");
    client_close();
}

static bool conn_closed(void)
{
    return conn_closed_error != 1;
}

static void test_tls_without_client_certificate_is_refused(void **state)
{
    (void)state;
    tls_config_t *s = tls_cfg(TLS_ROLE_SERVER, "server", true);
    tls_config_t *c = tls_cfg(TLS_ROLE_CLIENT, NULL, false);
    server_start(s, 0);
    client_connect(c);
    tls_config_unref(s);
    tls_config_unref(c);
    client_call("/t.T/M", 0);
    run_until(conn_closed);
    assert_true(conn_closed_error < 0);
    run_until(client_call_closed);
    assert_int_equal(cc.code, GRPC_UNAVAILABLE);
    assert_int_equal(n_sr, 0);
    client_close();
}

/* ---- a raw HTTP/2 client --------------------------------------------------------------- */

static h2_raw_t raw;

#define NV(n, v)                                                                                   \
    (nghttp2_nv)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), 0                                    \
    }

static bool raw_stream_closed(void)
{
    return raw.stream_closed;
}

static bool raw_done(void)
{
    return raw.stream_closed && (n_sr == 0 || sr[0].closed > 0);
}

static void raw_finish(void)
{
    h2_raw_close(&raw);
    uv_run(&loop, UV_RUN_NOWAIT);
}

/* A request the server refuses before any method sees it: its HTTP and gRPC status. */
static void raw_refused(const nghttp2_nv *extra, size_t n, int http, int code, const char *why)
{
    server_start(NULL, 0);
    h2_raw_connect(&raw, &loop, (const struct sockaddr *)&srv_addr, true);
    uv_buf_t body = uv_buf_init((char *)"\0\0\0\0\1x", 6);
    h2_raw_request(&raw, "/t.T/M", extra, n, &body);
    run_until(raw_stream_closed);
    assert_int_equal(raw.http_status, http);
    assert_int_equal(raw.grpc_status, code);
    assert_string_equal(raw.grpc_message, why);
    assert_int_equal(n_sr, 0);
    raw_finish();
}

static void test_wrong_content_type_is_http_415(void **state)
{
    (void)state;
    nghttp2_nv h[] = {NV("content-type", "text/plain"), NV("te", "trailers")};
    raw_refused(h, 2, 415, GRPC_INVALID_ARGUMENT, "content-type is not application/grpc");
}

static void test_missing_te_trailers_is_refused(void **state)
{
    (void)state;
    nghttp2_nv h[] = {NV("content-type", "application/grpc")};
    raw_refused(h, 1, 200, GRPC_INTERNAL, "gRPC requires te: trailers");
}

static void test_unknown_encoding_is_unimplemented(void **state)
{
    (void)state;
    nghttp2_nv h[] = {NV("content-type", "application/grpc+proto"), NV("te", "trailers"),
                      NV("grpc-encoding", "gzip")};
    raw_refused(h, 3, 200, GRPC_UNIMPLEMENTED, "grpc-encoding not supported: only identity is");
}

/* A request whose body is body[0..len): the status the client gets and the method's on_close. */
static void raw_call(const char *body, size_t len, const char *timeout)
{
    server_start(NULL, 0);
    h2_raw_connect(&raw, &loop, (const struct sockaddr *)&srv_addr, true);
    nghttp2_nv h[] = {NV("content-type", "application/grpc"), NV("te", "trailers"),
                      NV("grpc-timeout", timeout ? timeout : "")};
    uv_buf_t b = uv_buf_init((char *)body, (unsigned)len);
    h2_raw_request(&raw, "/t.T/M", h, timeout ? 3 : 2, &b);
    run_until(raw_done);
    assert_int_equal(raw.http_status, 200);
    assert_int_equal(n_sr, 1);
    assert_int_equal(sr[0].closed, 1);
    assert_int_equal(sr[0].code, raw.grpc_status);
}

static void test_grpc_timeout_ends_the_call_deadline_exceeded(void **state)
{
    (void)state;
    mode = MODE_SILENT;
    raw_call("\0\0\0\0\1x", 6, "100m");
    assert_int_equal(raw.grpc_status, GRPC_DEADLINE_EXCEEDED);
    assert_string_equal(raw.grpc_message, "deadline exceeded");
    raw_finish();
}

static void test_message_prefix_of_4_gib_is_resource_exhausted(void **state)
{
    (void)state;
    raw_call("\0\xff\xff\xff\xffxyz", 8, NULL);
    assert_int_equal(raw.grpc_status, GRPC_RESOURCE_EXHAUSTED);
    assert_int_equal(sr[0].nmsg, 0);
    raw_finish();
}

static void test_compressed_flag_without_encoding_is_internal(void **state)
{
    (void)state;
    raw_call("\1\0\0\0\1x", 6, NULL);
    assert_int_equal(raw.grpc_status, GRPC_INTERNAL);
    assert_string_equal(raw.grpc_message, "compressed message without an agreed grpc-encoding");
    raw_finish();
}

static void test_request_ending_inside_a_message_is_internal(void **state)
{
    (void)state;
    raw_call("\0\0\0\0\x09xy", 7, NULL);
    assert_int_equal(raw.grpc_status, GRPC_INTERNAL);
    raw_finish();
}

static bool raw_eof_and_no_connection(void)
{
    return raw.eof && grpc_server_connections(srv) == 0;
}

static void test_garbage_instead_of_a_preface_closes_the_connection(void **state)
{
    (void)state;
    server_start(NULL, 0);
    h2_raw_connect(&raw, &loop, (const struct sockaddr *)&srv_addr, false);
    static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\xff\x13garbage";
    h2_raw_write(&raw, (const uint8_t *)junk, sizeof(junk));
    run_until(raw_eof_and_no_connection);
    assert_int_equal(n_sr, 0);
    raw_finish();
}

static bool flood_stalled(void)
{
    return n_sr > 0 && sr[0].produced > 0 && raw.data_bytes >= 65535;
}

static bool flood_done(void)
{
    return raw.stream_closed && sr[0].closed > 0;
}

static void on_wait(uv_timer_t *t)
{
    (void)t;
}

/* A client that gives no window back: the server's queue stays at the low-water mark, the
 * method produces no more; once the client reads, on_writable drives the rest out. */
static void test_client_that_does_not_read_holds_pending_at_low_water(void **state)
{
    (void)state;
    mode = MODE_FLOOD;
    server_start(NULL, 0);
    h2_raw_connect(&raw, &loop, (const struct sockaddr *)&srv_addr, true);
    nghttp2_nv h[] = {NV("content-type", "application/grpc"), NV("te", "trailers")};
    h2_raw_request(&raw, "/t.T/M", h, 2, NULL);
    run_until(flood_stalled);
    /* Time passing is the behaviour here: nothing more may be produced while nobody reads. */
    uv_timer_t wait;
    uv_timer_init(&loop, &wait);
    uv_timer_start(&wait, on_wait, 200, 0);
    uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&wait, NULL);
    size_t produced = sr[0].produced;
    assert_true(produced <= 65535 + LOW_WATER + FLOOD_MSG);
    assert_true(sr[0].max_pending < LOW_WATER + FLOOD_MSG + 5);
    assert_true(grpc_scall_pending_bytes(sr[0].call) >= LOW_WATER);
    int writable = sr[0].writable;
    h2_raw_start_reading(&raw);
    run_until(flood_done);
    assert_true(sr[0].writable > writable);
    assert_int_equal(raw.data_bytes, (FLOOD_TOTAL / FLOOD_MSG) * (FLOOD_MSG + 5));
    assert_int_equal(raw.grpc_status, GRPC_OK);
    assert_int_equal(sr[0].code, GRPC_OK);
    raw_finish();
}

static bool raw_goaway_and_eof(void)
{
    return raw.eof && raw.goaway_error >= 0;
}

static void test_ping_flood_ends_the_connection_enhance_your_calm(void **state)
{
    (void)state;
    server_start(NULL, 0);
    h2_raw_connect(&raw, &loop, (const struct sockaddr *)&srv_addr, true);
    for (int i = 0; i < 10; i++)
        nghttp2_submit_ping(raw.h2, NGHTTP2_FLAG_NONE, NULL);
    h2_raw_flush(&raw);
    run_until(raw_goaway_and_eof);
    assert_int_equal(raw.goaway_error, NGHTTP2_ENHANCE_YOUR_CALM);
    raw_finish();
}

/* A client that sends its preface and then nothing, not even a PING ack, is closed. */
static void test_unanswered_keepalive_closes_the_connection(void **state)
{
    (void)state;
    grpc_server_opts_t o = {.keepalive_interval_ms = 50, .keepalive_timeout_ms = 100};
    server_start_opts(&o);
    h2_raw_connect(&raw, &loop, (const struct sockaddr *)&srv_addr, false);
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0";
    h2_raw_write(&raw, (const uint8_t *)preface, sizeof(preface) - 1);
    run_until(raw_eof_and_no_connection);
    raw_finish();
}

static void test_idle_connection_gets_goaway(void **state)
{
    (void)state;
    grpc_server_opts_t o = {.idle_timeout_ms = 50};
    server_start_opts(&o);
    h2_raw_connect(&raw, &loop, (const struct sockaddr *)&srv_addr, true);
    run_until(raw_goaway_and_eof);
    assert_int_equal(raw.goaway_error, NGHTTP2_NO_ERROR);
    raw_finish();
}

#define RAW_TEST(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
#define RAW_TESTS                                                                                  \
    RAW_TEST(test_wrong_content_type_is_http_415), RAW_TEST(test_missing_te_trailers_is_refused),  \
        RAW_TEST(test_unknown_encoding_is_unimplemented),                                          \
        RAW_TEST(test_grpc_timeout_ends_the_call_deadline_exceeded),                               \
        RAW_TEST(test_message_prefix_of_4_gib_is_resource_exhausted),                              \
        RAW_TEST(test_compressed_flag_without_encoding_is_internal),                               \
        RAW_TEST(test_request_ending_inside_a_message_is_internal),                                \
        RAW_TEST(test_garbage_instead_of_a_preface_closes_the_connection),                         \
        RAW_TEST(test_client_that_does_not_read_holds_pending_at_low_water),                       \
        RAW_TEST(test_ping_flood_ends_the_connection_enhance_your_calm),                           \
        RAW_TEST(test_unanswered_keepalive_closes_the_connection),                                 \
        RAW_TEST(test_idle_connection_gets_goaway)

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as the programs do: a peer that went away is an error value */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unary_call_echoes_and_ends_ok_on_both_sides, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bidi_stream_carries_many_messages_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_message_split_across_frames_arrives_whole, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_shared_message_is_sent_and_released, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_method_is_unimplemented, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_message_and_trailers_reach_the_client, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deadline_passes_and_the_method_hears_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_client_cancel_reaches_the_method, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_closed_from_on_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_loss_ends_the_call_unavailable, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_drain_finishes_running_calls_unavailable, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tls_client_certificate_gives_the_peer_identity, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tls_without_client_certificate_is_refused, setup,
                                        teardown),
        RAW_TESTS,
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
