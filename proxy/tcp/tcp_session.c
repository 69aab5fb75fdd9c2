/* tcp_proxy's data path: one downstream and one upstream socket, bytes copied both ways.
 *
 * Reads land in pooled slabs and are forwarded with uv_try_write; whatever the kernel does not
 * take at once is queued with the slab attached. When the peer's write queue passes the high
 * watermark the reading side is paused, and resumed once it drains below half of it. EOF on one
 * side becomes a shutdown(SHUT_WR) of the other (half-close); the relay closes when both
 * directions have ended. A reset or error on either side resets the other.
 *
 * The upstream connection is made, timed, made TLS and counted by
 * proxy/upstream/upstream_connect.c, as the HTTP pools' are; the relay reads and writes it once it
 * is ready.
 *
 * Either side may speak TLS (proxy/net/tls_io.h): the downstream when the listener terminated it
 * (DownstreamTlsContext), the upstream when the cluster has an UpstreamTlsContext. A TLS side
 * reads ciphertext into its session and is pumped for plaintext into slabs, which then travel
 * exactly as plaintext reads do; bytes for a TLS side are encrypted at once (the slab goes back
 * to the pool) and its write queue is the session's pending ciphertext. */
#include "proxy/tcp/tcp_session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/core/log.h"
#include "proxy/core/worker.h"
#include "proxy/listener/chain_match.h"
#include "proxy/net/tls_io.h"
#include "proxy/upstream/lb.h"
#include "proxy/upstream/upstream_connect.h"

/* CONNECTING: the upstream connection is being made (TCP connect, then the TLS handshake if
 * any; the downstream is not read yet). OPEN: relaying. CLOSING: handles are closing; callbacks
 * only unwind. */
typedef enum { RELAY_CONNECTING, RELAY_OPEN, RELAY_CLOSING } relay_state_t;

typedef struct relay_side {
    uv_tcp_t *tcp;
    struct relay *relay;
    struct relay_side *peer;
    tls_io_t *tls; /* owned, freed after the handle closed; NULL: plaintext */
    bool is_upstream;
    bool eof;       /* read side ended (FIN, or the peer's close_notify once decrypted up to it) */
    bool tcp_eof;   /* TLS: the socket's FIN arrived; records before it may still be pumped */
    bool paused;    /* reading stopped for backpressure */
    bool shut_sent; /* shutdown(SHUT_WR) queued on this side (after a close_notify with TLS) */
    bool shut_done;
    uv_shutdown_t shutdown_req;
} relay_side_t;

typedef struct relay {
    relay_state_t state;
    worker_t *worker;
    snapshot_t *snap;
    const snap_listener_t *listener;
    const snap_chain_t *chain; /* the chain it was matched to, in snap; NULL if unknown */
    worker_listener_t *wl;     /* the listener it came in on (listener_conn_closed) */
    /* Loop time by which it is closed if still open (worker_drain_deadline): a new snapshot
     * closed its listener or changed its chain. 0: no such deadline. */
    uint64_t drain_due_ms;
    const snap_cluster_t *cluster;
    const tcp_proxy_stat_ids_t *tst;
    relay_side_t down, up;
    upstream_connect_t upc; /* the upstream socket; its timer is the idle timeout once open */
    uv_timer_t pump;        /* with TLS: decrypts records already in a session after a resume */
    uint64_t idle_ms;
    uint64_t last_activity;
    size_t high_water;
    int endpoint_index;
    int handles_open;
    bool pump_inited;
    char *initial; /* bytes read by protocol detection, sent upstream first (a pool slab) */
    size_t initial_len;
    struct relay *prev, *next;
} relay_t;

typedef struct relay_write {
    uv_write_t req;
    char *slab;
    relay_side_t *from; /* the side whose bytes these are */
} relay_write_t;

#define DEFAULT_BUFFER_LIMIT (1024 * 1024)
/* A TLS side's queue is the session's output, which refuses writes past the engine's mark
 * (64 MiB, xds/snapshot/snapshot_tls.c); a lower watermark keeps tls_io_write clear of it. */
#define TLS_BUFFER_LIMIT (16u << 20)

static void relay_close(relay_t *r, bool reset, bool remote);
static void side_pump(relay_side_t *side);

/* Whether r's listener and chain are gone from w's snapshot: its listener was closed, or the
 * listener of its name has no chain built from the same FilterChain message. */
static bool relay_config_gone(const relay_t *r, const worker_t *w)
{
    if (listener_retired(r->wl))
        return true;
    if (r->chain == NULL)
        return false;
    const snap_listener_t *l = snapshot_find_listener(w->snap, r->listener->name);
    return l == NULL || chain_find_by_hash(l, r->chain->config_hash) == NULL;
}

void relay_snapshot_installed(worker_t *w)
{
    upstream_connect_snapshot_installed(w);
    /* A byte stream has no request boundary to stop at: sessions of a changed chain or a
     * closed listener go on, as in Envoy, until the drain time is over. */
    for (relay_t *r = w->relays; r; r = r->next)
        if (r->drain_due_ms == 0 && relay_config_gone(r, w)) {
            r->drain_due_ms = worker_drain_deadline(w);
            log_debug("relay: listener '%s': the session's filter chain changed: it is closed "
                      "in %llu ms unless it ends first",
                      r->listener->name, (unsigned long long)w->drain_timeout_ms);
        }
}

uint64_t relay_drain_expired(worker_t *w, uint64_t now)
{
    uint64_t next_due = 0;
    unsigned n = 0;
    relay_t *r = w->relays, *next;
    for (; r; r = next) {
        next = r->next;
        if (r->drain_due_ms == 0)
            continue;
        if (r->drain_due_ms > now) {
            if (next_due == 0 || r->drain_due_ms < next_due)
                next_due = r->drain_due_ms;
            continue;
        }
        /* Both ways, as the idle timeout closes (counted as upstream_cx_destroy_local). */
        relay_close(r, false, false);
        n++;
    }
    if (n)
        log_info("worker %u: drain time over: %u tcp_proxy session(s) of a changed or removed "
                 "listener closed",
                 w->index, n);
    return next_due;
}

/* ---- lifetime --------------------------------------------------------------------------- */

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

/* Runs once every handle is closed, so no write callback can still use a tls_io. */
static void relay_free(relay_t *r)
{
    worker_t *w = r->worker;
    listener_conn_closed(w, r->listener, r->wl);
    cluster_lb_release(r->cluster, w->index, r->endpoint_index);
    bufpool_put(&w->pool, r->initial);
    tls_io_free(r->down.tls);
    upstream_connect_free(&r->upc); /* r->up.tls */
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

static void on_shutdown(uv_shutdown_t *req, int status);

/* A graceful close (idle timeout) of a TLS side that has not ended its writing: our close_notify
 * leaves if the socket takes it at once, as Envoy's best-effort SSL_shutdown before closing;
 * nothing waits for it (the close cancels what is still queued). */
static void side_close_notify(relay_side_t *side)
{
    if (side->tls == NULL || side->shut_sent)
        return;
    side->shut_sent = true;
    side->shutdown_req.data = side;
    (void)tls_io_shutdown(side->tls, &side->shutdown_req, on_shutdown);
}

/* Ends the relay: resets both sockets (reset) or closes them gracefully. remote says whether
 * the upstream side ended it, for the destroy counters. */
static void relay_close(relay_t *r, bool reset, bool remote)
{
    if (r->state == RELAY_CLOSING)
        return;
    bool was_open = r->state == RELAY_OPEN;
    r->state = RELAY_CLOSING;
    relay_unlink(r);
    if (was_open && !reset) {
        side_close_notify(&r->down);
        side_close_notify(&r->up);
    }
    if (r->upc.counted)
        stats_inc(r->worker->stats, remote ? r->cluster->st.upstream_cx_destroy_remote
                                           : r->cluster->st.upstream_cx_destroy_local);
    /* handles_open is raised by close_handle; hold one extra so an inline close callback cannot
     * free the relay before every handle is closing. */
    r->handles_open++;
    close_handle(r, (uv_handle_t *)r->down.tcp, reset);
    if (upstream_connect_started(&r->upc)) {
        r->handles_open += 2;
        upstream_connect_close(&r->upc, reset, r, on_handle_closed);
    }
    if (r->pump_inited)
        close_handle(r, (uv_handle_t *)&r->pump, false);
    if (--r->handles_open == 0)
        relay_free(r);
}

/* ---- data path -------------------------------------------------------------------------- */

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

/* Counts a TLS failure of side under its context's ssl.* stats: the cluster's upstream, the
 * listener's downstream. */
static void count_tls_fail(relay_side_t *side, tls_fail_reason_t why)
{
    relay_t *r = side->relay;
    const ssl_stat_ids_t *ssl = side->is_upstream ? &r->cluster->st.ssl : &r->listener->st.ssl;
    if (why == TLS_FAIL_NONE || why >= TLS_FAIL_COUNT)
        why = TLS_FAIL_CONNECTION_ERROR;
    stats_inc(r->worker->stats, ssl->fail[why]);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    relay_side_t *side = h->data;
    if (side->tls) {
        tls_io_alloc(side->tls, buf);
        return;
    }
    char *slab = bufpool_get(&side->relay->worker->pool);
    *buf = uv_buf_init(slab, slab ? BUFPOOL_SLAB_SIZE : 0);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void on_pump(uv_timer_t *t)
{
    relay_t *r = t->data;
    if (r->down.tls)
        side_pump(&r->down);
    if (r->up.tls)
        side_pump(&r->up);
}

/* Starts reading side. A TLS session may already hold records no socket read will announce
 * (read with the handshake, or left when the side was paused): decrypt them from the next loop
 * iteration rather than inside the callback that resumed reading. */
static void side_read_start(relay_side_t *side)
{
    relay_t *r = side->relay;
    if (!side->tcp_eof)
        uv_read_start((uv_stream_t *)side->tcp, on_alloc, on_read);
    if (side->tls && r->pump_inited)
        uv_timer_start(&r->pump, on_pump, 0, 0);
}

static void side_pause(relay_side_t *side)
{
    side->paused = true;
    uv_read_stop((uv_stream_t *)side->tcp);
}

static void side_resume(relay_side_t *side)
{
    if (side->paused && !side->eof && side->relay->state == RELAY_OPEN) {
        side->paused = false;
        side_read_start(side);
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

/* A write of ciphertext to the TLS side `owner` completed (the tls_io's write callback). The
 * downstream's may be the end of the listener's handshake, before the relay is open; the
 * upstream's are the relay's once its handshake is done. */
static void on_tls_written(void *owner, int status)
{
    relay_side_t *to = owner;
    relay_t *r = to->relay;
    if (r->state == RELAY_CLOSING)
        return;
    if (status < 0) {
        log_debug("relay: write to %s failed: %s", to->is_upstream ? "upstream" : "downstream",
                  uv_strerror(status));
        relay_close(r, true, to->is_upstream);
        return;
    }
    relay_side_t *from = to->peer;
    if (from->paused && tls_io_queue_size(to->tls) <= r->high_water / 2)
        side_resume(from);
}

/* Sends n bytes of slab (owned) from `from` to its TLS peer: encrypted now, so the slab goes
 * back at once and the queue is the session's pending ciphertext. */
static int forward_tls(relay_side_t *from, char *slab, size_t n)
{
    relay_t *r = from->relay;
    relay_side_t *to = from->peer;
    uv_buf_t b = uv_buf_init(slab, (unsigned)n);
    int rc = tls_io_write(to->tls, &b, 1);
    bufpool_put(&r->worker->pool, slab);
    if (rc < 0)
        return rc;
    if (tls_io_queue_size(to->tls) > r->high_water && !from->paused)
        side_pause(from);
    return 0;
}

/* Sends n bytes of slab (owned) from `from` to its peer. */
static int forward(relay_side_t *from, char *slab, size_t n)
{
    relay_t *r = from->relay;
    relay_side_t *to = from->peer;
    if (to->tls)
        return forward_tls(from, slab, n);
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
    if (to->tcp->write_queue_size > r->high_water && !from->paused)
        side_pause(from);
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

/* The read direction of side ended: a FIN, or the peer's close_notify. It becomes a
 * shutdown(SHUT_WR) of the other side, preceded there by our close_notify when that side speaks
 * TLS. TLS has no half-close of its own, but a TLS 1.2 session may go on reading after sending
 * close_notify and writing after receiving one, so the other direction keeps flowing until it
 * ends too, as with plaintext; a peer that closes at once on close_notify just ends it sooner. */
static void side_end(relay_side_t *side)
{
    relay_t *r = side->relay;
    relay_side_t *to = side->peer;
    side->eof = true;
    uv_read_stop((uv_stream_t *)side->tcp);
    if (side->is_upstream)
        stats_inc(r->worker->stats, r->tst->upstream_flush_total);
    /* The last direction ended and nothing is left to write: close() sends the FIN, so a
     * shutdown() first would only cost a syscall. A TLS side still needs its close_notify. */
    if (to->eof && side->shut_done && to->tls == NULL && to->tcp->write_queue_size == 0) {
        relay_close(r, false, side->is_upstream);
        return;
    }
    if (!to->shut_sent) {
        to->shut_sent = true;
        to->shutdown_req.data = to;
        int rc = to->tls ? tls_io_shutdown(to->tls, &to->shutdown_req, on_shutdown)
                         : uv_shutdown(&to->shutdown_req, (uv_stream_t *)to->tcp, on_shutdown);
        if (rc < 0) {
            relay_close(r, true, side->is_upstream);
            return;
        }
        if (r->state == RELAY_CLOSING) /* tls_io_shutdown reported a failed shutdown inline */
            return;
    }
    maybe_finish(r);
}

/* Decrypts what side's session holds into slabs and forwards them, until nothing complete is
 * left, the peer's queue pauses the side, or the direction ends. */
static void side_pump(relay_side_t *side)
{
    relay_t *r = side->relay;
    while (r->state == RELAY_OPEN && !side->paused && !side->eof) {
        char *slab = bufpool_get(&r->worker->pool);
        if (slab == NULL) {
            relay_close(r, true, false);
            return;
        }
        ssize_t n = tls_io_decrypt(side->tls, slab, BUFPOOL_SLAB_SIZE);
        if (r->state != RELAY_OPEN) { /* sending an alert failed our pending shutdown */
            bufpool_put(&r->worker->pool, slab);
            return;
        }
        if (n > 0) {
            r->last_activity = uv_now(&r->worker->loop);
            count_bytes(r, side, (size_t)n);
            int rc = forward(side, slab, (size_t)n);
            if (rc < 0) {
                log_debug("relay: forward failed: %s", uv_strerror(rc));
                relay_close(r, true, !side->is_upstream);
                return;
            }
            continue;
        }
        bufpool_put(&r->worker->pool, slab);
        if (n == 0 && !side->tcp_eof)
            return; /* wait for more ciphertext */
        if (n == 0 || n == UV_EOF) {
            /* A FIN before the peer's close_notify is a truncation: counted, then relayed as the
             * end of this direction like any FIN (the bytes inside carry their own framing). */
            if (n == 0 && tls_session_state(tls_io_session(side->tls)) == TLS_STATE_OPEN) {
                count_tls_fail(side, TLS_FAIL_CONNECTION_ERROR);
                log_debug("relay: %s closed TLS without close_notify",
                          side->is_upstream ? "upstream" : "downstream");
            }
            side_end(side);
            return;
        }
        count_tls_fail(side, tls_session_fail_reason(tls_io_session(side->tls)));
        if (log_current_level <= LOG_DEBUG) {
            char msg[256];
            log_debug("relay: TLS from %s failed: %s",
                      side->is_upstream ? "upstream" : "downstream",
                      tls_session_error(tls_io_session(side->tls), msg, sizeof(msg)));
        }
        relay_close(r, true, side->is_upstream);
        return;
    }
}

/* A read on a TLS side: the upstream's handshake until it is complete, then ciphertext into the
 * session and plaintext out of it. */
static void on_read_tls(relay_side_t *side, ssize_t nread)
{
    relay_t *r = side->relay;
    if (nread == 0)
        return;
    if (side->is_upstream && upstream_connect_handshaking(&r->upc)) {
        upstream_connect_read(&r->upc, nread);
        return;
    }
    if (nread > 0)
        tls_io_received(side->tls, (size_t)nread);
    if (nread == UV_EOF) {
        side->tcp_eof = true;
        uv_read_stop((uv_stream_t *)side->tcp);
    } else if (nread < 0) {
        log_debug("relay: read from %s: %s", side->is_upstream ? "upstream" : "downstream",
                  uv_strerror((int)nread));
        relay_close(r, true, side->is_upstream);
        return;
    }
    side_pump(side);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    relay_side_t *side = stream->data;
    relay_t *r = side->relay;
    if (side->tls) {
        on_read_tls(side, nread);
        return;
    }
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
        side_end(side);
        return;
    }
    log_debug("relay: read from %s: %s", side->is_upstream ? "upstream" : "downstream",
              uv_strerror((int)nread));
    relay_close(r, true, side->is_upstream);
}

/* ---- connecting ------------------------------------------------------------------------- */

/* The idle timeout, on the upstream connection's timer once the relay is open. */
static void on_idle_timer(uv_timer_t *t)
{
    relay_t *r = t->data;
    if (r->state != RELAY_OPEN)
        return;
    uint64_t idle_for = uv_now(&r->worker->loop) - r->last_activity;
    if (idle_for >= r->idle_ms) {
        stats_inc(r->worker->stats, r->tst->idle_timeout);
        relay_close(r, false, false);
        return;
    }
    uv_timer_start(t, on_idle_timer, r->idle_ms - idle_for, 0);
}

/* The upstream is ready (connected, and its TLS handshake done if any): relay both ways. */
static void relay_open(relay_t *r)
{
    r->state = RELAY_OPEN;
    r->last_activity = uv_now(&r->worker->loop);
    if (r->idle_ms) {
        r->upc.timer.data = r;
        uv_timer_start(&r->upc.timer, on_idle_timer, r->idle_ms, 0);
    }
    if (r->initial) {
        char *slab = r->initial;
        r->initial = NULL;
        count_bytes(r, &r->down, r->initial_len);
        if (forward(&r->down, slab, r->initial_len) < 0) {
            relay_close(r, true, false);
            return;
        }
    }
    side_read_start(&r->down);
    if (r->up.tls == NULL) /* a TLS upstream has been read since the handshake began */
        uv_read_start((uv_stream_t *)&r->upc.tcp, on_alloc, on_read);
}

/* The upstream connection is ready (connected, and its TLS handshake done if any), or failed
 * (counted and logged already): then the downstream is reset. */
static void on_upstream_connected(void *owner, int status)
{
    relay_t *r = owner;
    if (status < 0) {
        relay_close(r, true, true);
        return;
    }
    if (r->up.tls)
        tls_io_attach(r->up.tls, &r->up, on_tls_written);
    relay_open(r);
    if (r->up.tls)
        side_pump(&r->up); /* records that came with the server's last flight */
}

static const upstream_connect_ops_t relay_upstream_ops = {
    .connected = on_upstream_connected,
    .alloc = on_alloc,
    .read = on_read,
};

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
    r->chain = conn->chain;
    r->wl = conn->wl;
    if (listener_retired(conn->wl)) /* its listener went away while detection held it */
        r->drain_due_ms = worker_drain_deadline(w);
    r->cluster = cluster;
    r->tst = tst;
    r->idle_ms = idle_timeout_ms;
    r->endpoint_index = -1;
    r->high_water = cluster->buffer_limit ? cluster->buffer_limit : DEFAULT_BUFFER_LIMIT;
    if (conn->listener->buffer_limit && conn->listener->buffer_limit < r->high_water)
        r->high_water = conn->listener->buffer_limit;
    r->down = (relay_side_t){.tcp = conn->tcp, .relay = r, .peer = &r->up, .tls = conn->tls};
    r->up = (relay_side_t){.tcp = &r->upc.tcp, .relay = r, .peer = &r->down, .is_upstream = true};
    conn->tcp->data = &r->down;
    conn->tls = NULL;
    r->initial = conn->initial;
    r->initial_len = conn->initial_len;
    conn->initial = NULL;
    if (r->down.tls || cluster->tls) {
        if (r->down.tls)
            tls_io_attach(r->down.tls, &r->down, on_tls_written);
        uv_timer_init(&w->loop, &r->pump);
        r->pump.data = r;
        r->pump_inited = true;
        if (r->high_water > TLS_BUFFER_LIMIT)
            r->high_water = TLS_BUFFER_LIMIT;
    }
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
    /* Over the cluster's max_connections Envoy's tcp_proxy closes the connection. */
    int rc = upstream_connect_start(&r->upc, w, cluster, (const struct sockaddr *)&addr, r,
                                    &relay_upstream_ops);
    r->upc.tcp.data = &r->up;
    r->up.tls = r->upc.tls;
    if (rc < 0)
        relay_close(r, true, rc != UV_EBUSY);
    return 0;
}

void relay_abort_all(worker_t *w)
{
    while (w->relays)
        relay_close(w->relays, true, false);
}
