/* The gRPC server and its connections: a listening socket, and per accepted socket (optionally
 * TLS over proxy/net/tls_io) nghttp2's server session. Reads go through the session straight
 * from our buffer; its output is gathered into one buffer and leaves with one write at a time
 * (grpc_h2out.c), so a client that does not read holds at most that buffer and the calls' own
 * queues. Work asked for from within the caller's functions waits for the next loop turn (an
 * idle handle), so no callback of ours runs inside a function of the caller's. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/core/log.h"
#include "proxy/grpc/grpc_server_int.h"

#define GRPC_SRV_RBUF_SIZE         (64 * 1024)
#define GRPC_SRV_BACKLOG           511
#define GRPC_SRV_CONN_HANDLES      4    /* tcp, timer, deadline, kick */
#define GRPC_SRV_MAX_PING_STRIKES  2    /* strikes allowed; the next ends the connection */
#define GRPC_SRV_MAX_OUTBOUND_ACK  100  /* PING and SETTINGS acks queued: more is a flood */
#define GRPC_SRV_FORCE_CLOSE_MS    1000 /* after the grace: time for the last trailers */
#define GRPC_SRV_DEFAULT_STREAMS   100
#define GRPC_SRV_DEFAULT_SWINDOW   (1u << 20)
#define GRPC_SRV_DEFAULT_CWINDOW   (4u << 20)
#define GRPC_SRV_DEFAULT_LOW_WATER (64 * 1024)
#define GRPC_SRV_DEFAULT_KA_TO     20000
#define GRPC_SRV_DEFAULT_HS_TO     10000
#define GRPC_SRV_DEFAULT_PING_MIN  1000

static void conn_flush(grpc_sconn_t *c);
static void conn_arm_timer(grpc_sconn_t *c);
static void server_maybe_done(grpc_server_t *s);

uint64_t grpc_sconn_now(const grpc_sconn_t *c)
{
    return uv_now(c->srv->loop);
}

static void on_kick(uv_idle_t *h);

void grpc_sconn_kick(grpc_sconn_t *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->kick))
        uv_idle_start(&c->kick, on_kick);
}

/* ---- ending and freeing a connection ------------------------------------------------------ */

static void conn_free(grpc_sconn_t *c)
{
    grpc_server_t *s = c->srv;
    grpc_scalls_deliver(c);
    grpc_scalls_free_done(c);
    nghttp2_session_del(c->h2);
    tls_io_free(c->tls);
    bufpool_destroy(&c->pool);
    grpc_h2out_free(&c->out);
    free(c->peer_id);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    free(c);
    server_maybe_done(s);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    grpc_sconn_t *c = h->data;
    if (--c->handles_open == 0)
        conn_free(c);
}

/* The connection is over: its calls end (on_close with UNAVAILABLE now), every handle closes,
 * and it is freed in the last close callback. */
static void conn_close(grpc_sconn_t *c, const char *why)
{
    if (c->state == GRPC_SCONN_CLOSED)
        return;
    log_debug("grpc server: connection from %s closed: %s", c->name, why);
    c->state = GRPC_SCONN_CLOSED;
    char msg[256];
    snprintf(msg, sizeof(msg), "connection from %s: %s", c->name, why);
    grpc_scalls_end_all(c, GRPC_UNAVAILABLE, msg);
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->deadline, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->kick, on_conn_handle_closed);
}

/* Sends GOAWAY (no new calls) with error (an HTTP/2 error code) and lets the taken calls run on;
 * the connection closes once they have ended. */
static void conn_goaway(grpc_sconn_t *c, uint32_t error, const char *why)
{
    if (c->state == GRPC_SCONN_CLOSED || c->state == GRPC_SCONN_DRAINING)
        return;
    log_debug("grpc server: GOAWAY to %s: %s", c->name, why);
    c->state = GRPC_SCONN_DRAINING;
    nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->h2),
                          error, (const uint8_t *)why, strlen(why));
    if (error != NGHTTP2_NO_ERROR) {
        grpc_scalls_end_all(c, GRPC_UNAVAILABLE, why);
        c->close_when_flushed = true;
        c->close_by = grpc_sconn_now(c) + GRPC_SRV_FORCE_CLOSE_MS;
    }
    conn_flush(c);
    conn_arm_timer(c);
}

/* ---- timers and the loop turn ------------------------------------------------------------- */

static uint64_t min_due(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* One timer for what is due next: the handshake timeout, a keepalive PING or its timeout, the
 * idle timeout, the forced close after a drain's grace. */
static void on_timer(uv_timer_t *t)
{
    grpc_sconn_t *c = t->data;
    const grpc_server_opts_t *o = &c->srv->o;
    uint64_t now = grpc_sconn_now(c);
    if (c->close_by && now >= c->close_by) {
        conn_close(c, "closed at the end of the server's grace period");
        return;
    }
    if (c->state == GRPC_SCONN_HANDSHAKE) {
        if (now >= c->started + o->handshake_timeout_ms) {
            conn_close(c, "handshake timeout");
            return;
        }
    } else if (c->ping_out) {
        if (now >= c->ping_sent + o->keepalive_timeout_ms) {
            conn_close(c, "keepalive PING not answered in time");
            return;
        }
    } else if (o->keepalive_interval_ms && now >= c->last_read + o->keepalive_interval_ms) {
        nghttp2_submit_ping(c->h2, NGHTTP2_FLAG_NONE, NULL);
        c->ping_out = true;
        c->ping_sent = now;
    }
    if (c->state == GRPC_SCONN_OPEN && o->idle_timeout_ms && c->ncalls == 0 &&
        now >= c->idle_since + o->idle_timeout_ms)
        conn_goaway(c, NGHTTP2_NO_ERROR, "idle timeout");
    conn_flush(c);
    conn_arm_timer(c);
}

static void conn_arm_timer(grpc_sconn_t *c)
{
    if (c->state == GRPC_SCONN_CLOSED)
        return;
    const grpc_server_opts_t *o = &c->srv->o;
    uint64_t due = UINT64_MAX;
    if (c->state == GRPC_SCONN_HANDSHAKE) {
        due = c->started + o->handshake_timeout_ms;
    } else {
        if (c->ping_out)
            due = c->ping_sent + o->keepalive_timeout_ms;
        else if (o->keepalive_interval_ms)
            due = c->last_read + o->keepalive_interval_ms;
        if (c->state == GRPC_SCONN_OPEN && o->idle_timeout_ms && c->ncalls == 0)
            due = min_due(due, c->idle_since + o->idle_timeout_ms);
    }
    if (c->close_by)
        due = min_due(due, c->close_by);
    if (due == UINT64_MAX) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t now = grpc_sconn_now(c);
    uv_timer_start(&c->timer, on_timer, due > now ? due - now : 0, 0);
}

static void on_deadline(uv_timer_t *t)
{
    grpc_sconn_t *c = t->data;
    grpc_scalls_expire(c);
    conn_flush(c);
}

void grpc_sconn_arm_deadline(grpc_sconn_t *c)
{
    if (c->state == GRPC_SCONN_CLOSED)
        return;
    uint64_t next = 0;
    for (grpc_scall_t *call = c->calls; call; call = call->next)
        if (call->deadline && call->state == GRPC_SCALL_OPEN &&
            (next == 0 || call->deadline < next))
            next = call->deadline;
    if (next == 0) {
        uv_timer_stop(&c->deadline);
        return;
    }
    uint64_t now = grpc_sconn_now(c);
    uv_timer_start(&c->deadline, on_deadline, next > now ? next - now : 0, 0);
}

static void on_kick(uv_idle_t *h)
{
    grpc_sconn_t *c = h->data;
    uv_idle_stop(h);
    grpc_scalls_deliver(c);
    conn_flush(c);
    grpc_scalls_free_done(c);
    conn_arm_timer(c);
}

/* ---- writing ------------------------------------------------------------------------------ */

static bool out_closed(void *owner)
{
    const grpc_sconn_t *c = owner;
    return c->state == GRPC_SCONN_CLOSED;
}

static void out_fail(void *owner, int error, const char *why)
{
    (void)error;
    conn_close(owner, why);
}

static void out_flush(void *owner)
{
    conn_flush(owner);
}

static const grpc_h2out_ops_t conn_out_ops = {out_closed, out_fail, out_flush};

/* Sends what the session has, as far as the socket takes it; closes the connection once the
 * session wants nothing more (a GOAWAY whose streams are all done) and every byte is out. */
static void conn_flush(grpc_sconn_t *c)
{
    if (c->state == GRPC_SCONN_CLOSED || (c->tls && !c->tls_done))
        return;
    if (!grpc_h2out_flush(&c->out, c->h2))
        return; /* from a callback of the session's, inside the flush */
    if (c->state == GRPC_SCONN_CLOSED || grpc_h2out_busy(&c->out) ||
        (c->tls && tls_io_queue_size(c->tls)))
        return;
    if (c->close_when_flushed)
        conn_close(c, "closed after its GOAWAY");
    else if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2))
        conn_close(c, "the HTTP/2 session ended");
}

/* ---- reading ------------------------------------------------------------------------------ */

/* Counts a client PING: too many too close together, while we send nothing, is a flood. */
static void conn_ping_received(grpc_sconn_t *c)
{
    uint64_t now = grpc_sconn_now(c);
    if (c->last_ping_recv && now - c->last_ping_recv < c->srv->o.ping_min_interval_ms &&
        ++c->ping_strikes > GRPC_SRV_MAX_PING_STRIKES)
        conn_goaway(c, NGHTTP2_ENHANCE_YOUR_CALM, "too_many_pings");
    c->last_ping_recv = now;
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame, void *ud)
{
    (void)h2;
    grpc_sconn_t *c = ud;
    if (c->state == GRPC_SCONN_CLOSED)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK) && c->state == GRPC_SCONN_HANDSHAKE) {
            c->state = GRPC_SCONN_OPEN;
            c->idle_since = grpc_sconn_now(c);
            conn_arm_timer(c);
        }
        break;
    case NGHTTP2_PING:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK) {
            c->ping_out = false;
            conn_arm_timer(c);
        } else {
            conn_ping_received(c);
        }
        break;
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA:
        grpc_scall_frame_received(c, frame);
        break;
    default:
        break;
    }
    return c->state == GRPC_SCONN_CLOSED ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

/* Plaintext bytes from the client into the session. */
static void conn_recv(grpc_sconn_t *c, const uint8_t *data, size_t n)
{
    ssize_t rv = nghttp2_session_mem_recv(c->h2, data, n);
    if (c->state != GRPC_SCONN_CLOSED && rv < 0)
        conn_close(c, nghttp2_strerror((int)rv));
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    grpc_sconn_t *c = h->data;
    if (c->tls)
        tls_io_alloc(c->tls, buf);
    else
        *buf = uv_buf_init((char *)c->rbuf, GRPC_SRV_RBUF_SIZE);
}

/* The handshake is complete: the client must have chosen h2; its identity is kept. */
static bool conn_tls_established(grpc_sconn_t *c)
{
    const tls_session_t *sess = tls_io_session(c->tls);
    const char *alpn = tls_session_alpn(sess);
    if (alpn == NULL || strcmp(alpn, "h2") != 0) {
        conn_close(c, "the client did not choose ALPN h2");
        return false;
    }
    const char *id = tls_session_peer_spiffe_id(sess);
    if (id && (c->peer_id = strdup(id)) == NULL) {
        conn_close(c, "out of memory");
        return false;
    }
    c->tls_done = true;
    conn_flush(c); /* our SETTINGS */
    return true;
}

/* Ciphertext arrived: the handshake first, then records. */
static void conn_recv_tls(grpc_sconn_t *c, size_t n)
{
    tls_io_received(c->tls, n);
    if (!c->tls_done) {
        int rc = tls_io_handshake(c->tls);
        if (rc == TLS_ERR_WANT_READ)
            return;
        if (rc < 0) {
            char detail[256], why[300];
            snprintf(why, sizeof(why), "TLS handshake: %s",
                     tls_session_error(tls_io_session(c->tls), detail, sizeof(detail)));
            conn_close(c, why);
            return;
        }
        if (!conn_tls_established(c))
            return;
    }
    ssize_t got;
    while (c->state != GRPC_SCONN_CLOSED &&
           (got = tls_io_decrypt(c->tls, (char *)c->rbuf, GRPC_SRV_RBUF_SIZE)) != 0) {
        if (got == UV_EOF) {
            conn_close(c, "the client closed the TLS session");
            return;
        }
        if (got < 0) {
            conn_close(c, "TLS record error");
            return;
        }
        conn_recv(c, c->rbuf, (size_t)got);
    }
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    grpc_sconn_t *c = st->data;
    if (c->state == GRPC_SCONN_CLOSED)
        return;
    if (nread < 0) {
        conn_close(c,
                   nread == UV_EOF ? "the client closed the connection" : uv_strerror((int)nread));
        return;
    }
    if (nread == 0)
        return;
    c->last_read = grpc_sconn_now(c);
    if (c->tls)
        conn_recv_tls(c, (size_t)nread);
    else
        conn_recv(c, c->rbuf, (size_t)nread);
    conn_flush(c);
}

/* ---- accepting ---------------------------------------------------------------------------- */

static int conn_session_new(grpc_sconn_t *c)
{
    const grpc_server_opts_t *o = &c->srv->o;
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return -ENOMEM;
    if (nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cbs);
        return -ENOMEM;
    }
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    grpc_scalls_install_callbacks(cbs);
    /* Windows open again only as the calls take their bytes (nghttp2_session_consume). */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_outbound_ack(opt, GRPC_SRV_MAX_OUTBOUND_ACK);
    int rv = nghttp2_session_server_new2(&c->h2, cbs, c, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0)
        return -ENOMEM;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, o->max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, o->stream_window},
    };
    rv = nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    if (rv == 0)
        rv = nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, o->conn_window);
    return rv == 0 ? 0 : -ENOMEM;
}

static void conn_name(grpc_sconn_t *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char host[64] = "?";
    unsigned port = 0;
    snprintf(c->name, sizeof(c->name), "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        uv_ip4_name(in, host, sizeof(host));
        port = ntohs(in->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        uv_ip6_name(in6, host, sizeof(host));
        port = ntohs(in6->sin6_port);
    }
    snprintf(c->name, sizeof(c->name), "%s:%u", host, port);
}

/* Sets up c after the accept: buffers, session, TLS. Returns 0 or a negative error (the caller
 * closes c then). */
static int conn_setup(grpc_sconn_t *c)
{
    conn_name(c);
    bufpool_init(&c->pool, 2);
    c->rbuf = c->srv->rbuf;
    int rc = conn_session_new(c);
    if (rc == 0 && c->srv->tls) {
        rc =
            tls_io_new(c->srv->tls, NULL, NULL, NULL, 0, (uv_stream_t *)&c->tcp, &c->pool, &c->tls);
        if (rc == 0)
            grpc_h2out_use_tls(&c->out, c->tls);
    }
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    return rc;
}

static void on_connection(uv_stream_t *listener, int status)
{
    grpc_server_t *s = listener->data;
    if (status < 0) {
        log_warn("grpc server: accept: %s", uv_strerror(status));
        return;
    }
    grpc_sconn_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        log_warn("grpc server: out of memory for a connection");
        return;
    }
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    uv_timer_init(s->loop, &c->deadline);
    uv_idle_init(s->loop, &c->kick);
    c->tcp.data = c->timer.data = c->deadline.data = c->kick.data = c;
    grpc_h2out_init(&c->out, (uv_stream_t *)&c->tcp, &conn_out_ops, c);
    c->handles_open = GRPC_SRV_CONN_HANDLES;
    c->started = c->last_read = grpc_sconn_now(c);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    int rc = uv_accept(listener, (uv_stream_t *)&c->tcp);
    if (rc == 0)
        rc = conn_setup(c);
    if (rc < 0) {
        log_warn("grpc server: cannot take a connection: %s",
                 rc == -ENOMEM ? "out of memory" : uv_strerror(rc));
        conn_close(c, "setup failed");
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    log_debug("grpc server: connection from %s", c->name);
    conn_arm_timer(c);
    conn_flush(c);
}

/* ---- the server --------------------------------------------------------------------------- */

static void server_free(grpc_server_t *s)
{
    grpc_method_t *m = s->methods;
    while (m) {
        grpc_method_t *next = m->next;
        free(m);
        m = next;
    }
    tls_config_unref(s->tls);
    free(s->rbuf);
    free(s);
}

/* A connection or handle went: report a drain that is complete, free a released server. */
static void server_maybe_done(grpc_server_t *s)
{
    if (s->nconns)
        return;
    if (s->released) {
        if (s->handles_open == 0)
            server_free(s);
        return;
    }
    if (s->draining && !s->drained_reported) {
        s->drained_reported = true;
        if (s->on_drained)
            s->on_drained(s, s->drained_user);
    }
}

static void on_server_handle_closed(uv_handle_t *h)
{
    grpc_server_t *s = h->data;
    s->handles_open--;
    server_maybe_done(s);
}

int grpc_server_new(uv_loop_t *loop, const grpc_server_opts_t *o, grpc_server_t **out)
{
    if (o == NULL || (o->tls && tls_config_role(o->tls) != TLS_ROLE_SERVER))
        return -EINVAL;
    grpc_server_t *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->rbuf = malloc(GRPC_SRV_RBUF_SIZE)) == NULL) {
        free(s);
        return -ENOMEM;
    }
    s->loop = loop;
    s->o = *o;
    s->o.tls = NULL;
    if (!s->o.max_concurrent_streams)
        s->o.max_concurrent_streams = GRPC_SRV_DEFAULT_STREAMS;
    if (!s->o.max_recv_message)
        s->o.max_recv_message = GRPC_DEFAULT_MAX_RECV;
    if (!s->o.stream_window)
        s->o.stream_window = GRPC_SRV_DEFAULT_SWINDOW;
    if (!s->o.conn_window)
        s->o.conn_window = GRPC_SRV_DEFAULT_CWINDOW;
    if (!s->o.send_low_water)
        s->o.send_low_water = GRPC_SRV_DEFAULT_LOW_WATER;
    if (!s->o.keepalive_timeout_ms)
        s->o.keepalive_timeout_ms = GRPC_SRV_DEFAULT_KA_TO;
    if (!s->o.handshake_timeout_ms)
        s->o.handshake_timeout_ms = GRPC_SRV_DEFAULT_HS_TO;
    if (!s->o.ping_min_interval_ms)
        s->o.ping_min_interval_ms = GRPC_SRV_DEFAULT_PING_MIN;
    if (o->tls)
        s->tls = tls_config_ref(o->tls);
    uv_tcp_init(loop, &s->listener);
    uv_timer_init(loop, &s->grace);
    s->listener.data = s->grace.data = s;
    s->handles_open = 2;
    *out = s;
    return 0;
}

int grpc_server_add_method(grpc_server_t *s, const char *path, const grpc_method_ops_t *ops,
                           void *user)
{
    if (path == NULL || path[0] != '/' || ops == NULL || ops->on_start == NULL ||
        ops->on_close == NULL)
        return -EINVAL;
    size_t len = strlen(path);
    if (grpc_server_find_method(s, path, len))
        return -EEXIST;
    grpc_method_t *m = malloc(sizeof(*m) + len + 1);
    if (m == NULL)
        return -ENOMEM;
    memcpy(m->path, path, len + 1);
    m->ops = ops;
    m->user = user;
    m->next = s->methods;
    s->methods = m;
    return 0;
}

const grpc_method_t *grpc_server_find_method(const grpc_server_t *s, const char *path, size_t len)
{
    for (const grpc_method_t *m = s->methods; m; m = m->next)
        if (strlen(m->path) == len && memcmp(m->path, path, len) == 0)
            return m;
    return NULL;
}

int grpc_server_listen(grpc_server_t *s, const struct sockaddr *addr)
{
    if (s->listening || s->released || s->draining)
        return -EINVAL;
    int rc = uv_tcp_bind(&s->listener, addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, GRPC_SRV_BACKLOG, on_connection);
    if (rc == 0)
        s->listening = true;
    return rc;
}

int grpc_server_address(const grpc_server_t *s, struct sockaddr_storage *out)
{
    if (!s->listening)
        return UV_EBADF;
    int len = sizeof(*out);
    return uv_tcp_getsockname(&s->listener, (struct sockaddr *)out, &len);
}

size_t grpc_server_connections(const grpc_server_t *s)
{
    return s->nconns;
}

static void on_grace(uv_timer_t *t)
{
    grpc_server_t *s = t->data;
    uint64_t now = uv_now(s->loop);
    for (grpc_sconn_t *c = s->conns; c; c = c->next) {
        if (c->state == GRPC_SCONN_CLOSED)
            continue;
        grpc_scalls_finish_all(c, GRPC_UNAVAILABLE, "the server is stopping");
        c->close_when_flushed = true;
        c->close_by = now + GRPC_SRV_FORCE_CLOSE_MS;
        conn_flush(c);
        conn_arm_timer(c);
    }
    server_maybe_done(s);
}

void grpc_server_drain(grpc_server_t *s, uint64_t grace_ms, grpc_server_drained_cb on_drained,
                       void *user)
{
    if (s->draining || s->released)
        return;
    s->draining = true;
    s->on_drained = on_drained;
    s->drained_user = user;
    uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
    for (grpc_sconn_t *c = s->conns; c; c = c->next) {
        if (c->state == GRPC_SCONN_HANDSHAKE)
            c->close_by = uv_now(s->loop); /* not a client yet: nothing to finish */
        conn_goaway(c, NGHTTP2_NO_ERROR, "the server is stopping");
        grpc_sconn_kick(c);
    }
    uv_timer_start(&s->grace, on_grace, s->nconns ? grace_ms : 0, 0);
}

void grpc_server_close(grpc_server_t *s)
{
    if (s == NULL || s->released)
        return;
    s->released = true;
    if (!uv_is_closing((uv_handle_t *)&s->listener))
        uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
    uv_close((uv_handle_t *)&s->grace, on_server_handle_closed);
    for (grpc_sconn_t *c = s->conns; c; c = c->next)
        conn_close(c, "the server closed");
}
