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
static void tls_pump(hcm_conn_t *c);

/* A call of the stream API saw its stream end if streams_ended moved. */
static int stream_status(const hcm_conn_t *c, uint32_t ended)
{
    return c->streams_ended != ended ? HTTP_STREAM_ENDED : 0;
}

void http_stream_pause_request_body(http_stream_t *s)
{
    hcm_conn_t *c = s->conn;
    if (!c->paused) {
        c->paused = true;
        uv_read_stop((uv_stream_t *)c->tcp);
    }
}

int http_stream_resume_request_body(http_stream_t *s)
{
    hcm_conn_t *c = s->conn;
    uint32_t ended = c->streams_ended;
    s->body_resumed = true;
    hcm_resume(c);
    return stream_status(c, ended);
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
        hcm_close(c, true);
        return;
    }
    s->status = status;
    s->resp_started = true;
    s->resp_done = true;
    if (c->codec->local_reply(s, status, body) < 0) {
        hcm_close(c, true);
        return;
    }
    hcm_finish_stream(c);
}

int http_stream_send_response_head(http_stream_t *s, const http_response_head_t *resp)
{
    hcm_conn_t *c = s->conn;
    uint32_t ended = c->streams_ended;
    int rc = hcm_response_head(s, resp);
    if (c->streams_ended != ended)
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
    hcm_finish_stream(s->conn);
    return HTTP_STREAM_ENDED;
}

int http_stream_send_response_body(http_stream_t *s, const char *data, size_t len, bool end)
{
    return send_response(s, data, len, end, NULL);
}

int http_stream_send_response_trailers(http_stream_t *s, const http_headers_t *trailers)
{
    return send_response(s, NULL, 0, true, trailers);
}

void http_stream_set_deadline(http_stream_t *s, uint64_t ms)
{
    hcm_set_deadline(s->conn, ms);
}

void hcm_finish_stream(hcm_conn_t *c)
{
    if (!c->stream_active)
        return;
    hcm_end_stream(c, false);
    c->codec->stream_finished(c);
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

static void on_timer(uv_timer_t *t)
{
    hcm_conn_t *c = t->data;
    c->timer_due_ms = 0;
    if (c->deadline_ms == 0)
        return;
    uint64_t now = hcm_now(c);
    if (now < c->deadline_ms) { /* the deadline moved later since the timer was armed */
        c->timer_due_ms = c->deadline_ms;
        uv_timer_start(&c->timer, on_timer, c->deadline_ms - now, 0);
        return;
    }
    c->deadline_ms = 0;
    if (c->state == HCM_TUNNEL) {
        uint64_t idle = hcm_now(c) - c->last_activity;
        if (idle < c->cfg->idle_timeout_ms) {
            hcm_set_deadline(c, c->cfg->idle_timeout_ms - idle);
            return;
        }
        http_stream_tunnel_data(&c->stream, NULL, 0, true); /* idle: the tunnel ends */
        return;
    }
    if (c->stream_active) {
        http_stream_t *s = &c->stream;
        stats_inc(c->worker->stats, c->cfg->st.downstream_rq_timeout);
        hcm_filters_reset(s, HTTP_RESET_TIMEOUT);
        http_stream_local_reply(s, 504, "upstream request timeout", "UT");
        return;
    }
    hcm_close(c, false); /* idle */
}

/* Every request moves the deadline (route timeout, then idle timeout), so the timer is armed
 * lazily: a later deadline is only recorded, and a timer that fires early re-arms itself for
 * it. Per request that is a store, not two timer-heap operations. */
void hcm_set_deadline(hcm_conn_t *c, uint64_t ms)
{
    if (ms == 0) {
        c->deadline_ms = 0;
        return;
    }
    uint64_t due = hcm_now(c) + ms;
    c->deadline_ms = due;
    if (c->timer_due_ms == 0 || due < c->timer_due_ms) {
        c->timer_due_ms = due;
        uv_timer_start(&c->timer, on_timer, ms, 0);
    }
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
        if (c->stream_active && strcmp(c->stream.flags, "-") == 0)
            c->stream.flags = "LR"; /* reset here, at the drain deadline or a quit */
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
    hcm_set_deadline(c, cfg->idle_timeout_ms);
    if (c->tls)
        tls_pump(c); /* requests sent right behind the handshake */
    c->codec->process(c);
    return 0;
}
