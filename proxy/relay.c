/* tcp_proxy's data path: one downstream and one upstream socket, bytes copied both ways.
 *
 * Reads land in pooled slabs and are forwarded with uv_try_write; whatever the kernel does not
 * take at once is queued with the slab attached. When the peer's write queue passes the high
 * watermark the reading side is paused, and resumed once it drains below half of it. EOF on one
 * side becomes a shutdown(SHUT_WR) of the other (half-close); the relay closes when both
 * directions have ended. A reset or error on either side resets the other. */
#include "proxy/relay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/cluster.h"
#include "proxy/log.h"
#include "proxy/worker.h"

typedef enum { RELAY_CONNECTING, RELAY_OPEN, RELAY_CLOSING } relay_state_t;

typedef struct relay_side {
    uv_tcp_t *tcp;
    struct relay *relay;
    struct relay_side *peer;
    bool is_upstream;
    bool eof;       /* read side ended */
    bool paused;    /* reading stopped for backpressure */
    bool shut_sent; /* shutdown(SHUT_WR) queued on this side */
    bool shut_done;
    uv_shutdown_t shutdown_req;
} relay_side_t;

typedef struct relay {
    relay_state_t state;
    worker_t *worker;
    snapshot_t *snap;
    const snap_listener_t *listener;
    const snap_cluster_t *cluster;
    const tcp_proxy_stat_ids_t *tst;
    relay_side_t down, up;
    uv_tcp_t up_tcp;
    uv_connect_t connect_req;
    uv_timer_t timer;
    uint64_t idle_ms;
    uint64_t last_activity;
    size_t high_water;
    int endpoint_index;
    int handles_open;
    bool up_inited;
    char *initial; /* bytes read by protocol detection, sent upstream first (a pool slab) */
    size_t initial_len;
    bool up_counted; /* upstream_cx_active was incremented */
    struct relay *prev, *next;
} relay_t;

typedef struct relay_write {
    uv_write_t req;
    char *slab;
    relay_side_t *from; /* the side whose bytes these are */
} relay_write_t;

#define DEFAULT_BUFFER_LIMIT (1024 * 1024)

static void relay_close(relay_t *r, bool reset, bool remote);

static void relay_link(relay_t *r)
{
    worker_t *w = r->worker;
    r->next = w->relays;
    if (w->relays)
        w->relays->prev = r;
    w->relays = r;
}

static void relay_unlink(relay_t *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else if (r->worker->relays == r)
        r->worker->relays = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

static void relay_free(relay_t *r)
{
    worker_t *w = r->worker;
    stats_slots_t *s = w->stats;
    stats_add(s, r->listener->st.downstream_cx_active, -1);
    stats_inc(s, r->listener->st.downstream_cx_destroy);
    if (r->up_counted) {
        stats_add(s, r->cluster->st.upstream_cx_active, -1);
        atomic_fetch_sub_explicit(&r->cluster->shared->cx_active, 1, memory_order_relaxed);
    }
    cluster_lb_release(r->cluster, w->index, r->endpoint_index);
    atomic_fetch_sub_explicit(&w->active_conns, 1, memory_order_relaxed);
    bufpool_put(&w->pool, r->initial);
    snapshot_unref(r->snap);
    free(r->down.tcp);
    free(r);
}

static void on_handle_closed(uv_handle_t *h)
{
    relay_t *r = h->data;
    if (--r->handles_open == 0)
        relay_free(r);
}

static void close_handle(relay_t *r, uv_handle_t *h, bool reset)
{
    h->data = r;
    r->handles_open++;
    if (reset && h->type == UV_TCP && uv_tcp_close_reset((uv_tcp_t *)h, on_handle_closed) == 0)
        return;
    uv_close(h, on_handle_closed);
}

/* Ends the relay: resets both sockets (reset) or closes them gracefully. remote says whether
 * the upstream side ended it, for the destroy counters. */
static void relay_close(relay_t *r, bool reset, bool remote)
{
    if (r->state == RELAY_CLOSING)
        return;
    r->state = RELAY_CLOSING;
    relay_unlink(r);
    if (r->up_counted)
        stats_inc(r->worker->stats, remote ? r->cluster->st.upstream_cx_destroy_remote
                                           : r->cluster->st.upstream_cx_destroy_local);
    /* handles_open is raised by close_handle; hold one extra so an inline close callback cannot
     * free the relay before every handle is closing. */
    r->handles_open++;
    close_handle(r, (uv_handle_t *)r->down.tcp, reset);
    if (r->up_inited)
        close_handle(r, (uv_handle_t *)&r->up_tcp, reset);
    close_handle(r, (uv_handle_t *)&r->timer, false);
    if (--r->handles_open == 0)
        relay_free(r);
}

static void count_bytes(relay_t *r, relay_side_t *from, size_t n)
{
    stats_slots_t *s = r->worker->stats;
    if (from->is_upstream) {
        stats_add(s, r->cluster->st.upstream_cx_rx_bytes_total, (int64_t)n);
        stats_add(s, r->tst->downstream_cx_tx_bytes_total, (int64_t)n);
    } else {
        stats_add(s, r->tst->downstream_cx_rx_bytes_total, (int64_t)n);
        stats_add(s, r->cluster->st.upstream_cx_tx_bytes_total, (int64_t)n);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    relay_side_t *side = h->data;
    char *slab = bufpool_get(&side->relay->worker->pool);
    *buf = uv_buf_init(slab, slab ? BUFPOOL_SLAB_SIZE : 0);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void side_resume(relay_side_t *side)
{
    if (side->paused && !side->eof && side->relay->state == RELAY_OPEN) {
        side->paused = false;
        uv_read_start((uv_stream_t *)side->tcp, on_alloc, on_read);
    }
}

static void on_write(uv_write_t *req, int status)
{
    relay_write_t *wr = (relay_write_t *)req;
    relay_side_t *from = wr->from;
    relay_t *r = from->relay;
    bufpool_put(&r->worker->pool, wr->slab);
    free(wr);
    if (r->state == RELAY_CLOSING)
        return;
    if (status < 0) {
        log_debug("relay: write to %s failed: %s", from->is_upstream ? "downstream" : "upstream",
                  uv_strerror(status));
        relay_close(r, true, !from->is_upstream);
        return;
    }
    if (from->paused && from->peer->tcp->write_queue_size <= r->high_water / 2)
        side_resume(from);
}

/* Sends n bytes of slab (owned) from `from` to its peer. */
static int forward(relay_side_t *from, char *slab, size_t n)
{
    relay_t *r = from->relay;
    relay_side_t *to = from->peer;
    uv_buf_t b = uv_buf_init(slab, (unsigned)n);
    if (to->tcp->write_queue_size == 0) {
        int sent = uv_try_write((uv_stream_t *)to->tcp, &b, 1);
        if (sent == (int)n) {
            bufpool_put(&r->worker->pool, slab);
            return 0;
        }
        if (sent > 0) {
            b.base += sent;
            b.len -= (size_t)sent;
        } else if (sent != UV_EAGAIN && sent != UV_ENOSYS) {
            bufpool_put(&r->worker->pool, slab);
            return sent;
        }
    }
    relay_write_t *wr = malloc(sizeof(*wr));
    if (wr == NULL) {
        bufpool_put(&r->worker->pool, slab);
        return UV_ENOMEM;
    }
    wr->slab = slab;
    wr->from = from;
    int rc = uv_write(&wr->req, (uv_stream_t *)to->tcp, &b, 1, on_write);
    if (rc < 0) {
        bufpool_put(&r->worker->pool, slab);
        free(wr);
        return rc;
    }
    if (to->tcp->write_queue_size > r->high_water && !from->paused) {
        from->paused = true;
        uv_read_stop((uv_stream_t *)from->tcp);
    }
    return 0;
}

static void maybe_finish(relay_t *r)
{
    if (r->down.eof && r->up.eof && r->down.shut_done && r->up.shut_done)
        relay_close(r, false, false);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    relay_side_t *side = req->data;
    relay_t *r = side->relay;
    if (r->state == RELAY_CLOSING)
        return;
    if (status < 0) {
        relay_close(r, true, side->is_upstream);
        return;
    }
    side->shut_done = true;
    maybe_finish(r);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    relay_side_t *side = stream->data;
    relay_t *r = side->relay;
    if (nread > 0) {
        r->last_activity = uv_now(&r->worker->loop);
        count_bytes(r, side, (size_t)nread);
        int rc = forward(side, buf->base, (size_t)nread);
        if (rc < 0) {
            log_debug("relay: forward failed: %s", uv_strerror(rc));
            relay_close(r, true, !side->is_upstream);
        }
        return;
    }
    bufpool_put(&r->worker->pool, buf->base);
    if (nread == 0)
        return;
    if (buf->base == NULL && nread == UV_ENOBUFS) {
        relay_close(r, true, false);
        return;
    }
    if (nread == UV_EOF) {
        side->eof = true;
        uv_read_stop(stream);
        relay_side_t *to = side->peer;
        if (side->is_upstream)
            stats_inc(r->worker->stats, r->tst->upstream_flush_total);
        /* The last direction ended and nothing is left to write: close() sends the FIN, so a
         * shutdown() first would only cost a syscall. */
        if (to->eof && side->shut_done && to->tcp->write_queue_size == 0) {
            relay_close(r, false, side->is_upstream);
            return;
        }
        if (!to->shut_sent) {
            to->shut_sent = true;
            to->shutdown_req.data = to;
            if (uv_shutdown(&to->shutdown_req, (uv_stream_t *)to->tcp, on_shutdown) < 0) {
                relay_close(r, true, side->is_upstream);
                return;
            }
        }
        maybe_finish(r);
        return;
    }
    log_debug("relay: read from %s: %s", side->is_upstream ? "upstream" : "downstream",
              uv_strerror((int)nread));
    relay_close(r, true, side->is_upstream);
}

static void on_timer(uv_timer_t *t)
{
    relay_t *r = t->data;
    stats_slots_t *s = r->worker->stats;
    if (r->state == RELAY_CONNECTING) {
        stats_inc(s, r->cluster->st.upstream_cx_connect_timeout);
        stats_inc(s, r->cluster->st.upstream_cx_connect_fail);
        log_debug("relay: connect to cluster '%s' timed out", r->cluster->name);
        relay_close(r, true, true);
        return;
    }
    if (r->state != RELAY_OPEN || r->idle_ms == 0)
        return;
    uint64_t idle_for = uv_now(&r->worker->loop) - r->last_activity;
    if (idle_for >= r->idle_ms) {
        stats_inc(s, r->tst->idle_timeout);
        relay_close(r, false, false);
        return;
    }
    uv_timer_start(&r->timer, on_timer, r->idle_ms - idle_for, 0);
}

static void on_connect(uv_connect_t *req, int status)
{
    relay_t *r = req->data;
    if (r->state == RELAY_CLOSING)
        return;
    if (status < 0) {
        stats_inc(r->worker->stats, r->cluster->st.upstream_cx_connect_fail);
        log_debug("relay: connect to cluster '%s' failed: %s", r->cluster->name,
                  uv_strerror(status));
        relay_close(r, true, true);
        return;
    }
    r->state = RELAY_OPEN;
    r->last_activity = uv_now(&r->worker->loop);
    uv_timer_stop(&r->timer);
    if (r->idle_ms)
        uv_timer_start(&r->timer, on_timer, r->idle_ms, 0);
    uv_tcp_nodelay(&r->up_tcp, 1);
    if (r->initial) {
        char *slab = r->initial;
        r->initial = NULL;
        count_bytes(r, &r->down, r->initial_len);
        if (forward(&r->down, slab, r->initial_len) < 0) {
            relay_close(r, true, false);
            return;
        }
    }
    uv_read_start((uv_stream_t *)r->down.tcp, on_alloc, on_read);
    uv_read_start((uv_stream_t *)&r->up_tcp, on_alloc, on_read);
}

/* Binds the upstream socket to the cluster's source address. IP_BIND_ADDRESS_NO_PORT defers the
 * port choice to connect(), so many connections from one source IP do not exhaust ports. */
int bind_source(uv_tcp_t *tcp, const snap_cluster_t *c)
{
    int fd = socket(c->bind_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return uv_translate_sys_error(errno);
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    int rc = uv_tcp_open(tcp, fd);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return uv_tcp_bind(tcp, (const struct sockaddr *)&c->bind_addr, 0);
}

int relay_start(accepted_conn_t *conn, const snap_cluster_t *cluster,
                const tcp_proxy_stat_ids_t *tst, uint64_t idle_timeout_ms)
{
    worker_t *w = conn->worker;
    relay_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->worker = w;
    r->snap = snapshot_ref(conn->snap);
    r->listener = conn->listener;
    r->cluster = cluster;
    r->tst = tst;
    r->idle_ms = idle_timeout_ms;
    r->endpoint_index = -1;
    r->high_water = cluster->buffer_limit ? cluster->buffer_limit : DEFAULT_BUFFER_LIMIT;
    if (conn->listener->buffer_limit && conn->listener->buffer_limit < r->high_water)
        r->high_water = conn->listener->buffer_limit;
    r->down = (relay_side_t){.tcp = conn->tcp, .relay = r, .peer = &r->up};
    r->up = (relay_side_t){.tcp = &r->up_tcp, .relay = r, .peer = &r->down, .is_upstream = true};
    conn->tcp->data = &r->down;
    r->initial = conn->initial;
    r->initial_len = conn->initial_len;
    conn->initial = NULL;
    uv_timer_init(&w->loop, &r->timer);
    r->timer.data = r;
    relay_link(r);
    stats_inc(w->stats, tst->downstream_cx_total);
    uv_tcp_nodelay(conn->tcp, 1);

    struct sockaddr_storage addr;
    if (cluster_pick(cluster, w->index, (const struct sockaddr *)&conn->orig_dst, &addr,
                     &r->endpoint_index) < 0) {
        stats_inc(w->stats, cluster->st.upstream_cx_none_healthy);
        log_debug("relay: cluster '%s' has no endpoint", cluster->name);
        relay_close(r, true, false);
        return 0;
    }
    /* Circuit breaking: Envoy's tcp_proxy closes the connection once the cluster's
     * max_connections are open. */
    if (atomic_fetch_add_explicit(&cluster->shared->cx_active, 1, memory_order_relaxed) >=
        cluster->max_connections) {
        atomic_fetch_sub_explicit(&cluster->shared->cx_active, 1, memory_order_relaxed);
        stats_inc(w->stats, cluster->st.upstream_cx_overflow);
        relay_close(r, true, false);
        return 0;
    }
    uv_tcp_init(&w->loop, &r->up_tcp);
    r->up_tcp.data = &r->up;
    r->up_inited = true;
    r->up_counted = true;
    stats_inc(w->stats, cluster->st.upstream_cx_total);
    stats_inc(w->stats, cluster->st.upstream_cx_active);
    r->connect_req.data = r;
    int rc = cluster->has_bind ? bind_source(&r->up_tcp, cluster) : 0;
    if (rc == 0)
        rc =
            uv_tcp_connect(&r->connect_req, &r->up_tcp, (const struct sockaddr *)&addr, on_connect);
    if (rc < 0) {
        stats_inc(w->stats, cluster->st.upstream_cx_connect_fail);
        log_debug("relay: connect to cluster '%s': %s", cluster->name, uv_strerror(rc));
        relay_close(r, true, true);
        return 0;
    }
    uint64_t ct = cluster->connect_timeout_ms ? cluster->connect_timeout_ms : 5000;
    uv_timer_start(&r->timer, on_timer, ct, 0);
    return 0;
}

void relay_abort_all(worker_t *w)
{
    while (w->relays)
        relay_close(w->relays, true, false);
}
