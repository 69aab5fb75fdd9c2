/* Drives proxy/grpc's client against real peers (test/e2e/grpc/server.js: @grpc/grpc-js and
 * node's own http2 and net servers) and prints one "PASS: what" or "FAIL: what: why" line per
 * check, for test/e2e/test_grpc_client.sh to count. Each scenario runs one connection on the
 * loop until every handle of it is closed; the last check is that the loop closes cleanly.
 *   grpc_driver grpc=PORT raw=PORT silent=PORT mute=PORT closed=PORT [tls=PORT certs=DIR] */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "certs/tls.h"
#include "proxy/grpc/grpc_client.h"

static uv_loop_t *loop;
static int port_grpc, port_raw, port_silent, port_mute, port_closed, port_tls;
static const char *certs_dir;

static void check(const char *name, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void check(const char *name, bool ok, const char *fmt, ...)
{
    if (ok) {
        printf("PASS: %s\n", name);
    } else {
        char why[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
        printf("FAIL: %s: %s\n", name, why);
    }
    fflush(stdout);
}

/* ---- one connection and what happened on it --------------------------------------------- */

#define MAX_STATES 8

typedef struct session {
    grpc_conn_t *conn;
    int open; /* calls started and not yet closed */
    bool close_when_done;
    grpc_conn_state_t states[MAX_STATES];
    int errors[MAX_STATES];
    int nstates;
    uv_timer_t guard; /* a stuck scenario ends after 20 s instead of hanging the story */
    bool guard_fired;
    bool close_on_ready;
} session_t;

typedef struct rec rec_t;
struct rec {
    session_t *s;
    grpc_call_t *call;
    int closed; /* on_close count: exactly 1 is right */
    int code;
    char msg[640];
    int nmsg;
    size_t bytes;
    uint64_t hash;
    char last[256];
    size_t queued_at_close;
    uint64_t started, ended;
    bool in_cancel;
    bool closed_inside_cancel;
    int rounds;                                         /* ping-pong rounds still to go */
    void (*hook)(rec_t *r, const uint8_t *m, size_t n); /* runs after each message */
};

static void session_close(session_t *s)
{
    if (s->conn) {
        grpc_conn_close(s->conn);
        s->conn = NULL;
        uv_close((uv_handle_t *)&s->guard, NULL);
    }
}

static void on_guard(uv_timer_t *t)
{
    session_t *s = t->data;
    s->guard_fired = true;
    session_close(s);
}

static void on_state(grpc_conn_t *c, grpc_conn_state_t st, int error, void *user)
{
    (void)c;
    session_t *s = user;
    if (s->nstates < MAX_STATES) {
        s->states[s->nstates] = st;
        s->errors[s->nstates++] = error;
    }
    if (st == GRPC_CONN_CLOSED || (st == GRPC_CONN_READY && s->close_on_ready))
        session_close(s);
}

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static void rec_on_message(grpc_call_t *call, const uint8_t *m, size_t n, void *user)
{
    (void)call;
    rec_t *r = user;
    r->nmsg++;
    r->bytes += n;
    r->hash = fnv(r->hash, m, n);
    size_t k = n < sizeof(r->last) - 1 ? n : sizeof(r->last) - 1;
    memcpy(r->last, m, k);
    r->last[k] = '\0';
    if (r->hook)
        r->hook(r, m, n);
}

static void rec_on_close(grpc_call_t *call, int code, const char *msg, void *user)
{
    rec_t *r = user;
    r->closed++;
    r->code = code;
    snprintf(r->msg, sizeof(r->msg), "%s", msg);
    r->queued_at_close = grpc_call_queued_bytes(call);
    r->ended = uv_now(loop);
    r->closed_inside_cancel |= r->in_cancel;
    r->call = NULL;
    session_t *s = r->s;
    if (--s->open == 0 && s->close_when_done)
        session_close(s);
}

static const grpc_call_ops_t rec_ops = {rec_on_message, rec_on_close};

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", port, &a);
    return a;
}

/* Opens s to port with o (NULL: defaults); false (and a reason printed) if it could not. */
static bool session_open(session_t *s, int port, grpc_conn_opts_t *o)
{
    grpc_conn_opts_t dflt = {0};
    if (o == NULL)
        o = &dflt;
    memset(s, 0, sizeof(*s));
    s->close_when_done = true;
    o->on_state = on_state;
    o->user = s;
    struct sockaddr_in a = loopback(port);
    int rc = grpc_conn_new(loop, (const struct sockaddr *)&a, o, &s->conn);
    if (rc < 0) {
        printf("# grpc_conn_new to port %d: %s\n", port, strerror(-rc));
        return false;
    }
    uv_timer_init(loop, &s->guard);
    s->guard.data = s;
    uv_timer_start(&s->guard, on_guard, 20000, 0);
    return true;
}

static void rec_start(session_t *s, rec_t *r, const char *path, uint64_t timeout_ms,
                      const grpc_metadata_t *md, size_t nmd)
{
    memset(r, 0, sizeof(*r));
    r->s = s;
    r->hash = 1469598103934665603ULL;
    r->code = -1;
    r->started = uv_now(loop);
    grpc_call_opts_t o = {
        .path = path, .metadata = md, .n_metadata = nmd, .timeout_ms = timeout_ms};
    int rc = grpc_call_start(s->conn, &o, &rec_ops, r, &r->call);
    if (rc < 0) {
        r->closed = -1;
        snprintf(r->msg, sizeof(r->msg), "grpc_call_start: %s", strerror(-rc));
        return;
    }
    s->open++;
}

static void send_str(rec_t *r, const char *s)
{
    if (r->call)
        grpc_call_send(r->call, s, strlen(s));
}

static void run(void)
{
    uv_update_time(loop);
    uv_run(loop, UV_RUN_DEFAULT);
}

/* "code N (NAME) 'message', K on_close" for a failed check. */
static const char *describe(const rec_t *r)
{
    static char out[400];
    snprintf(out, sizeof(out), "code %d (%s) '%s', %d messages, on_close ran %d times", r->code,
             grpc_code_name(r->code), r->msg, r->nmsg, r->closed);
    return out;
}

static bool ended_with(const rec_t *r, int code)
{
    return r->closed == 1 && r->code == code;
}

static bool saw_state(const session_t *s, grpc_conn_state_t st, int *error)
{
    for (int i = 0; i < s->nstates; i++)
        if (s->states[i] == st) {
            if (error)
                *error = s->errors[i];
            return true;
        }
    return false;
}

/* ---- scenarios against grpc-js ---------------------------------------------------------- */

static void case_unary_and_metadata(void)
{
    session_t s;
    rec_t echo, meta;
    if (!session_open(&s, port_grpc, NULL))
        return;
    /* Started before the connection is up: sent once it is. */
    rec_start(&s, &echo, "/test.Echo/Unary", 5000, NULL, 0);
    send_str(&echo, "hello world");
    grpc_call_close_send(echo.call);
    grpc_metadata_t md[] = {{"x-echo", "abc"}};
    rec_start(&s, &meta, "/test.Echo/Metadata", 5000, md, 1);
    send_str(&meta, "");
    grpc_call_close_send(meta.call);
    run();
    check("unary call echoes its message with OK",
          ended_with(&echo, GRPC_OK) && echo.nmsg == 1 && strcmp(echo.last, "hello world") == 0,
          "%s, got '%s'", describe(&echo), echo.last);
    check("metadata, grpc-timeout and user-agent reach the server",
          ended_with(&meta, GRPC_OK) && strcmp(meta.last, "x-echo=abc deadline=yes ua=true") == 0,
          "%s, got '%s'", describe(&meta), meta.last);
}

static void case_bidi_echo(void)
{
    session_t s;
    rec_t r;
    if (!session_open(&s, port_grpc, NULL))
        return;
    rec_start(&s, &r, "/test.Echo/Bidi", 10000, NULL, 0);
    static uint8_t big[100000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7);
    grpc_call_send(r.call, "", 0);
    grpc_call_send(r.call, "x", 1);
    grpc_call_send(r.call, big, sizeof(big));
    size_t queued = grpc_call_queued_bytes(r.call);
    grpc_call_close_send(r.call);
    uint64_t want = 1469598103934665603ULL;
    want = fnv(fnv(want, (const uint8_t *)"x", 1), big, sizeof(big));
    run();
    check("bidi stream echoes messages of 0, 1 and 100000 bytes in order",
          ended_with(&r, GRPC_OK) && r.nmsg == 3 && r.bytes == 100001 && r.hash == want, "%s",
          describe(&r));
    check("queued bytes count the messages and prefixes at once and drain to zero",
          queued == 3 * 5 + 100001 && r.queued_at_close == 0, "queued %zu then %zu", queued,
          r.queued_at_close);
}

static void pingpong(rec_t *r, const uint8_t *m, size_t n)
{
    (void)m;
    (void)n;
    if (r->rounds-- > 0) {
        char next[32];
        snprintf(next, sizeof(next), "round %d", r->rounds);
        send_str(r, next);
    } else if (r->call) {
        grpc_call_close_send(r->call);
    }
}

static void case_pingpong(void)
{
    session_t s;
    rec_t r;
    if (!session_open(&s, port_grpc, NULL))
        return;
    rec_start(&s, &r, "/test.Echo/Bidi", 10000, NULL, 0);
    r.rounds = 19;
    r.hook = pingpong;
    send_str(&r, "round 20");
    run();
    check("bidi ping-pong: 20 rounds, each sent after the echo before it",
          ended_with(&r, GRPC_OK) && r.nmsg == 20 && strcmp(r.last, "round 0") == 0,
          "%s, last '%s'", describe(&r), r.last);
}

/* What the Many method sends for "count,max": message i is (i*37)%max bytes of (i+k)&0xff. */
static void many_expect(int count, int max, size_t *bytes, uint64_t *hash)
{
    *bytes = 0;
    *hash = 1469598103934665603ULL;
    for (int i = 0; i < count; i++) {
        size_t n = (size_t)((i * 37) % max);
        for (size_t k = 0; k < n; k++) {
            uint8_t b = (uint8_t)((i + (int)k) & 0xff);
            *hash = fnv(*hash, &b, 1);
        }
        *bytes += n;
    }
}

static void many_case(const char *name, uint32_t stream_window, int count, int max)
{
    session_t s;
    rec_t r;
    grpc_conn_opts_t o = {.stream_window = stream_window};
    if (!session_open(&s, port_grpc, &o))
        return;
    rec_start(&s, &r, "/test.Echo/Many", 15000, NULL, 0);
    char req[32];
    snprintf(req, sizeof(req), "%d,%d", count, max);
    send_str(&r, req);
    grpc_call_close_send(r.call);
    run();
    size_t bytes;
    uint64_t hash;
    many_expect(count, max, &bytes, &hash);
    check(name, ended_with(&r, GRPC_OK) && r.nmsg == count && r.bytes == bytes && r.hash == hash,
          "%s, %zu bytes (want %d messages, %zu bytes)", describe(&r), r.bytes, count, bytes);
}

static void case_error_statuses(void)
{
    session_t s;
    rec_t fail, nope, big;
    grpc_conn_opts_t o = {.max_recv_message = 1024};
    if (!session_open(&s, port_grpc, &o))
        return;
    rec_start(&s, &fail, "/test.Echo/Fail", 5000, NULL, 0);
    rec_start(&s, &nope, "/test.Echo/Nope", 5000, NULL, 0);
    rec_start(&s, &big, "/test.Echo/Big", 5000, NULL, 0);
    rec_t *all[] = {&fail, &nope, &big};
    for (int i = 0; i < 3; i++) {
        send_str(all[i], "?");
        grpc_call_close_send(all[i]->call);
    }
    run();
    check("trailers-only error gives the server's code (FAILED_PRECONDITION)",
          ended_with(&fail, GRPC_FAILED_PRECONDITION) && fail.nmsg == 0, "%s", describe(&fail));
    check("grpc-message is percent-decoded",
          strcmp(fail.msg, "no way: 100% wrong \xc3\xbc"
                           "n\xc3\xaf"
                           "code") == 0,
          "got '%s'", fail.msg);
    check("an unknown method is UNIMPLEMENTED (grpc-js)", ended_with(&nope, GRPC_UNIMPLEMENTED),
          "%s", describe(&nope));
    check("a message over max_recv_message is RESOURCE_EXHAUSTED",
          ended_with(&big, GRPC_RESOURCE_EXHAUSTED) && big.nmsg == 0, "%s", describe(&big));
}

static void on_cancel_timer(uv_timer_t *t)
{
    rec_t *r = t->data;
    if (r->call) {
        r->in_cancel = true;
        grpc_call_cancel(r->call);
        r->in_cancel = false;
    }
    uv_close((uv_handle_t *)t, NULL);
}

static void case_deadline_and_cancel(void)
{
    session_t s;
    rec_t hang, cancel;
    if (!session_open(&s, port_grpc, NULL))
        return;
    rec_start(&s, &hang, "/test.Echo/Hang", 300, NULL, 0);
    rec_start(&s, &cancel, "/test.Echo/Hang", 0, NULL, 0);
    send_str(&hang, "?");
    send_str(&cancel, "?");
    uv_timer_t t;
    uv_timer_init(loop, &t);
    t.data = &cancel;
    uv_timer_start(&t, on_cancel_timer, 100, 0);
    run();
    uint64_t took = hang.ended - hang.started;
    check("a deadline ends a call that is never answered with DEADLINE_EXCEEDED, on time",
          ended_with(&hang, GRPC_DEADLINE_EXCEEDED) && took >= 290 && took < 3000,
          "%s after %llu ms", describe(&hang), (unsigned long long)took);
    check("cancel gives CANCELLED once, from the loop, not from within grpc_call_cancel",
          ended_with(&cancel, GRPC_CANCELLED) && !cancel.closed_inside_cancel, "%s%s",
          describe(&cancel), cancel.closed_inside_cancel ? ", inside cancel" : "");
}

static void case_keepalive_answered(void)
{
    session_t s;
    rec_t r;
    grpc_conn_opts_t o = {.keepalive_interval_ms = 100, .keepalive_timeout_ms = 200};
    if (!session_open(&s, port_grpc, &o))
        return;
    rec_start(&s, &r, "/test.Echo/Hang", 900, NULL, 0);
    send_str(&r, "?");
    run();
    check("keepalive PINGs every 100 ms are answered: a call held 900 ms ends by its deadline",
          ended_with(&r, GRPC_DEADLINE_EXCEEDED) && !saw_state(&s, GRPC_CONN_CLOSED, NULL) &&
              !saw_state(&s, GRPC_CONN_DRAINING, NULL),
          "%s, %d state changes", describe(&r), s.nstates);
}

static void case_close_cancels(void)
{
    session_t s;
    rec_t r;
    if (!session_open(&s, port_grpc, NULL))
        return;
    s.close_on_ready = true;
    s.close_when_done = false;
    rec_start(&s, &r, "/test.Echo/Hang", 0, NULL, 0);
    send_str(&r, "?");
    run();
    check("closing the connection ends its open calls with CANCELLED",
          ended_with(&r, GRPC_CANCELLED), "%s", describe(&r));
}

static void case_client_stream_bulk(void)
{
    session_t s;
    rec_t r;
    if (!session_open(&s, port_grpc, NULL))
        return;
    rec_start(&s, &r, "/test.Echo/Sink", 20000, NULL, 0);
    static uint8_t chunk[65536];
    memset(chunk, 'q', sizeof(chunk));
    for (int i = 0; i < 64; i++)
        grpc_call_send(r.call, chunk, sizeof(chunk));
    size_t queued = grpc_call_queued_bytes(r.call);
    grpc_call_close_send(r.call);
    run();
    check("4 MiB in 64 client-stream messages arrive whole, queued bytes showing them at first",
          ended_with(&r, GRPC_OK) && strcmp(r.last, "64 4194304") == 0 &&
              queued == 64 * (65536 + 5),
          "%s, server counted '%s', queued %zu", describe(&r), r.last, queued);
}

static void case_concurrent(void)
{
    enum { N = 50 };
    session_t s;
    static rec_t r[N];
    if (!session_open(&s, port_grpc, NULL))
        return;
    for (int i = 0; i < N; i++) {
        char m[32];
        rec_start(&s, &r[i], "/test.Echo/Unary", 10000, NULL, 0);
        snprintf(m, sizeof(m), "call-%d", i);
        send_str(&r[i], m);
        grpc_call_close_send(r[i].call);
    }
    run();
    int good = 0;
    for (int i = 0; i < N; i++) {
        char m[32];
        snprintf(m, sizeof(m), "call-%d", i);
        good += ended_with(&r[i], GRPC_OK) && strcmp(r[i].last, m) == 0;
    }
    check("fifty concurrent unary calls on one connection each get their own echo", good == N,
          "%d of %d", good, N);
}

/* ---- scenarios against node's http2 server ------------------------------------------------ */

static void raw_call(const char *name, const char *path, int want_code, int want_msgs,
                     const char *want_last)
{
    session_t s;
    rec_t r;
    if (!session_open(&s, port_raw, NULL))
        return;
    rec_start(&s, &r, path, 5000, NULL, 0);
    send_str(&r, "?");
    grpc_call_close_send(r.call);
    run();
    check(name,
          ended_with(&r, want_code) && r.nmsg == want_msgs &&
              (want_last == NULL || strcmp(r.last, want_last) == 0),
          "%s, last '%s'", describe(&r), r.last);
}

static void case_raw_die(void)
{
    session_t s;
    rec_t r;
    if (!session_open(&s, port_raw, NULL))
        return;
    s.close_when_done = false;
    rec_start(&s, &r, "/raw.Die/MidStream", 5000, NULL, 0);
    send_str(&r, "?");
    run();
    int err = 0;
    bool closed = saw_state(&s, GRPC_CONN_CLOSED, &err);
    check("a server dying mid-stream: the message before arrives, then UNAVAILABLE",
          ended_with(&r, GRPC_UNAVAILABLE) && r.nmsg == 1 && strcmp(r.last, "last words") == 0,
          "%s", describe(&r));
    check("a server dying mid-stream: the connection reports CLOSED with an error",
          closed && err < 0, "closed %d, error %d", closed, err);
}

static void case_raw_goaway(void)
{
    session_t s;
    rec_t held, refused, ran;
    if (!session_open(&s, port_raw, NULL))
        return;
    s.close_when_done = false;
    rec_start(&s, &held, "/raw.Goaway/Hold", 5000, NULL, 0);
    send_str(&held, "?");
    rec_start(&s, &refused, "/raw.Goaway/Refuse", 5000, NULL, 0);
    send_str(&refused, "?");
    run();
    int err = 1;
    bool drained = saw_state(&s, GRPC_CONN_DRAINING, NULL);
    bool closed = saw_state(&s, GRPC_CONN_CLOSED, &err);
    check("a stream after GOAWAY's last stream id never ran: UNAVAILABLE",
          ended_with(&refused, GRPC_UNAVAILABLE), "%s", describe(&refused));
    check("GOAWAY: the call it took ends OK, the connection goes DRAINING, then CLOSED cleanly",
          ended_with(&held, GRPC_OK) && strcmp(held.last, "held") == 0 && drained && closed &&
              err == 0,
          "held: %s; draining %d closed %d error %d", describe(&held), drained, closed, err);

    if (!session_open(&s, port_raw, NULL))
        return;
    s.close_when_done = false;
    rec_start(&s, &ran, "/raw.Goaway/AfterRunning", 5000, NULL, 0);
    send_str(&ran, "?");
    run();
    err = 1;
    closed = saw_state(&s, GRPC_CONN_CLOSED, &err);
    check("GOAWAY that includes a running call lets it finish OK, then the connection closes",
          ended_with(&ran, GRPC_OK) && strcmp(ran.last, "finished anyway") == 0 && closed &&
              err == 0,
          "%s, closed %d error %d", describe(&ran), closed, err);
}

/* ---- connections that never work ---------------------------------------------------------- */

/* A connection to port with o that must close with want_err (having been READY or not), its
 * call UNAVAILABLE with a message holding each of the NULL-terminated want_msg (may be NULL). */
static void dead_conn_says(const char *name, int port, grpc_conn_opts_t *o, int want_err,
                           bool ready, const char *const *want_msg)
{
    session_t s;
    rec_t r;
    if (!session_open(&s, port, o))
        return;
    s.close_when_done = false;
    rec_start(&s, &r, "/test.Echo/Hang", 0, NULL, 0);
    send_str(&r, "?");
    run();
    int err = 0;
    bool closed = saw_state(&s, GRPC_CONN_CLOSED, &err);
    uint64_t took = r.ended - r.started;
    bool says = true;
    for (size_t i = 0; want_msg && want_msg[i]; i++)
        says = says && strstr(r.msg, want_msg[i]) != NULL;
    check(name,
          closed && err == want_err && ended_with(&r, GRPC_UNAVAILABLE) && says &&
              saw_state(&s, GRPC_CONN_READY, NULL) == ready && took < 5000 && !s.guard_fired,
          "closed %d error %d (%s), %s, after %llu ms", closed, err, err ? uv_err_name(err) : "",
          describe(&r), (unsigned long long)took);
}

static void dead_conn(const char *name, int port, grpc_conn_opts_t *o, int want_err, bool ready)
{
    dead_conn_says(name, port, o, want_err, ready, NULL);
}

/* ---- TLS ----------------------------------------------------------------------------------- */

/* A client config trusting root (a file of certs_dir) and offering ALPN h2; NULL on error. */
static tls_config_t *tls_client(const char *root)
{
    char trust[512], err[256];
    snprintf(trust, sizeof(trust), "%s/%s", certs_dir, root);
    const char *alpn[] = {"h2"};
    tls_config_opts_t to = {
        .role = TLS_ROLE_CLIENT, .trust_bundle = {.path = trust}, .alpn = alpn, .alpn_count = 1};
    tls_config_t *cfg = NULL;
    if (tls_config_new(&to, &cfg, err, sizeof(err)) < 0)
        printf("# TLS config with %s: %s\n", root, err);
    return cfg;
}

static void case_tls_untrusted(void)
{
    const char *name = "TLS to a server our roots do not vouch for: CLOSED with EPROTO, call "
                       "UNAVAILABLE";
    tls_config_t *cfg = tls_client("root-b.pem"); /* another trust domain than the server's */
    grpc_conn_opts_t o = {.tls = cfg};
    if (cfg)
        dead_conn(name, port_tls, &o, UV_EPROTO, false);
    else
        check(name, false, "no config");
    tls_config_unref(cfg);
}

static void case_tls(void)
{
    tls_config_t *cfg = tls_client("root-a.pem");
    if (cfg == NULL) {
        check("TLS with ALPN h2: a unary call over TLS echoes with OK", false, "no config");
        return;
    }
    session_t s;
    rec_t r;
    grpc_conn_opts_t o = {.tls = cfg, .sni = "server.default.svc.cluster.local"};
    if (session_open(&s, port_tls, &o)) {
        rec_start(&s, &r, "/test.Echo/Unary", 5000, NULL, 0);
        send_str(&r, "over tls");
        grpc_call_close_send(r.call);
        run();
        check("TLS with ALPN h2: a unary call over TLS echoes with OK",
              ended_with(&r, GRPC_OK) && strcmp(r.last, "over tls") == 0, "%s", describe(&r));
    }
    tls_config_unref(cfg);
}

/* The server's identity checked as the xDS client checks its control plane's: a URI SAN
 * matcher that the server's certificate meets, then one that it does not. */
static void case_tls_identity(void)
{
    const char *ok_name = "TLS with the server's SPIFFE ID expected: a unary call echoes with OK";
    const char *bad_name = "TLS to a server of another SPIFFE ID than expected: CLOSED with "
                           "EPROTO, call UNAVAILABLE naming the SAN mismatch, both IDs";
    tls_config_t *cfg = tls_client("root-a.pem");
    if (cfg == NULL) {
        check(ok_name, false, "no config");
        check(bad_name, false, "no config");
        return;
    }
    identity_matcher_t good = {IDENTITY_SAN_URI, IDENTITY_MATCH_EXACT,
                               "spiffe://cluster.local/ns/default/sa/server"};
    identity_matcher_t bad[] = {
        {IDENTITY_SAN_URI, IDENTITY_MATCH_EXACT, "spiffe://cluster.local/ns/remora-system/sa/cp"},
        {IDENTITY_SAN_DNS, IDENTITY_MATCH_PREFIX, "cp."},
    };
    session_t s;
    rec_t r;
    grpc_conn_opts_t o = {.tls = cfg, .peer = &good, .n_peer = 1};
    if (session_open(&s, port_tls, &o)) {
        rec_start(&s, &r, "/test.Echo/Unary", 5000, NULL, 0);
        send_str(&r, "who");
        grpc_call_close_send(r.call);
        run();
        check(ok_name, ended_with(&r, GRPC_OK) && strcmp(r.last, "who") == 0, "%s", describe(&r));
    }
    const char *want[] = {"SAN mismatch", "spiffe://cluster.local/ns/default/sa/server",
                          "URI exact spiffe://cluster.local/ns/remora-system/sa/cp",
                          "DNS prefix cp.", NULL};
    grpc_conn_opts_t ob = {.tls = cfg, .peer = bad, .n_peer = 2};
    dead_conn_says(bad_name, port_tls, &ob, UV_EPROTO, false, want);
    tls_config_unref(cfg);
}

static void run_cases(void)
{
    case_unary_and_metadata();
    case_bidi_echo();
    case_pingpong();
    many_case("a server stream of 300 messages (0..4999 bytes) arrives whole", 0, 300, 5000);
    many_case("a 1-byte stream window: every message split over 1-byte DATA frames arrives whole",
              1, 12, 200);
    case_error_statuses();
    case_deadline_and_cancel();
    case_keepalive_answered();
    case_close_cancels();
    case_client_stream_bulk();
    case_concurrent();
    raw_call("messages written one byte per DATA frame are reassembled",
             "/raw.Split/OneBytePerFrame", GRPC_OK, 3, "across frames");
    raw_call("fifty messages in one DATA frame all arrive", "/raw.Split/ManyPerFrame", GRPC_OK, 50,
             "m49");
    raw_call("HTTP 404 maps to UNIMPLEMENTED", "/raw.Nothing/Here", GRPC_UNIMPLEMENTED, 0, NULL);
    raw_call("HTTP 503 maps to UNAVAILABLE", "/raw.Bad/Status503", GRPC_UNAVAILABLE, 0, NULL);
    raw_call("a 200 that is not application/grpc is INTERNAL", "/raw.Bad/ContentType",
             GRPC_INTERNAL, 0, NULL);
    raw_call("a stream that ends without grpc-status is INTERNAL", "/raw.Bad/NoStatus",
             GRPC_INTERNAL, 1, "orphan");
    raw_call("a compressed message is INTERNAL (no compression negotiated)", "/raw.Bad/Compressed",
             GRPC_INTERNAL, 0, NULL);
    raw_call("a stream that ends inside a message is INTERNAL", "/raw.Bad/PartialMessage",
             GRPC_INTERNAL, 0, NULL);
    raw_call("RST_STREAM REFUSED_STREAM is UNAVAILABLE", "/raw.Reset/Refused", GRPC_UNAVAILABLE, 0,
             NULL);
    case_raw_die();
    case_raw_goaway();
    dead_conn("a refused connection reports CLOSED with ECONNREFUSED; its call is UNAVAILABLE",
              port_closed, NULL, UV_ECONNREFUSED, false);
    grpc_conn_opts_t slow = {.connect_timeout_ms = 300};
    dead_conn("no SETTINGS within the connect timeout: CLOSED with ETIMEDOUT, call UNAVAILABLE",
              port_silent, &slow, UV_ETIMEDOUT, false);
    grpc_conn_opts_t ka = {.keepalive_interval_ms = 200, .keepalive_timeout_ms = 300};
    dead_conn("an unanswered keepalive PING closes a READY connection (ETIMEDOUT), call "
              "UNAVAILABLE",
              port_mute, &ka, UV_ETIMEDOUT, true);
    if (port_tls) {
        case_tls();
        case_tls_untrusted();
        case_tls_identity();
    }
}

static int parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (eq == NULL)
            return -1;
        *eq = '\0';
        const char *v = eq + 1;
        if (strcmp(argv[i], "grpc") == 0)
            port_grpc = atoi(v);
        else if (strcmp(argv[i], "raw") == 0)
            port_raw = atoi(v);
        else if (strcmp(argv[i], "silent") == 0)
            port_silent = atoi(v);
        else if (strcmp(argv[i], "mute") == 0)
            port_mute = atoi(v);
        else if (strcmp(argv[i], "closed") == 0)
            port_closed = atoi(v);
        else if (strcmp(argv[i], "tls") == 0)
            port_tls = atoi(v);
        else if (strcmp(argv[i], "certs") == 0)
            certs_dir = v;
        else
            return -1;
    }
    return port_grpc && port_raw && port_silent && port_mute && port_closed ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) < 0) {
        fprintf(stderr,
                "usage: %s grpc=PORT raw=PORT silent=PORT mute=PORT closed=PORT "
                "[tls=PORT certs=DIR]\n",
                argv[0]);
        return 2;
    }
    uv_loop_t l;
    uv_loop_init(&l);
    loop = &l;
    run_cases();
    int rc = uv_loop_close(loop);
    check("every handle of every connection is closed: the loop closes cleanly", rc == 0,
          "uv_loop_close: %s", rc ? uv_strerror(rc) : "");
    tls_thread_cleanup();
    return 0;
}
