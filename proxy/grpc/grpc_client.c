/* The gRPC client's connection: a TCP socket (optionally TLS over proxy/net/tls_io) carrying
 * nghttp2's client session. Reads go through the session straight from our buffer; its output
 * is gathered into one buffer and leaves with one write at a time (grpc_h2out.c). Work asked for
 * from within the caller's functions (sending, cancelling) waits for the next loop turn (an idle
 * handle), so no callback of ours runs inside a function of the caller's. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/core/log.h"
#include "proxy/grpc/grpc_client_int.h"

#define GRPC_RBUF_SIZE                 (64 * 1024)
#define GRPC_DEFAULT_CONNECT_TIMEOUT   5000
#define GRPC_DEFAULT_KEEPALIVE_TIMEOUT 20000
#define GRPC_DEFAULT_STREAM_WINDOW     (1u << 20)
#define GRPC_DEFAULT_CONN_WINDOW       (4u << 20)
#define GRPC_DEFAULT_USER_AGENT        "remora-grpc/1"
#define GRPC_HANDLES                   4   /* tcp, timer, deadline, kick */
#define GRPC_WHY_MAX                   512 /* a failure's explanation, in the calls' message */

static void conn_flush(grpc_conn_t *c);

const char *grpc_conn_state_name(grpc_conn_state_t st)
{
    switch (st) {
    case GRPC_CONN_CONNECTING:
        return "CONNECTING";
    case GRPC_CONN_READY:
        return "READY";
    case GRPC_CONN_DRAINING:
        return "DRAINING";
    case GRPC_CONN_CLOSED:
        return "CLOSED";
    }
    return "?";
}

grpc_conn_state_t grpc_conn_state(const grpc_conn_t *c)
{
    return c->state;
}

uint64_t grpc_conn_now(const grpc_conn_t *c)
{
    return uv_now(c->loop);
}

static void conn_report(grpc_conn_t *c, grpc_conn_state_t st, int error)
{
    log_debug("grpc %s: %s%s%s", c->authority, grpc_conn_state_name(st), error ? ": " : "",
              error ? uv_strerror(error) : "");
    if (c->on_state && !c->released)
        c->on_state(c, st, error, c->user);
}

/* ---- ending and freeing ------------------------------------------------------------------ */

static void conn_free(grpc_conn_t *c)
{
    grpc_calls_deliver_ending(c);
    grpc_calls_free_ended(c);
    nghttp2_session_del(c->h2);
    tls_io_free(c->tls);
    bufpool_destroy(&c->pool);
    grpc_h2out_free(&c->out);
    free(c->rbuf);
    free(c->authority);
    free(c->user_agent);
    free(c->peer);
    free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    grpc_conn_t *c = h->data;
    if (--c->handles_open == 0)
        conn_free(c);
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, on_handle_closed);
}

/* The connection is over: its socket closes, its calls end UNAVAILABLE, the caller hears
 * CLOSED with error (0: a GOAWAY ended it cleanly). c stays until grpc_conn_close. */
static void conn_fail(grpc_conn_t *c, int error, const char *why)
{
    if (c->state == GRPC_CONN_CLOSED)
        return;
    c->state = GRPC_CONN_CLOSED;
    uv_timer_stop(&c->timer);
    uv_timer_stop(&c->deadline);
    close_handle((uv_handle_t *)&c->tcp);
    char msg[GRPC_WHY_MAX + 64];
    snprintf(msg, sizeof(msg), "connection to %s: %s", c->authority, why);
    grpc_calls_end_all(c, GRPC_UNAVAILABLE, msg);
    conn_report(c, GRPC_CONN_CLOSED, error);
}

void grpc_conn_close(grpc_conn_t *c)
{
    if (c == NULL || c->released)
        return;
    if (c->state != GRPC_CONN_CLOSED) {
        c->state = GRPC_CONN_CLOSED; /* first: an on_close below cannot start another call */
        c->released = true;
        grpc_calls_end_all(c, GRPC_CANCELLED, "connection closed by the client");
    }
    c->released = true;
    grpc_calls_deliver_ending(c);
    close_handle((uv_handle_t *)&c->tcp);
    close_handle((uv_handle_t *)&c->timer);
    close_handle((uv_handle_t *)&c->deadline);
    close_handle((uv_handle_t *)&c->kick);
}

/* ---- timers and the loop turn ------------------------------------------------------------ */

static void keepalive_arm(grpc_conn_t *c);

/* One timer: the connect timeout while CONNECTING, keepalive after. */
static void on_timer(uv_timer_t *t)
{
    grpc_conn_t *c = t->data;
    if (c->state == GRPC_CONN_CONNECTING) {
        conn_fail(c, UV_ETIMEDOUT, "connect timeout");
    } else if (c->ping_out) {
        conn_fail(c, UV_ETIMEDOUT, "keepalive PING not answered in time");
    } else {
        nghttp2_submit_ping(c->h2, NGHTTP2_FLAG_NONE, NULL);
        c->ping_out = true;
        uv_timer_start(&c->timer, on_timer, c->keepalive_timeout_ms, 0);
        conn_flush(c);
    }
}

static void keepalive_arm(grpc_conn_t *c)
{
    c->ping_out = false;
    if (c->keepalive_interval_ms)
        uv_timer_start(&c->timer, on_timer, c->keepalive_interval_ms, 0);
    else
        uv_timer_stop(&c->timer);
}

static void on_deadline(uv_timer_t *t)
{
    grpc_conn_t *c = t->data;
    grpc_calls_expire(c);
    conn_flush(c);
}

void grpc_conn_arm_deadline(grpc_conn_t *c)
{
    if (c->released)
        return;
    uint64_t next = 0;
    for (grpc_call_t *call = c->calls; call; call = call->next)
        if (call->deadline && (next == 0 || call->deadline < next))
            next = call->deadline;
    if (next == 0) {
        uv_timer_stop(&c->deadline);
        return;
    }
    uint64_t now = uv_now(c->loop);
    uv_timer_start(&c->deadline, on_deadline, next > now ? next - now : 0, 0);
}

static void on_kick(uv_idle_t *h)
{
    grpc_conn_t *c = h->data;
    uv_idle_stop(h);
    grpc_calls_deliver_ending(c);
    conn_flush(c);
    grpc_calls_free_ended(c);
}

void grpc_conn_kick(grpc_conn_t *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->kick))
        uv_idle_start(&c->kick, on_kick);
}

/* ---- writing ----------------------------------------------------------------------------- */

static bool out_closed(void *owner)
{
    const grpc_conn_t *c = owner;
    return c->state == GRPC_CONN_CLOSED;
}

static void out_fail(void *owner, int error, const char *why)
{
    conn_fail(owner, error, why);
}

static void out_flush(void *owner)
{
    conn_flush(owner);
}

static const grpc_h2out_ops_t conn_out_ops = {out_closed, out_fail, out_flush};

/* Sends what the session has, as far as the socket takes it; ends the connection once the
 * session wants nothing more (a GOAWAY whose streams are all done). */
static void conn_flush(grpc_conn_t *c)
{
    if (c->state == GRPC_CONN_CLOSED || !c->connected || (c->tls && !c->tls_done))
        return;
    if (!grpc_h2out_flush(&c->out, c->h2))
        return; /* from a callback of the session's, inside the flush */
    if (c->state != GRPC_CONN_CLOSED && !grpc_h2out_busy(&c->out) &&
        !nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2))
        conn_fail(c, 0, "the HTTP/2 session ended (GOAWAY)");
}

/* ---- reading ----------------------------------------------------------------------------- */

static void conn_ready(grpc_conn_t *c)
{
    c->state = GRPC_CONN_READY;
    keepalive_arm(c);
    conn_report(c, GRPC_CONN_READY, 0);
}

static void conn_goaway(grpc_conn_t *c, const nghttp2_goaway *g)
{
    log_debug("grpc %s: GOAWAY %s, last stream %d", c->authority,
              nghttp2_http2_strerror(g->error_code), g->last_stream_id);
    if (c->state == GRPC_CONN_DRAINING)
        return;
    c->state = GRPC_CONN_DRAINING;
    conn_report(c, GRPC_CONN_DRAINING, 0);
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
    (void)s;
    grpc_conn_t *c = ud;
    if (c->state == GRPC_CONN_CLOSED)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK) && c->state == GRPC_CONN_CONNECTING)
            conn_ready(c);
        break;
    case NGHTTP2_PING:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) && c->ping_out)
            keepalive_arm(c);
        break;
    case NGHTTP2_GOAWAY:
        conn_goaway(c, &frame->goaway);
        break;
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA:
        grpc_call_frame_received(c, frame);
        break;
    default:
        break;
    }
    return c->state == GRPC_CONN_CLOSED ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

/* Plaintext bytes from the server into the session. */
static void conn_recv(grpc_conn_t *c, const uint8_t *data, size_t n)
{
    ssize_t rv = nghttp2_session_mem_recv(c->h2, data, n);
    if (c->state != GRPC_CONN_CLOSED && rv < 0)
        conn_fail(c, UV_EPROTO, nghttp2_strerror((int)rv));
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    grpc_conn_t *c = h->data;
    if (c->tls)
        tls_io_alloc(c->tls, buf);
    else
        *buf = uv_buf_init((char *)c->rbuf, GRPC_RBUF_SIZE);
}

/* Why the handshake failed, into why[0..cap): a server whose certificate matched none of the
 * expected identities is named with them, the rest as the TLS engine explains it. */
static void handshake_failure(const grpc_conn_t *c, char *why, size_t cap)
{
    const tls_session_t *s = tls_io_session(c->tls);
    if (tls_session_fail_reason(s) != TLS_FAIL_VERIFY_SAN) {
        char detail[256];
        snprintf(why, cap, "TLS handshake: %s", tls_session_error(s, detail, sizeof(detail)));
        return;
    }
    const char *id = tls_session_peer_spiffe_id(s);
    int n = snprintf(why, cap,
                     "TLS handshake: SAN mismatch: the server's certificate (%s) matches none of "
                     "the expected SANs:",
                     id ? id : "no single SPIFFE ID");
    for (size_t i = 0; i < c->n_peer && n > 0 && (size_t)n < cap; i++) {
        const identity_matcher_t *m = &c->peer[i];
        n += snprintf(why + n, cap - (size_t)n, "%s %s %s %s", i ? "," : "",
                      m->san_type == IDENTITY_SAN_URI   ? "URI"
                      : m->san_type == IDENTITY_SAN_DNS ? "DNS"
                                                        : "any",
                      m->kind == IDENTITY_MATCH_EXACT ? "exact" : "prefix", m->value);
    }
}

/* Ciphertext arrived: the handshake first (the server must choose h2), then records. */
static void conn_recv_tls(grpc_conn_t *c, size_t n)
{
    char why[GRPC_WHY_MAX];
    tls_io_received(c->tls, n);
    if (!c->tls_done) {
        int rc = tls_io_handshake(c->tls);
        if (rc == TLS_ERR_WANT_READ)
            return;
        if (rc < 0) {
            handshake_failure(c, why, sizeof(why));
            conn_fail(c, UV_EPROTO, why);
            return;
        }
        const char *alpn = tls_session_alpn(tls_io_session(c->tls));
        if (alpn == NULL || strcmp(alpn, "h2") != 0) {
            conn_fail(c, UV_EPROTO, "the server did not choose ALPN h2");
            return;
        }
        c->tls_done = true;
        conn_flush(c); /* the preface and what waited for the handshake */
    }
    ssize_t got;
    while (c->state != GRPC_CONN_CLOSED &&
           (got = tls_io_decrypt(c->tls, (char *)c->rbuf, GRPC_RBUF_SIZE)) != 0) {
        if (got == UV_EOF) {
            conn_fail(c, UV_EOF, "the server closed the TLS session");
            return;
        }
        if (got < 0) {
            conn_fail(c, UV_EPROTO, "TLS record error");
            return;
        }
        conn_recv(c, c->rbuf, (size_t)got);
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    grpc_conn_t *c = s->data;
    if (c->state == GRPC_CONN_CLOSED)
        return;
    if (nread < 0) {
        conn_fail(c, (int)nread,
                  nread == UV_EOF ? "the server closed the connection" : uv_strerror((int)nread));
        return;
    }
    if (nread == 0)
        return;
    if (c->tls)
        conn_recv_tls(c, (size_t)nread);
    else
        conn_recv(c, c->rbuf, (size_t)nread);
    conn_flush(c);
}

static void on_connect(uv_connect_t *req, int status)
{
    grpc_conn_t *c = req->data;
    if (c->state == GRPC_CONN_CLOSED)
        return;
    if (status < 0) {
        conn_fail(c, status, uv_strerror(status));
        return;
    }
    c->connected = true;
    uv_tcp_nodelay(&c->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0) {
        conn_fail(c, rc, uv_strerror(rc));
        return;
    }
    if (c->tls) {
        rc = tls_io_handshake(c->tls); /* sends the ClientHello */
        if (rc != TLS_ERR_WANT_READ && rc < 0)
            conn_fail(c, UV_EPROTO, "TLS handshake could not start");
        return;
    }
    conn_flush(c);
}

/* ---- making one -------------------------------------------------------------------------- */

static int conn_session_new(grpc_conn_t *c, const grpc_conn_opts_t *o)
{
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return -ENOMEM;
    if (nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cbs);
        return -ENOMEM;
    }
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    grpc_calls_install_callbacks(cbs);
    /* Windows open again only as the calls take their bytes (nghttp2_session_consume). */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    int rv = nghttp2_session_client_new2(&c->h2, cbs, c, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0)
        return -ENOMEM;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
         o->stream_window ? o->stream_window : GRPC_DEFAULT_STREAM_WINDOW},
    };
    rv = nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    if (rv == 0)
        rv = nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0,
                                                   o->conn_window ? o->conn_window
                                                                  : GRPC_DEFAULT_CONN_WINDOW);
    return rv == 0 ? 0 : (rv == NGHTTP2_ERR_NOMEM ? -ENOMEM : -EINVAL);
}

static char *addr_authority(const struct sockaddr *addr)
{
    char host[64], out[80];
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        uv_ip4_name(in, host, sizeof(host));
        snprintf(out, sizeof(out), "%s:%u", host, ntohs(in->sin_port));
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        uv_ip6_name(in6, host, sizeof(host));
        snprintf(out, sizeof(out), "[%s]:%u", host, ntohs(in6->sin6_port));
    }
    return strdup(out);
}

/* Copies the expected identities into c (one block with their values) for the log line of a
 * server that matches none. */
static int peers_copy(grpc_conn_t *c, const identity_matcher_t *m, size_t n)
{
    size_t size = n * sizeof(*m);
    for (size_t i = 0; i < n; i++) {
        if (m[i].value == NULL)
            return -EINVAL;
        size += strlen(m[i].value) + 1;
    }
    char *block = malloc(size);
    if (block == NULL)
        return -ENOMEM;
    identity_matcher_t *v = (identity_matcher_t *)(void *)block;
    char *p = block + n * sizeof(*m);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(m[i].value) + 1;
        memcpy(p, m[i].value, len);
        v[i] = m[i];
        v[i].value = p;
        p += len;
    }
    c->peer = v;
    c->n_peer = n;
    return 0;
}

/* Everything that can fail without a handle to close: the caller frees c on an error. */
static int conn_setup(grpc_conn_t *c, const struct sockaddr *addr, const grpc_conn_opts_t *o)
{
    c->authority = o->authority ? strdup(o->authority) : addr_authority(addr);
    c->user_agent = strdup(o->user_agent ? o->user_agent : GRPC_DEFAULT_USER_AGENT);
    c->rbuf = malloc(GRPC_RBUF_SIZE);
    if (c->authority == NULL || c->user_agent == NULL || c->rbuf == NULL)
        return -ENOMEM;
    c->https = o->tls != NULL;
    c->connect_timeout_ms =
        o->connect_timeout_ms ? o->connect_timeout_ms : GRPC_DEFAULT_CONNECT_TIMEOUT;
    c->keepalive_interval_ms = o->keepalive_interval_ms;
    c->keepalive_timeout_ms =
        o->keepalive_timeout_ms ? o->keepalive_timeout_ms : GRPC_DEFAULT_KEEPALIVE_TIMEOUT;
    c->max_recv_message = o->max_recv_message ? o->max_recv_message : GRPC_DEFAULT_MAX_RECV;
    c->on_state = o->on_state;
    c->user = o->user;
    bufpool_init(&c->pool, 2);
    int rc = conn_session_new(c, o);
    if (rc == 0 && o->tls && o->n_peer)
        rc = peers_copy(c, o->peer, o->n_peer);
    if (rc == 0 && o->tls) {
        rc = tls_io_new(o->tls, NULL, o->sni, c->peer, c->n_peer, (uv_stream_t *)&c->tcp, &c->pool,
                        &c->tls);
        if (rc == 0)
            grpc_h2out_use_tls(&c->out, c->tls);
    }
    return rc;
}

int grpc_conn_new(uv_loop_t *loop, const struct sockaddr *addr, const grpc_conn_opts_t *o,
                  grpc_conn_t **out)
{
    if (addr == NULL || o == NULL || (addr->sa_family != AF_INET && addr->sa_family != AF_INET6))
        return -EINVAL;
    if (o->tls && tls_config_role(o->tls) != TLS_ROLE_CLIENT)
        return -EINVAL;
    grpc_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->loop = loop;
    grpc_h2out_init(&c->out, (uv_stream_t *)&c->tcp, &conn_out_ops, c);
    int rc = conn_setup(c, addr, o);
    if (rc < 0) {
        c->handles_open = 0;
        conn_free(c);
        return rc;
    }
    uv_tcp_init(loop, &c->tcp);
    uv_timer_init(loop, &c->timer);
    uv_timer_init(loop, &c->deadline);
    uv_idle_init(loop, &c->kick);
    c->tcp.data = c->timer.data = c->deadline.data = c->kick.data = c;
    c->handles_open = GRPC_HANDLES;
    c->connect_req.data = c;
    rc = uv_tcp_connect(&c->connect_req, &c->tcp, addr, on_connect);
    if (rc < 0) {
        c->on_state = NULL;
        grpc_conn_close(c); /* freed once the loop has closed the handles */
        return rc;
    }
    uv_timer_start(&c->timer, on_timer, c->connect_timeout_ms, 0);
    *out = c;
    return 0;
}
