/* HTTP/2 upstream connections, one set per worker (see h2_pool.h): connecting them through
 * upstream_connect.c (circuit breaker, timeout, TLS, counts), running nghttp2's client session
 * over them (input fed from the socket or the TLS session, output pulled with mem_send while the
 * socket's queue is short), handing each stream's frames to its owner, and choosing, closing and
 * moving connections. Work an owner asks for (a submitted request, consumed bytes) is flushed on
 * the next loop turn, so no owner callback runs inside an owner's own call. */
#include "proxy/upstream/h2_pool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/core/log.h"
#include "proxy/net/stream_write.h"
#include "proxy/net/tls_io.h"
#include "proxy/upstream/cluster_state.h"
#include "proxy/upstream/h1_pool.h"
#include "proxy/upstream/upstream_connect.h"

#define H2P_IDLE_TIMEOUT_MS 60000
#define H2P_SWEEP_MS        1000
#define H2P_READ_MAX        (256 * 1024)
#define H2P_GATHER          (16 * 1024)  /* frames gathered on the stack for one write */
#define H2P_WRITE_HIGH      (64 * 1024)  /* socket queue past which output waits */
#define H2P_STREAM_WINDOW   (256 * 1024) /* what a stream may hold unread */
#define H2P_CONN_WINDOW     (16 << 20)   /* consumed at once: it never limits */
#define H2P_PING_TIMEOUT_MS 20000        /* keepalive without a timeout */
#define H2P_NO_LIMIT        0x7fffffffu

typedef struct h2_pool {
    const snap_cluster_t *cluster; /* in snap, or in a snapshot its streams' owners hold */
    snapshot_t *snap;              /* reference held; NULL for a one-off pool */
    int endpoint;                  /* -1 for ORIGINAL_DST clusters: addr tells pools apart */
    struct sockaddr_storage addr;
    h2_conn_t *conns;
    size_t n_conns;
    bool retired; /* takes no new streams; freed with its last connection */
    struct h2_pool *next;
} h2_pool_t;

typedef struct h2_pool_set {
    h2_pool_t *pools;
    uv_timer_t sweep;
    bool sweeping;
} h2_pool_set_t;

typedef enum { H2C_CONNECTING, H2C_OPEN, H2C_CLOSING } h2c_state_t;

struct h2_conn {
    upstream_connect_t upc; /* upc.timer: keepalive once open */
    uv_timer_t kick;        /* flushes on the next loop turn */
    h2_pool_t *pool;        /* NULL once closing */
    h2c_state_t state;
    nghttp2_session *h2;
    conn_buf_t in;
    char label[64];
    h2_stream_t *streams;
    uint32_t n_streams;
    uint64_t n_started; /* streams ever attached */
    uint64_t idle_since;
    int32_t goaway_last; /* the GOAWAY's last_stream_id */
    bool goaway;         /* a GOAWAY arrived: no stream may start */
    bool no_new;         /* no new stream attaches (GOAWAY, max_requests_per_connection) */
    bool ping_out;
    int in_session; /* inside the session's mem_recv or mem_send */
    int handles;
    h2_conn_t *next;
};

static void conn_flush(h2_conn_t *hc);
static void conn_fail(h2_conn_t *hc, int status, const char *why);
static void on_sweep(uv_timer_t *t);

/* ---- pools ------------------------------------------------------------------------------- */

static h2_pool_set_t *pool_set(worker_t *w)
{
    if (w->h2_pools == NULL) {
        h2_pool_set_t *ps = calloc(1, sizeof(*ps));
        if (ps == NULL)
            return NULL;
        uv_timer_init(&w->loop, &ps->sweep);
        ps->sweep.data = w;
        w->h2_pools = ps;
    }
    return w->h2_pools;
}

static size_t addr_len(const struct sockaddr *a)
{
    return a->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static bool snap_has_cluster(const snapshot_t *snap, const snap_cluster_t *c)
{
    uintptr_t first = (uintptr_t)snap->clusters, x = (uintptr_t)c;
    return x >= first && x < first + snap->n_clusters * sizeof(*snap->clusters);
}

static void pool_free(worker_t *w, h2_pool_t *p)
{
    h2_pool_set_t *ps = w->h2_pools;
    for (h2_pool_t **pp = &ps->pools; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    snapshot_unref(p->snap);
    free(p);
}

static h2_pool_t *pool_find(worker_t *w, const snap_cluster_t *c, int ep,
                            const struct sockaddr *addr)
{
    h2_pool_set_t *ps = pool_set(w);
    if (ps == NULL)
        return NULL;
    for (h2_pool_t *p = ps->pools; p; p = p->next)
        if (!p->retired && p->cluster == c && p->endpoint == ep &&
            (ep >= 0 || memcmp(&p->addr, addr, addr_len(addr)) == 0))
            return p;
    h2_pool_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->cluster = c;
    p->endpoint = ep;
    memcpy(&p->addr, addr, addr_len(addr));
    if (snap_has_cluster(w->snap, c))
        p->snap = snapshot_ref(w->snap);
    else
        p->retired = true; /* a swapped-out snapshot's cluster: one-off connections */
    p->next = ps->pools;
    ps->pools = p;
    return p;
}

static void sweep_start(worker_t *w)
{
    h2_pool_set_t *ps = w->h2_pools;
    if (ps && !ps->sweeping) {
        ps->sweeping = true;
        uv_timer_start(&ps->sweep, on_sweep, H2P_SWEEP_MS, H2P_SWEEP_MS);
    }
}

/* ---- connection lifetime ----------------------------------------------------------------- */

static void on_conn_closed(uv_handle_t *h)
{
    h2_conn_t *hc = h->data;
    if (--hc->handles > 0)
        return;
    nghttp2_session_del(hc->h2);
    conn_buf_drop(&hc->upc.worker->pool, &hc->in);
    upstream_connect_free(&hc->upc);
    free(hc);
}

/* Takes hc out of its pool (freeing a retired pool left empty) and closes its handles. */
static void conn_close(h2_conn_t *hc, bool reset)
{
    if (hc->state == H2C_CLOSING)
        return;
    hc->state = H2C_CLOSING;
    h2_pool_t *p = hc->pool;
    worker_t *w = hc->upc.worker;
    for (h2_conn_t **cp = &p->conns; *cp; cp = &(*cp)->next)
        if (*cp == hc) {
            *cp = hc->next;
            break;
        }
    p->n_conns--;
    hc->pool = NULL;
    /* Counted out while its cluster is surely alive: the pool may hold the last reference to
     * the snapshot it belongs to. */
    uv_close((uv_handle_t *)&hc->kick, on_conn_closed);
    upstream_connect_close(&hc->upc, reset, hc, on_conn_closed);
    if (p->retired && p->n_conns == 0)
        pool_free(w, p);
}

static void stream_unlink(h2_stream_t *s)
{
    h2_conn_t *hc = s->conn;
    if (s->prev)
        s->prev->next = s->next;
    else
        hc->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    s->conn = NULL;
    hc->n_streams--;
}

/* A connection left without streams: idle until the sweep, or closed when it takes no new one. */
static void conn_check_idle(h2_conn_t *hc)
{
    if (hc->state != H2C_OPEN || hc->n_streams)
        return;
    if (hc->no_new || hc->pool->retired) {
        stats_inc(hc->upc.worker->stats, hc->upc.cluster->st.upstream_cx_destroy_local);
        conn_close(hc, false);
        return;
    }
    hc->idle_since = uv_now(&hc->upc.worker->loop);
    sweep_start(hc->upc.worker);
}

/* s leaves its connection; nghttp2 forgets it as the stream's user data. */
static void stream_detach(h2_stream_t *s)
{
    h2_conn_t *hc = s->conn;
    if (hc == NULL)
        return;
    if (s->id > 0 && hc->h2)
        nghttp2_session_set_stream_user_data(hc->h2, s->id, NULL);
    stream_unlink(s);
    conn_check_idle(hc);
}

static void schedule_flush(h2_conn_t *hc);

/* The connection is over: every stream on it hears, once. */
static void conn_fail(h2_conn_t *hc, int status, const char *why)
{
    if (hc->state == H2C_CLOSING)
        return;
    bool was_open = hc->state == H2C_OPEN;
    log_debug("cluster '%s': HTTP/2 connection to %s: %s", hc->upc.cluster->name, hc->label, why);
    if (was_open)
        stats_inc(hc->upc.worker->stats, status == UV_EOF
                                             ? hc->upc.cluster->st.upstream_cx_destroy_remote
                                             : hc->upc.cluster->st.upstream_cx_destroy_local);
    conn_close(hc, status != UV_EOF);
    while (hc->streams) {
        h2_stream_t *s = hc->streams;
        stream_unlink(s);
        if (!s->ready_told) {
            s->cbs->on_ready(s->owner, status < 0 ? status : UV_ECONNRESET);
            continue;
        }
        h2_close_info_t why_closed = {.error_code = NGHTTP2_INTERNAL_ERROR, .conn_lost = true};
        s->cbs->on_close(s->owner, &why_closed);
    }
}

/* ---- output -------------------------------------------------------------------------------- */

static size_t out_queued(const h2_conn_t *hc)
{
    return hc->upc.tls ? tls_io_queue_size(hc->upc.tls) : hc->upc.tcp.write_queue_size;
}

static void on_write(uv_write_t *req, int status)
{
    copy_write_t *wr = (copy_write_t *)req;
    h2_conn_t *hc = wr->owner;
    free(wr);
    if (status == 0)
        conn_flush(hc);
}

static void on_tls_written(void *owner, int status)
{
    if (status == 0)
        conn_flush(owner);
}

/* Streams that asked hear that the output moved (their owners resume their clients). */
static void notify_flushed(h2_conn_t *hc)
{
    for (h2_stream_t *s = hc->streams; s && hc->state == H2C_OPEN;) {
        if (!s->want_flushed) {
            s = s->next;
            continue;
        }
        s->want_flushed = false;
        s->cbs->on_flushed(s->owner);
        s = hc->streams; /* the callback may have changed the list */
    }
}

/* Writes n bytes (borrowed: copied if the socket does not take them at once). 0 or an error
 * (the connection has failed then). */
static int conn_write(h2_conn_t *hc, const char *data, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)n);
    int rc = hc->upc.tls ? tls_io_write(hc->upc.tls, &b, 1)
                         : stream_write_copy((uv_stream_t *)&hc->upc.tcp, &b, 1, hc, on_write);
    if (rc < 0) {
        conn_fail(hc, rc, uv_strerror(rc));
        return rc;
    }
    stats_add(hc->upc.worker->stats, hc->upc.cluster->st.upstream_cx_tx_bytes_total, (int64_t)n);
    return 0;
}

/* Pulls the session's output into the socket while its queue is short. The frames nghttp2
 * hands out one by one are gathered, so that a turn's frames leave in one write (and, over TLS,
 * one record) rather than a write each. */
static void conn_flush(h2_conn_t *hc)
{
    if (hc->state != H2C_OPEN || hc->in_session)
        return;
    char gather[H2P_GATHER];
    size_t glen = 0;
    while (out_queued(hc) + glen < H2P_WRITE_HIGH) {
        const uint8_t *data;
        hc->in_session++;
        ssize_t n = nghttp2_session_mem_send(hc->h2, &data);
        hc->in_session--;
        if (hc->state != H2C_OPEN)
            return;
        if (n < 0) {
            conn_fail(hc, UV_EPROTO, nghttp2_strerror((int)n));
            return;
        }
        if (n == 0)
            break;
        if (glen + (size_t)n > sizeof(gather)) { /* full: out with what is gathered first */
            if (glen && conn_write(hc, gather, glen) < 0)
                return;
            glen = 0;
        }
        if ((size_t)n > sizeof(gather)) { /* a large frame leaves on its own */
            if (conn_write(hc, (const char *)data, (size_t)n) < 0)
                return;
            continue;
        }
        memcpy(gather + glen, data, (size_t)n);
        glen += (size_t)n;
    }
    if (glen && conn_write(hc, gather, glen) < 0)
        return;
    notify_flushed(hc);
    if (hc->state == H2C_OPEN && !nghttp2_session_want_read(hc->h2) &&
        !nghttp2_session_want_write(hc->h2) && out_queued(hc) == 0)
        conn_fail(hc, UV_EOF, "the session ended (GOAWAY)");
}

static void on_kick(uv_timer_t *t)
{
    conn_flush(t->data);
}

static void schedule_flush(h2_conn_t *hc)
{
    if (hc->state == H2C_OPEN && !hc->in_session)
        uv_timer_start(&hc->kick, on_kick, 0, 0);
}

/* ---- input --------------------------------------------------------------------------------- */

static void conn_recv(h2_conn_t *hc, const char *data, size_t len)
{
    stats_add(hc->upc.worker->stats, hc->upc.cluster->st.upstream_cx_rx_bytes_total, (int64_t)len);
    hc->in_session++;
    ssize_t rv = nghttp2_session_mem_recv(hc->h2, (const uint8_t *)data, len);
    hc->in_session--;
    if (hc->state != H2C_OPEN)
        return;
    if (rv < 0) {
        conn_fail(hc, UV_EPROTO, nghttp2_strerror((int)rv));
        return;
    }
    conn_flush(hc);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    h2_conn_t *hc = h->data;
    if (hc->upc.tls) {
        tls_io_alloc(hc->upc.tls, buf);
        return;
    }
    size_t room = conn_buf_reserve(&hc->upc.worker->pool, &hc->in, H2P_READ_MAX);
    *buf = uv_buf_init(hc->in.data ? hc->in.data + hc->in.len : NULL, (unsigned)room);
}

static void tls_pump(h2_conn_t *hc)
{
    while (hc->state == H2C_OPEN) {
        size_t room = conn_buf_reserve(&hc->upc.worker->pool, &hc->in, H2P_READ_MAX);
        if (room == 0) {
            conn_fail(hc, UV_ENOMEM, "out of memory");
            return;
        }
        ssize_t n = tls_io_decrypt(hc->upc.tls, hc->in.data, room);
        if (n == 0)
            break;
        if (n < 0) {
            conn_fail(hc, n == UV_EOF ? UV_EOF : UV_EPROTO,
                      n == UV_EOF ? "the server closed the TLS session" : "TLS record error");
            return;
        }
        conn_recv(hc, hc->in.data, (size_t)n);
    }
    if (hc->state == H2C_OPEN)
        conn_buf_trim(&hc->upc.worker->pool, &hc->in);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    h2_conn_t *hc = stream->data;
    if (nread == 0 || hc->state == H2C_CLOSING)
        return;
    if (hc->upc.tls && upstream_connect_handshaking(&hc->upc)) {
        upstream_connect_read(&hc->upc, nread);
        return;
    }
    if (nread < 0) {
        conn_fail(hc, nread == UV_EOF ? UV_EOF : (int)nread,
                  nread == UV_EOF ? "closed by the server" : uv_strerror((int)nread));
        return;
    }
    if (hc->upc.tls) {
        tls_io_received(hc->upc.tls, (size_t)nread);
        tls_pump(hc);
        return;
    }
    conn_recv(hc, hc->in.data, (size_t)nread);
    if (hc->state == H2C_OPEN)
        conn_buf_trim(&hc->upc.worker->pool, &hc->in);
}

/* ---- session callbacks -------------------------------------------------------------------- */

static h2_stream_t *stream_of(nghttp2_session *h2, int32_t id)
{
    return id > 0 ? nghttp2_session_get_stream_user_data(h2, id) : NULL;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    (void)flags;
    (void)user;
    h2_stream_t *s = stream_of(h2, frame->hd.stream_id);
    return s ? s->cbs->on_header(s->owner, frame, name, namelen, value, valuelen) : 0;
}

static void keepalive_arm(h2_conn_t *hc);

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
    h2_conn_t *hc = user;
    stats_slots_t *st = hc->upc.worker->stats;
    h2_stream_t *s = stream_of(h2, frame->hd.stream_id);
    switch (frame->hd.type) {
    case NGHTTP2_GOAWAY:
        hc->goaway = hc->no_new = true;
        hc->goaway_last = frame->goaway.last_stream_id;
        stats_inc(st, hc->upc.cluster->st.upstream_cx_close_notify);
        log_debug("cluster '%s': GOAWAY from %s (last stream %d, code %u)", hc->upc.cluster->name,
                  hc->label, frame->goaway.last_stream_id, frame->goaway.error_code);
        return 0;
    case NGHTTP2_PING:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK) {
            hc->ping_out = false;
            keepalive_arm(hc);
        }
        return 0;
    case NGHTTP2_RST_STREAM:
        stats_inc(st, hc->upc.cluster->st.http2_rx_reset);
        if (s)
            s->got_rst = true;
        return 0;
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA:
        return s ? s->cbs->on_frame(s->owner, frame) : 0;
    default:
        return 0;
    }
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
    (void)flags;
    (void)user;
    /* The connection's window is given back at once: only the streams' windows hold back a
     * peer whose client reads slowly. */
    nghttp2_session_consume_connection(h2, len);
    h2_stream_t *s = stream_of(h2, id);
    return s ? s->cbs->on_data(s->owner, data, len) : 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t id, uint32_t code, void *user)
{
    h2_conn_t *hc = user;
    h2_stream_t *s = stream_of(h2, id);
    if (s == NULL)
        return 0;
    h2_close_info_t why = {
        .error_code = code,
        .peer_reset = s->got_rst,
        .refused = code == NGHTTP2_REFUSED_STREAM || (hc->goaway && id > hc->goaway_last),
    };
    /* Closed with an error nobody sent us and not by a GOAWAY: nghttp2 reset it itself, for a
     * response that broke the protocol. */
    why.malformed = s->malformed || (!s->got_rst && !why.refused && code != NGHTTP2_NO_ERROR);
    stream_detach(s);
    s->cbs->on_close(s->owner, &why);
    return 0;
}

static int on_frame_send(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
    (void)h2;
    h2_conn_t *hc = user;
    if (frame->hd.type == NGHTTP2_RST_STREAM)
        stats_inc(hc->upc.worker->stats, hc->upc.cluster->st.http2_tx_reset);
    return 0;
}

/* A request's HEADERS could not go (a GOAWAY came first, streams ran out): refused. */
static int on_frame_not_send(nghttp2_session *h2, const nghttp2_frame *frame, int err, void *user)
{
    (void)err;
    (void)user;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    h2_stream_t *s = stream_of(h2, frame->hd.stream_id);
    if (s == NULL)
        return 0;
    h2_close_info_t why = {.error_code = NGHTTP2_REFUSED_STREAM, .refused = true};
    stream_detach(s);
    s->cbs->on_close(s->owner, &why);
    return 0;
}

static int on_invalid_frame(nghttp2_session *h2, const nghttp2_frame *frame, int err, void *user)
{
    (void)err;
    (void)user;
    h2_stream_t *s = stream_of(h2, frame->hd.stream_id);
    if (s)
        s->malformed = true;
    return 0;
}

static ssize_t read_body(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *user)
{
    (void)src;
    (void)user;
    h2_stream_t *s = stream_of(h2, id);
    if (s == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return s->cbs->read_body(s->owner, buf, len, flags);
}

static int session_new(h2_conn_t *hc)
{
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return UV_ENOMEM;
    if (nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cbs);
        return UV_ENOMEM;
    }
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, on_frame_not_send);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, on_invalid_frame);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    int rc = nghttp2_session_client_new2(&hc->h2, cbs, hc, opt);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    if (rc != 0)
        return UV_ENOMEM;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2P_STREAM_WINDOW},
    };
    nghttp2_submit_settings(hc->h2, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    nghttp2_session_set_local_window_size(hc->h2, NGHTTP2_FLAG_NONE, 0, H2P_CONN_WINDOW);
    return 0;
}

/* ---- keepalive ----------------------------------------------------------------------------- */

static void on_keepalive(uv_timer_t *t)
{
    h2_conn_t *hc = t->data;
    if (hc->state != H2C_OPEN)
        return;
    if (hc->ping_out) {
        conn_fail(hc, UV_ETIMEDOUT, "keepalive PING not answered in time");
        return;
    }
    nghttp2_submit_ping(hc->h2, NGHTTP2_FLAG_NONE, NULL);
    hc->ping_out = true;
    uint64_t timeout = hc->upc.cluster->h2_keepalive_timeout_ms;
    uv_timer_start(&hc->upc.timer, on_keepalive, timeout ? timeout : H2P_PING_TIMEOUT_MS, 0);
    conn_flush(hc);
}

static void keepalive_arm(h2_conn_t *hc)
{
    uint64_t every = hc->upc.cluster->h2_keepalive_interval_ms;
    if (every && hc->state == H2C_OPEN)
        uv_timer_start(&hc->upc.timer, on_keepalive, every, 0);
}

/* ---- connecting ---------------------------------------------------------------------------- */

/* The streams that waited for the connection hear it is open. */
static void tell_ready(h2_conn_t *hc)
{
    for (h2_stream_t *s = hc->streams; s && hc->state == H2C_OPEN;) {
        if (s->ready_told) {
            s = s->next;
            continue;
        }
        s->ready_told = true;
        s->cbs->on_ready(s->owner, 0);
        s = hc->streams;
    }
}

static void on_upstream_connected(void *owner, int status)
{
    h2_conn_t *hc = owner;
    if (status < 0) {
        conn_fail(hc, status, uv_strerror(status));
        return;
    }
    if (hc->upc.tls) {
        const char *alpn = tls_session_alpn(tls_io_session(hc->upc.tls));
        if (alpn == NULL || strcmp(alpn, "h2") != 0) {
            log_warn("cluster '%s': %s did not select ALPN \"h2\" (it chose %s): the cluster asks "
                     "for HTTP/2",
                     hc->upc.cluster->name, hc->label, alpn ? alpn : "none");
            stats_inc(hc->upc.worker->stats, hc->upc.cluster->st.upstream_cx_connect_fail);
            conn_fail(hc, UV_EPROTO, "no ALPN h2");
            return;
        }
        tls_io_attach(hc->upc.tls, hc, on_tls_written);
    } else {
        uv_read_start((uv_stream_t *)&hc->upc.tcp, on_alloc, on_read);
    }
    int rc = session_new(hc);
    if (rc < 0) {
        conn_fail(hc, rc, "out of memory");
        return;
    }
    stats_inc(hc->upc.worker->stats, hc->upc.cluster->st.upstream_cx_http2_total);
    hc->state = H2C_OPEN;
    keepalive_arm(hc);
    conn_flush(hc); /* the preface and SETTINGS */
    tell_ready(hc);
    if (hc->state == H2C_OPEN && hc->upc.tls)
        tls_pump(hc);    /* records that came with the server's last flight */
    conn_check_idle(hc); /* its requests gave up while it connected: idle from now */
}

static const upstream_connect_ops_t h2_connect_ops = {
    .connected = on_upstream_connected,
    .alloc = on_alloc,
    .read = on_read,
};

/* The streams hc may carry at once: the peer's SETTINGS and the cluster's limit. */
static uint32_t conn_capacity(const h2_conn_t *hc)
{
    uint32_t cap = hc->pool->cluster->h2_max_concurrent_streams;
    if (cap == 0)
        cap = H2P_NO_LIMIT;
    if (hc->h2) {
        uint32_t peer =
            nghttp2_session_get_remote_settings(hc->h2, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
        if (peer < cap)
            cap = peer;
    }
    return cap;
}

static void stream_link(h2_conn_t *hc, h2_stream_t *s, void *owner, const h2_stream_cbs_t *cbs)
{
    s->conn = hc;
    s->owner = owner;
    s->cbs = cbs;
    s->id = 0;
    s->reused = hc->n_started > 0;
    s->next = hc->streams;
    s->prev = NULL;
    if (hc->streams)
        hc->streams->prev = s;
    hc->streams = s;
    hc->n_streams++;
    uint32_t max_rq = hc->pool->cluster->max_requests_per_connection;
    if (++hc->n_started >= max_rq && max_rq)
        hc->no_new = true;
}

int h2_stream_attach(h2_stream_t *s, worker_t *w, const snap_cluster_t *c, int ep,
                     const struct sockaddr *addr, void *owner, const h2_stream_cbs_t *cbs,
                     bool *ready)
{
    h2_pool_t *p = pool_find(w, c, ep, addr);
    if (p == NULL)
        return UV_ENOMEM;
    for (h2_conn_t *hc = p->conns; hc; hc = hc->next) {
        if (hc->state == H2C_CLOSING || hc->no_new || hc->n_streams >= conn_capacity(hc))
            continue;
        stream_link(hc, s, owner, cbs);
        *ready = s->ready_told = hc->state == H2C_OPEN;
        return 0;
    }
    h2_conn_t *hc = calloc(1, sizeof(*hc));
    if (hc == NULL)
        return UV_ENOMEM;
    int rc = upstream_connect_start(&hc->upc, w, c, addr, hc, &h2_connect_ops);
    if (rc == UV_EBUSY) { /* max_connections */
        free(hc);
        if (p->conns == NULL && p->retired)
            pool_free(w, p);
        return rc;
    }
    hc->pool = p;
    hc->next = p->conns;
    p->conns = hc;
    p->n_conns++;
    hc->state = H2C_CONNECTING;
    snapshot_format_addr(addr, hc->label, sizeof(hc->label));
    hc->upc.tcp.data = hc->upc.timer.data = hc->kick.data = hc;
    uv_timer_init(&w->loop, &hc->kick);
    hc->handles = 3;
    if (rc < 0) {
        conn_close(hc, false);
        return rc;
    }
    stream_link(hc, s, owner, cbs);
    *ready = false;
    return 0;
}

/* ---- streams ------------------------------------------------------------------------------- */

int h2_stream_submit(h2_stream_t *s, const nghttp2_nv *nv, size_t n, bool with_body, bool *refused)
{
    h2_conn_t *hc = s->conn;
    *refused = false;
    if (hc == NULL || hc->state != H2C_OPEN || hc->goaway) {
        *refused = hc != NULL;
        stream_detach(s);
        return -ECONNRESET;
    }
    nghttp2_data_provider prd = {.source.ptr = NULL, .read_callback = read_body};
    int32_t id = nghttp2_submit_request(hc->h2, NULL, nv, n, with_body ? &prd : NULL, s);
    if (id < 0) {
        log_debug("cluster '%s': HTTP/2 request to %s refused: %s", hc->upc.cluster->name,
                  hc->label, nghttp2_strerror(id));
        *refused = id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE;
        if (*refused)
            hc->no_new = true;
        stream_detach(s);
        return -EPROTO;
    }
    s->id = id;
    schedule_flush(hc);
    return 0;
}

void h2_stream_resume_body(h2_stream_t *s)
{
    h2_conn_t *hc = s->conn;
    if (hc == NULL || hc->state != H2C_OPEN || s->id <= 0)
        return;
    nghttp2_session_resume_data(hc->h2, s->id);
    schedule_flush(hc);
}

int h2_stream_submit_trailer(h2_stream_t *s, const nghttp2_nv *nv, size_t n)
{
    h2_conn_t *hc = s->conn;
    if (hc == NULL || hc->state != H2C_OPEN)
        return NGHTTP2_ERR_INVALID_STATE;
    return nghttp2_submit_trailer(hc->h2, s->id, nv, n);
}

void h2_stream_consume(h2_stream_t *s, size_t n)
{
    h2_conn_t *hc = s->conn;
    if (hc == NULL || hc->state != H2C_OPEN || s->id <= 0 || n == 0)
        return;
    nghttp2_session_consume_stream(hc->h2, s->id, n);
    schedule_flush(hc);
}

void h2_stream_want_flushed(h2_stream_t *s)
{
    s->want_flushed = true;
}

void h2_stream_release(h2_stream_t *s, uint32_t code)
{
    h2_conn_t *hc = s->conn;
    if (hc == NULL)
        return;
    if (hc->state == H2C_OPEN && s->id > 0) {
        /* A response that ended (NO_ERROR) needs a reset only while our side is still open
         * (the request body was cut short by an early answer). */
        nghttp2_stream *st = nghttp2_session_find_stream(hc->h2, s->id);
        if (st && nghttp2_stream_get_state(st) != NGHTTP2_STREAM_STATE_CLOSED &&
            (code != NGHTTP2_NO_ERROR ||
             nghttp2_session_get_stream_local_close(hc->h2, s->id) == 0))
            nghttp2_submit_rst_stream(hc->h2, NGHTTP2_FLAG_NONE, s->id, code);
    }
    /* The flush waits for the next turn: a connection closed now (retired, or no new streams)
     * goes without it, and the peer sees the close. */
    schedule_flush(hc);
    stream_detach(s);
}

const char *h2_stream_label(const h2_stream_t *s)
{
    return s->conn ? s->conn->label : "?";
}

/* ---- sweeping, snapshots, stop ------------------------------------------------------------- */

static void on_sweep(uv_timer_t *t)
{
    worker_t *w = t->data;
    h2_pool_set_t *ps = w->h2_pools;
    uint64_t now = uv_now(&w->loop);
    size_t left = 0;
    for (h2_pool_t *p = ps->pools, *pn; p; p = pn) {
        pn = p->next;
        for (h2_conn_t *hc = p->conns, *next; hc; hc = next) {
            next = hc->next;
            if (hc->state != H2C_OPEN || hc->n_streams) {
                left++;
                continue;
            }
            if (now - hc->idle_since >= H2P_IDLE_TIMEOUT_MS) {
                stats_inc(w->stats, hc->upc.cluster->st.upstream_cx_idle_timeout);
                stats_inc(w->stats, hc->upc.cluster->st.upstream_cx_destroy_local);
                conn_close(hc, false); /* may free p */
            } else {
                left++;
            }
        }
    }
    if (left == 0) {
        uv_timer_stop(&ps->sweep);
        ps->sweeping = false;
    }
}

/* Closes p's connections that carry no stream. */
static void close_idle(worker_t *w, h2_pool_t *p)
{
    for (h2_conn_t *hc = p->conns, *next; hc; hc = next) {
        next = hc->next;
        if (hc->n_streams == 0) {
            stats_inc(w->stats, hc->upc.cluster->st.upstream_cx_destroy_local);
            bool last = p->n_conns == 1;
            conn_close(hc, false);
            if (last)
                return; /* p may be gone */
        }
    }
}

void h2_pool_retire_snapshot(worker_t *w, snapshot_t *old)
{
    h2_pool_set_t *ps = w->h2_pools;
    if (ps == NULL)
        return;
    for (h2_pool_t *p = ps->pools, *pn; p; p = pn) {
        pn = p->next;
        if (p->retired || p->snap != old)
            continue;
        const snap_cluster_t *c =
            p->cluster->name ? snapshot_find_cluster(w->snap, p->cluster->name) : NULL;
        int ep = -1;
        bool keep = c && pool_cluster_compatible(p->cluster, c);
        if (keep && p->endpoint >= 0)
            keep = (ep = pool_endpoint_index(c, (const struct sockaddr *)&p->addr)) >= 0;
        if (keep) {
            p->cluster = c;
            p->endpoint = ep;
            for (h2_conn_t *hc = p->conns; hc; hc = hc->next)
                hc->upc.cluster = c;
            snapshot_unref(p->snap);
            p->snap = snapshot_ref(w->snap);
            continue;
        }
        p->retired = true;
        if (p->conns == NULL)
            pool_free(w, p);
        else
            close_idle(w, p);
    }
}

static void on_sweep_closed(uv_handle_t *h)
{
    free(h->data);
}

void h2_pool_close_all(worker_t *w)
{
    h2_pool_set_t *ps = w->h2_pools;
    if (ps == NULL)
        return;
    while (ps->pools) {
        h2_pool_t *p = ps->pools;
        p->retired = true;
        while (p->conns && p->conns->next)
            conn_fail(p->conns, UV_ECANCELED, "the worker stops");
        if (p->conns)
            conn_fail(p->conns, UV_ECANCELED, "the worker stops"); /* frees p */
        else
            pool_free(w, p);
    }
    ps->sweep.data = ps;
    uv_close((uv_handle_t *)&ps->sweep, on_sweep_closed);
    w->h2_pools = NULL;
}
