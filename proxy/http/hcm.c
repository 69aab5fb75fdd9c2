/* The connection manager: takes an accepted connection, reads it (decrypting TLS) and hands the
 * bytes to the connection's codec (hcm_codec.h: HTTP/1.1, h1/h1_server.c), which turns them into
 * streams; holds the parts of the stream API that can end a stream (local replies, the
 * response's end, tunnels), since a stream's end leads on to what the codec does next; and the
 * connection's timer (route timeout, idle timeout) and drain. The request path of a stream (its
 * checks, route and filters) is hcm_request.c's, the response's head hcm_response.c's. Errors are
 * answered like Envoy: a status, a short body and an access-log response flag. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/core/log.h"
#include "proxy/http/hcm_codec.h"
#include "proxy/net/tls_io.h"

#define HCM_BODY_HEADROOM (64 * 1024)

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void on_timer(uv_timer_t *t);
static void arm_for(hcm_conn_t *c, uint64_t due);
static void tls_pump(hcm_conn_t *c);

/* What a call of the stream API returns: whether its stream ended inside. */
static int stream_status(const http_stream_t *s, uint32_t serial)
{
    return hcm_stream_gone(s, serial) ? HTTP_STREAM_ENDED : 0;
}

void http_stream_pause_request_body(http_stream_t *s)
{
    s->conn->codec->pause_body(s);
}

void hcm_pause_reading(hcm_conn_t *c)
{
    if (!c->paused) {
        c->paused = true;
        uv_read_stop((uv_stream_t *)c->tcp);
    }
}

int http_stream_resume_request_body(http_stream_t *s)
{
    uint32_t serial = s->serial;
    s->body_resumed = true;
    hcm_resume(s->conn);
    return stream_status(s, serial);
}

void hcm_resume(hcm_conn_t *c)
{
    if (c->state == HCM_CLOSING)
        return;
    if (c->paused) {
        c->paused = false;
        if (!c->read_eof)
            uv_read_start((uv_stream_t *)c->tcp, on_alloc, on_read);
    }
    if (c->tls)
        tls_pump(c); /* records read before the pause wait in the session */
    c->codec->process(c);
}

/* ---- tunnels ------------------------------------------------------------------------------ */

int http_stream_connect_established(http_stream_t *s)
{
    return s->conn->codec->connect_established(s);
}

int http_stream_start_tunnel(http_stream_t *s)
{
    return s->conn->codec->start_tunnel(s);
}

int http_stream_tunnel_data(http_stream_t *s, const char *data, size_t len, bool end)
{
    return s->conn->codec->tunnel_data(s, data, len, end);
}

/* ---- the response: the parts of the stream API that can end a stream -------------------- */

void http_stream_local_reply(http_stream_t *s, int status, const char *body, const char *flag)
{
    hcm_conn_t *c = s->conn;
    if (flag)
        s->flags = flag;
    if (s->resp_started) {
        /* Headers already went out: the only honest signal left is a reset. */
        c->codec->reset_stream(s);
        return;
    }
    s->status = status;
    s->resp_started = true;
    s->resp_done = true;
    if (c->codec->local_reply(s, status, body) < 0) {
        hcm_close(c, true);
        return;
    }
    hcm_finish_stream(s);
}

int http_stream_send_response_head(http_stream_t *s, const http_response_head_t *resp)
{
    uint32_t serial = s->serial;
    int rc = hcm_response_head(s, resp);
    if (hcm_stream_gone(s, serial))
        return HTTP_STREAM_ENDED; /* a filter's response hook ended it */
    if (rc < 0) {
        http_stream_local_reply(s, 500, "out of memory\n", "LR");
        return HTTP_STREAM_ENDED;
    }
    return 0;
}

/* Body bytes and the end of the response: the stream ends with its last bytes. */
static int send_response(http_stream_t *s, const char *data, size_t len, bool end,
                         const http_headers_t *trailers)
{
    if (s->conn->codec->encode_body(s, data, len, end, trailers) < 0)
        return HTTP_STREAM_ENDED;
    if (!end)
        return 0;
    s->resp_done = true;
    hcm_finish_stream(s);
    return HTTP_STREAM_ENDED;
}

int http_stream_send_response_body(http_stream_t *s, const char *data, size_t len, bool end)
{
    return send_response(s, data, len, end, NULL);
}

void hcm_note_grpc_status(http_stream_t *s, const http_headers_t *fields)
{
    const http_header_t *g = http_headers_find(fields, "grpc-status");
    if (g == NULL || g->value_len == 0 || g->value_len > 3)
        return;
    int v = 0;
    for (uint32_t i = 0; i < g->value_len; i++) {
        if (g->value[i] < '0' || g->value[i] > '9')
            return;
        v = v * 10 + (g->value[i] - '0');
    }
    s->grpc_status = v;
}

int http_stream_send_response_trailers(http_stream_t *s, const http_headers_t *trailers)
{
    if (s->grpc)
        hcm_note_grpc_status(s, trailers);
    return send_response(s, NULL, 0, true, trailers);
}

void http_stream_set_deadline(http_stream_t *s, uint64_t ms)
{
    s->deadline_ms = ms ? hcm_now(s->conn) + ms : 0;
    if (ms)
        arm_for(s->conn, s->deadline_ms);
}

void hcm_finish_stream(http_stream_t *s)
{
    if (s->serial == 0)
        return;
    hcm_conn_t *c = s->conn;
    hcm_end_stream(s, false);
    c->codec->stream_finished(c, s);
}

/* ---- reading ---------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    hcm_conn_t *c = h->data;
    if (c->tls) {
        tls_io_alloc(c->tls, buf);
        return;
    }
    size_t room =
        conn_buf_reserve(&c->worker->pool, &c->in, c->cfg->max_head_bytes + HCM_BODY_HEADROOM);
    *buf = uv_buf_init(c->in.data ? c->in.data + c->in.len : NULL, (unsigned)room);
}

/* Decrypts what the TLS session holds into c->in and processes it, as long as reading is on. */
static void tls_pump(hcm_conn_t *c)
{
    while (c->state != HCM_CLOSING && !c->paused && !c->read_eof) {
        size_t room =
            conn_buf_reserve(&c->worker->pool, &c->in, c->cfg->max_head_bytes + HCM_BODY_HEADROOM);
        if (room == 0) {
            c->codec->input(c, UV_ENOBUFS);
            return;
        }
        ssize_t n = tls_io_decrypt(c->tls, c->in.data + c->in.len, room);
        if (n == 0) {
            conn_buf_trim(&c->worker->pool, &c->in);
            return;
        }
        c->codec->input(c, n < 0 && n != UV_EOF ? UV_EPROTO : n);
    }
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    hcm_conn_t *c = stream->data;
    if (nread == 0)
        return;
    if (c->tls == NULL || nread < 0) {
        c->codec->input(c, nread);
        return;
    }
    tls_io_received(c->tls, (size_t)nread);
    tls_pump(c);
}

/* ---- timers and close ------------------------------------------------------------------- */

/* The timer is armed lazily for the earliest of the connection's idle timeout and its streams'
 * timeouts: a later one is only recorded (a store per request, not two timer-heap operations),
 * and a timer that fires early re-arms itself. */
static void arm_for(hcm_conn_t *c, uint64_t due)
{
    if (c->timer_due_ms == 0 || due < c->timer_due_ms) {
        uint64_t now = hcm_now(c);
        c->timer_due_ms = due;
        uv_timer_start(&c->timer, on_timer, due > now ? due - now : 0, 0);
    }
}

/* Re-arms the timer for the earliest timeout still set, if any. */
static void rearm(hcm_conn_t *c)
{
    uint64_t due = c->idle_due_ms;
    for (const http_stream_t *s = c->streams; s; s = s->next)
        if (s->deadline_ms && (due == 0 || s->deadline_ms < due))
            due = s->deadline_ms;
    if (due)
        arm_for(c, due);
}

static void on_timer(uv_timer_t *t)
{
    hcm_conn_t *c = t->data;
    c->timer_due_ms = 0;
    uint64_t now = hcm_now(c);
    /* Streams whose timeout passed are answered 504 (UT); that may end other streams or the
     * connection, so the list is walked again from its head after each. */
    http_stream_t *s = c->streams;
    while (s && c->state != HCM_CLOSING) {
        if (s->deadline_ms == 0 || s->deadline_ms > now) {
            s = s->next;
            continue;
        }
        s->deadline_ms = 0;
        stats_inc(c->worker->stats, s->cfg->st.downstream_rq_timeout);
        hcm_filters_reset(s, HTTP_RESET_TIMEOUT);
        http_stream_local_reply(s, 504, "upstream request timeout", "UT");
        s = c->streams;
    }
    if (c->state == HCM_CLOSING)
        return;
    if (c->idle_due_ms && c->idle_due_ms <= now) {
        c->idle_due_ms = 0;
        if (c->state == HCM_TUNNEL) {
            uint64_t idle = now - c->last_activity;
            if (idle >= c->cfg->idle_timeout_ms) {
                http_stream_tunnel_data(c->streams, NULL, 0, true); /* idle: the tunnel ends */
                return;
            }
            c->idle_due_ms = now + c->cfg->idle_timeout_ms - idle;
        } else if (c->streams == NULL) {
            hcm_close(c, false); /* idle */
            return;
        }
    }
    rearm(c);
}

void hcm_set_idle(hcm_conn_t *c, uint64_t ms)
{
    c->idle_due_ms = ms ? hcm_now(c) + ms : 0;
    if (ms)
        arm_for(c, c->idle_due_ms);
}

/* Idle connections close now; busy ones close after the streams in flight, as Envoy does while
 * draining (the codec's drain). */
void hcm_drain_conn(hcm_conn_t *c)
{
    c->codec->drain(c);
}

void hcm_drain_all(worker_t *w)
{
    hcm_conn_t *c = w->hcm_conns, *next;
    for (; c; c = next) {
        next = c->next;
        hcm_drain_conn(c);
    }
}

void hcm_abort_all(worker_t *w)
{
    while (w->hcm_conns) {
        hcm_conn_t *c = w->hcm_conns;
        hcm_flag_streams(c, "LR"); /* reset here, at the drain deadline or a quit */
        hcm_close(c, true);
    }
}

int hcm_start(accepted_conn_t *ac, const hcm_config_t *cfg)
{
    worker_t *w = ac->worker;
    hcm_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->tcp = ac->tcp;
    c->tcp->data = c;
    c->worker = w;
    c->snap = snapshot_ref(ac->snap);
    c->listener = ac->listener;
    c->chain = ac->chain;
    c->wl = ac->wl;
    c->cfg = cfg;
    c->codec = &h1_server_codec;
    c->state = HCM_WAIT_HEAD;
    /* Its listener went away while protocol detection or TLS held it: serve what it sent and
     * close after, as the connections that were here already do. */
    c->close_after = listener_retired(ac->wl);
    if (c->close_after)
        c->drain_due_ms = worker_drain_deadline(w);
    if (ac->initial_len) {
        /* The detection slab becomes the read buffer as it is. */
        c->in = (conn_buf_t){.data = ac->initial, .len = ac->initial_len, .cap = BUFPOOL_SLAB_SIZE};
    } else {
        bufpool_put(&w->pool, ac->initial);
    }
    ac->initial = NULL;
    if (ac->tls) {
        c->tls = ac->tls;
        ac->tls = NULL;
        c->tls_own_id = tls_config_spiffe_id(ac->chain->tls->engine);
        tls_io_attach(c->tls, c, hcm_on_tls_written);
    }
    if (cfg->use_remote_address) {
        struct sockaddr_storage peer;
        int plen = sizeof(peer);
        if (uv_tcp_getpeername(c->tcp, (struct sockaddr *)&peer, &plen) == 0) {
            char text[80];
            snapshot_format_addr((struct sockaddr *)&peer, text, sizeof(text));
            char *colon = strrchr(text, ':'); /* the address without the port */
            if (colon)
                *colon = '\0';
            snprintf(c->peer, sizeof(c->peer), "%s", text[0] == '[' ? text + 1 : text);
            size_t n = strlen(c->peer);
            if (n && c->peer[n - 1] == ']')
                c->peer[n - 1] = '\0';
        }
    }
    uv_timer_init(&w->loop, &c->timer);
    c->timer.data = c;
    c->next = w->hcm_conns;
    if (w->hcm_conns)
        w->hcm_conns->prev = c;
    w->hcm_conns = c;
    stats_inc(w->stats, cfg->st.downstream_cx_total);
    stats_inc(w->stats, cfg->st.downstream_cx_active);
    memcpy(&c->orig_dst, &ac->orig_dst, sizeof(c->orig_dst));
    uv_tcp_nodelay(c->tcp, 1);
    uv_read_start((uv_stream_t *)c->tcp, on_alloc, on_read);
    hcm_set_idle(c, cfg->idle_timeout_ms);
    if (c->tls)
        tls_pump(c); /* requests sent right behind the handshake */
    c->codec->process(c);
    return 0;
}
