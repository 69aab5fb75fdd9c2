/* How streams and connections end: a stream's end (its counters and report, the filters' reset
 * and done hooks, its memory), and a connection's close: after the queued bytes, a FIN and a
 * short wait for the client's, or at once with a reset. */
#include <stdlib.h>
#include <string.h>

#include "proxy/core/log.h"
#include "proxy/http/access_log.h"
#include "proxy/http/h2/h2_server.h"
#include "proxy/http/hcm_conn.h"
#include "proxy/net/tls_io.h"

/* Takes s off its connection's active list and keeps its memory for the next stream. */
static void stream_recycle(hcm_conn_t *c, http_stream_t *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        c->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    c->n_streams--;
    if (s == &c->stream0) {
        c->stream0_used = false;
        return;
    }
    s->next = c->free_streams;
    c->free_streams = s;
}

void hcm_flag_streams(hcm_conn_t *c, const char *flag)
{
    for (http_stream_t *s = c->streams; s; s = s->next)
        if (strcmp(s->flags, "-") == 0)
            s->flags = flag;
}

void hcm_end_stream(http_stream_t *s, bool reset)
{
    if (s->serial == 0)
        return;
    s->serial = 0; /* gone, for every call up the stack that holds it */
    hcm_conn_t *c = s->conn;
    stats_slots_t *st = c->worker->stats;
    const hcm_config_t *cfg = s->cfg;
    uint64_t now_ms = hcm_now(c);
    if (reset) {
        bool remote = strcmp(s->flags, "DC") == 0;
        stats_inc(st, remote ? cfg->st.downstream_rq_rx_reset : cfg->st.downstream_rq_tx_reset);
        stats_inc(st, remote ? cfg->st.downstream_cx_destroy_remote_active_rq
                             : cfg->st.downstream_cx_destroy_local_active_rq);
        /* What is in flight for it upstream is abandoned: its connection too. */
        hcm_filters_reset(s, remote ? HTTP_RESET_DOWNSTREAM : HTTP_RESET_LOCAL);
    }
    if (s->status >= 100 && s->status < 600)
        stats_inc(st, cfg->st.downstream_rq_xx[s->status / 100 - 1]);
    stats_add(st, cfg->st.downstream_rq_active, -1);
    hcm_report_stream(c, s, now_ms);
    if (log_current_level <= LOG_DEBUG)
        log_debug("hcm: %.*s %.*s -> %d %s%s", (int)s->head.method_len, s->head.method,
                  (int)s->head.path_len, s->head.path, s->status, s->flags,
                  reset ? " (reset)" : "");
    hcm_filters_done(s);
    free(s->body);
    s->body = NULL;
    arena_free(&s->arena);
    if (s->snap) {
        /* A stream that finished on an older config than its connection's: the worker's tick
         * flushes the logs of its current snapshot only. */
        if (s->snap != c->worker->snap)
            for (size_t i = 0; i < cfg->n_logs; i++)
                access_log_flush(cfg->logs[i], c->worker->index);
        snapshot_unref(s->snap);
        s->snap = NULL;
    }
    stream_recycle(c, s);
}

static void on_closed(uv_handle_t *h)
{
    hcm_conn_t *c = h->data;
    if (--c->handles > 0)
        return;
    listener_conn_closed(c->worker, c->listener, c->wl);
    stats_add(c->worker->stats, c->cfg->st.downstream_cx_active, -1);
    /* The worker's tick flushes the access logs of its current snapshot only: what a
     * connection left on an older one (a drained one) is written now. */
    if (c->snap != c->worker->snap)
        for (size_t i = 0; i < c->cfg->n_logs; i++)
            access_log_flush(c->cfg->logs[i], c->worker->index);
    h2_server_free(c);
    snapshot_unref(c->snap);
    while (c->free_streams) {
        http_stream_t *s = c->free_streams;
        c->free_streams = s->next;
        free(s);
    }
    conn_buf_drop(&c->worker->pool, &c->in);
    tls_io_free(c->tls);
    free(c->xfcc);
    free(c->tcp);
    free(c);
}

/* After our FIN, what the peer still sends is read and dropped until it closes too, or until
 * delayed_close_timeout (1 s by default, as in Envoy). Closing a socket with unread bytes in it
 * sends a reset, and the reset makes the peer's kernel drop the response it has not read yet:
 * a client still sending a rejected request would never see its 400 or 431. */
static void on_linger_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static _Thread_local char sink[4096];
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(sink, sizeof(sink));
}

static void linger_end(hcm_conn_t *c)
{
    uv_read_stop((uv_stream_t *)c->tcp);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)c->tcp, on_closed);
    uv_close((uv_handle_t *)&c->timer, on_closed);
}

static void on_linger_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    if (nread < 0) /* the peer closed too (EOF), or the connection failed */
        linger_end(stream->data);
}

static void on_linger_timeout(uv_timer_t *t)
{
    linger_end(t->data);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    hcm_conn_t *c = req->data;
    free(req);
    uint64_t ms = c->cfg->delayed_close_ms;
    if (status == 0 && ms > 0 &&
        uv_read_start((uv_stream_t *)c->tcp, on_linger_alloc, on_linger_read) == 0) {
        uv_timer_start(&c->timer, on_linger_timeout, ms, 0);
        return;
    }
    uv_close((uv_handle_t *)c->tcp, on_closed);
    uv_close((uv_handle_t *)&c->timer, on_closed);
}

void hcm_close(hcm_conn_t *c, bool reset)
{
    if (c->state == HCM_CLOSING)
        return;
    while (c->streams)
        hcm_end_stream(c->streams, true); /* streams still active here did not complete */
    c->state = HCM_CLOSING;
    if (c->prev)
        c->prev->next = c->next;
    else if (c->worker->hcm_conns == c)
        c->worker->hcm_conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->handles = 2;
    c->handles += h2_server_close(c, on_closed);
    uv_read_stop((uv_stream_t *)c->tcp);
    if (!reset) {
        /* Let queued response bytes go out first; shutdown waits for them. */
        uv_shutdown_t *req = malloc(sizeof(*req));
        if (req) {
            req->data = c;
            int rc = c->tls ? tls_io_shutdown(c->tls, req, on_shutdown)
                            : uv_shutdown(req, (uv_stream_t *)c->tcp, on_shutdown);
            if (rc == 0)
                return;
            free(req);
        }
    }
    if (uv_tcp_close_reset(c->tcp, on_closed) != 0)
        uv_close((uv_handle_t *)c->tcp, on_closed);
    uv_close((uv_handle_t *)&c->timer, on_closed);
}
