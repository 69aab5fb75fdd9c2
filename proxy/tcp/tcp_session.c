/* tcp_proxy's data path: one downstream and one upstream socket, bytes copied both ways.
 *
 * Reads land in pooled slabs and are forwarded with uv_try_write; whatever the kernel does not
 * take at once is queued with the slab attached. When the peer's write queue passes the high
 * watermark the reading side is paused, and resumed once it drains below half of it. EOF on one
 * side becomes a shutdown(SHUT_WR) of the other (half-close); the relay closes when both
 * directions have ended. A reset or error on either side resets the other.
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
#include <unistd.h>

#include "proxy/upstream/lb.h"
#include "proxy/core/log.h"
#include "proxy/net/tls_io.h"
#include "proxy/core/worker.h"

/* CONNECTING: TCP connect in flight. HANDSHAKE: connected, the upstream TLS handshake runs (still
 * under the connect timeout; the downstream is not read yet). OPEN: relaying. CLOSING: handles
 * are closing; callbacks only unwind. */
typedef enum { RELAY_CONNECTING, RELAY_HANDSHAKE, RELAY_OPEN, RELAY_CLOSING } relay_state_t;

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
    _Atomic int64_t *cx_open; /* the listener's open-connection count (listener_conn_closed) */
    const snap_cluster_t *cluster;
    const tcp_proxy_stat_ids_t *tst;
    relay_side_t down, up;
    uv_tcp_t up_tcp;
    uv_connect_t connect_req;
    uv_timer_t timer;
    uv_timer_t pump; /* with TLS: decrypts records already in a session after a resume */
    uint64_t idle_ms;
    uint64_t last_activity;
    size_t high_water;
    int endpoint_index;
    int handles_open;
    bool up_inited;
    bool pump_inited;
    char *initial; /* bytes read by protocol detection, sent upstream first (a pool slab) */
    size_t initial_len;
    bool up_counted;                 /* upstream_cx_active was incremented */
    struct sockaddr_storage up_addr; /* the endpoint picked, the TLS resumption key */
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

/* ---- upstream TLS resumption ------------------------------------------------------------ */

/* The relay has no pool to hang saved sessions on, so each worker keeps a small table of the
 * last session per (client config, endpoint address), replaced least recently used. The entry
 * holds a reference to the config: the pointer stays unique while the entry lives (a cluster
 * pointer could be reused by a later snapshot), and a new config (certificate rotation, changed
 * SAN matchers) misses, as Envoy's per-context session cache does. Worker thread only: the
 * table is thread-local because each worker is one thread; relay_abort_all frees it. */
#define RESUME_SLOTS 64

typedef struct resume_entry {
    tls_config_t *engine; /* reference held; NULL: free slot */
    struct sockaddr_storage addr;
    tls_saved_session_t *saved; /* owned */
    uint64_t used;              /* LRU clock */
} resume_entry_t;

static _Thread_local resume_entry_t *resume_table; /* RESUME_SLOTS entries, allocated on use */
static _Thread_local uint64_t resume_clock;

static bool same_endpoint(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}

static resume_entry_t *resume_find(const tls_config_t *engine, const struct sockaddr_storage *addr)
{
    if (resume_table == NULL)
        return NULL;
    for (size_t i = 0; i < RESUME_SLOTS; i++) {
        resume_entry_t *e = &resume_table[i];
        if (e->engine == engine && same_endpoint(&e->addr, addr))
            return e;
    }
    return NULL;
}

/* The saved session to offer (borrowed until the next resume_* call; tls_io_new copies it),
 * or NULL. */
static const tls_saved_session_t *resume_lookup(const tls_config_t *engine,
                                                const struct sockaddr_storage *addr)
{
    resume_entry_t *e = resume_find(engine, addr);
    if (e == NULL)
        return NULL;
    e->used = ++resume_clock;
    return e->saved;
}

/* Keeps saved (taken) for engine (borrowed; a reference is added) and addr. */
static void resume_store(tls_config_t *engine, const struct sockaddr_storage *addr,
                         tls_saved_session_t *saved)
{
    if (resume_table == NULL) {
        resume_table = calloc(RESUME_SLOTS, sizeof(*resume_table));
        if (resume_table == NULL) {
            tls_saved_session_free(saved);
            return;
        }
    }
    resume_entry_t *e = resume_find(engine, addr);
    if (e == NULL) {
        e = &resume_table[0];
        for (size_t i = 0; i < RESUME_SLOTS && e->engine; i++)
            if (resume_table[i].engine == NULL || resume_table[i].used < e->used)
                e = &resume_table[i];
        if (e->engine) {
            tls_config_unref(e->engine);
            tls_saved_session_free(e->saved);
        }
        e->engine = tls_config_ref(engine);
        e->addr = *addr;
        e->saved = NULL;
    }
    tls_saved_session_free(e->saved);
    e->saved = saved;
    e->used = ++resume_clock;
}

static void resume_table_free(void)
{
    if (resume_table == NULL)
        return;
    for (size_t i = 0; i < RESUME_SLOTS; i++) {
        if (resume_table[i].engine) {
            tls_config_unref(resume_table[i].engine);
            tls_saved_session_free(resume_table[i].saved);
        }
    }
    free(resume_table);
    resume_table = NULL;
}

static bool snapshot_has_engine(const snapshot_t *snap, const tls_config_t *engine)
{
    for (size_t i = 0; i < snap->n_clusters; i++)
        if (snap->clusters[i].tls && snap->clusters[i].tls->engine == engine)
            return true;
    return false;
}

void relay_snapshot_installed(worker_t *w)
{
    if (resume_table == NULL)
        return;
    /* Sessions of client configs the new snapshot no longer has (a rotated certificate, a
     * removed cluster) can never be offered again: drop them and the configs they hold. */
    for (size_t i = 0; i < RESUME_SLOTS; i++) {
        resume_entry_t *e = &resume_table[i];
        if (e->engine && !snapshot_has_engine(w->snap, e->engine)) {
            tls_config_unref(e->engine);
            tls_saved_session_free(e->saved);
            memset(e, 0, sizeof(*e));
        }
    }
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
    stats_slots_t *s = w->stats;
    listener_conn_closed(w, r->listener, r->cx_open);
    if (r->up_counted) {
        stats_add(s, r->cluster->st.upstream_cx_active, -1);
        atomic_fetch_sub_explicit(&r->cluster->shared->cx_active, 1, memory_order_relaxed);
    }
    cluster_lb_release(r->cluster, w->index, r->endpoint_index);
    bufpool_put(&w->pool, r->initial);
    tls_io_free(r->down.tls);
    tls_io_free(r->up.tls);
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

static void tls_handshake_failed(relay_t *r, int err);

/* A write of ciphertext to the TLS side `owner` completed (the tls_io's write callback). The
 * downstream's may be the end of the listener's handshake, before the relay is open. */
static void on_tls_written(void *owner, int status)
{
    relay_side_t *to = owner;
    relay_t *r = to->relay;
    if (r->state == RELAY_CLOSING)
        return;
    if (status < 0) {
        if (to->is_upstream && r->state == RELAY_HANDSHAKE) {
            tls_handshake_failed(r, status);
            return;
        }
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

static void relay_open(relay_t *r);
static void tls_handshake_done(relay_t *r);

/* A read on a TLS side: ciphertext into the session, then the handshake (upstream, until it is
 * complete) or plaintext out of it. */
static void on_read_tls(relay_side_t *side, ssize_t nread)
{
    relay_t *r = side->relay;
    if (nread == 0)
        return;
    if (nread > 0)
        tls_io_received(side->tls, (size_t)nread);
    if (r->state == RELAY_HANDSHAKE) {
        int rc = nread < 0 ? (int)nread : tls_io_handshake(side->tls);
        if (rc == TLS_ERR_WANT_READ)
            return;
        if (rc < 0) {
            tls_handshake_failed(r, rc);
            return;
        }
        tls_handshake_done(r);
        side_pump(side); /* records that came with the server's last flight */
        return;
    }
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

static void on_timer(uv_timer_t *t)
{
    relay_t *r = t->data;
    stats_slots_t *s = r->worker->stats;
    if (r->state == RELAY_CONNECTING || r->state == RELAY_HANDSHAKE) {
        stats_inc(s, r->cluster->st.upstream_cx_connect_timeout);
        stats_inc(s, r->cluster->st.upstream_cx_connect_fail);
        log_debug("relay: %s cluster '%s' timed out",
                  r->state == RELAY_HANDSHAKE ? "TLS handshake with" : "connect to",
                  r->cluster->name);
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

/* The upstream is ready (connected, and its TLS handshake done if any): relay both ways. */
static void relay_open(relay_t *r)
{
    r->state = RELAY_OPEN;
    r->last_activity = uv_now(&r->worker->loop);
    uv_timer_stop(&r->timer);
    if (r->idle_ms)
        uv_timer_start(&r->timer, on_timer, r->idle_ms, 0);
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
        uv_read_start((uv_stream_t *)&r->up_tcp, on_alloc, on_read);
}

/* The upstream TLS handshake failed (err: the engine's or libuv's code, for the log): counted as
 * the cluster's ssl.<reason> and a connect failure, and the downstream is reset as after a
 * failed connect. */
static void tls_handshake_failed(relay_t *r, int err)
{
    tls_fail_reason_t why = TLS_FAIL_CONNECTION_ERROR;
    const char *detail = uv_strerror(tls_io_uv_error(err));
    char msg[256];
    if (r->up.tls) {
        tls_session_t *ts = tls_io_session(r->up.tls);
        if (tls_session_fail_reason(ts) != TLS_FAIL_NONE)
            why = tls_session_fail_reason(ts);
        if (err == TLS_ERR_FAILED && log_current_level <= LOG_DEBUG)
            detail = tls_session_error(ts, msg, sizeof(msg));
    }
    count_tls_fail(&r->up, why);
    stats_inc(r->worker->stats, r->cluster->st.upstream_cx_connect_fail);
    log_debug("relay: TLS handshake with cluster '%s' failed: %s", r->cluster->name, detail);
    relay_close(r, true, true);
}

static void tls_handshake_done(relay_t *r)
{
    stats_slots_t *s = r->worker->stats;
    tls_session_t *ts = tls_io_session(r->up.tls);
    stats_inc(s, r->cluster->st.ssl.handshake);
    if (tls_session_resumed(ts)) {
        stats_inc(s, r->cluster->st.ssl.session_reused);
    } else {
        /* A resumed handshake brings no new ticket: only a full one is worth saving. */
        tls_saved_session_t *ss = tls_session_save(ts);
        if (ss)
            resume_store(r->cluster->tls->engine, &r->up_addr, ss);
    }
    relay_open(r);
}

/* Connected to a cluster with an UpstreamTlsContext: sends the ClientHello (offering the last
 * session with this endpoint) and reads the answer; the connect timeout keeps running. */
static void tls_start(relay_t *r)
{
    r->state = RELAY_HANDSHAKE;
    const tls_context_config_t *ctx = r->cluster->tls;
    tls_config_t *engine = ctx->engine;
    int rc = engine ? 0 : UV_EINVAL;
    if (rc == 0)
        rc = tls_io_new(engine, resume_lookup(engine, &r->up_addr), ctx->sni, ctx->peer_ids,
                        ctx->n_peer_ids, (uv_stream_t *)&r->up_tcp, &r->worker->pool, &r->up.tls);
    if (rc == 0) {
        tls_io_attach(r->up.tls, &r->up, on_tls_written);
        rc = uv_read_start((uv_stream_t *)&r->up_tcp, on_alloc, on_read);
    }
    if (rc == 0)
        rc = tls_io_handshake(r->up.tls);
    if (rc == TLS_ERR_WANT_READ)
        return;
    if (rc == 0)
        tls_handshake_done(r);
    else
        tls_handshake_failed(r, rc);
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
    uv_tcp_nodelay(&r->up_tcp, 1);
    if (r->cluster->tls)
        tls_start(r);
    else
        relay_open(r);
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
    r->cx_open = conn->cx_open;
    r->cluster = cluster;
    r->tst = tst;
    r->idle_ms = idle_timeout_ms;
    r->endpoint_index = -1;
    r->high_water = cluster->buffer_limit ? cluster->buffer_limit : DEFAULT_BUFFER_LIMIT;
    if (conn->listener->buffer_limit && conn->listener->buffer_limit < r->high_water)
        r->high_water = conn->listener->buffer_limit;
    r->down = (relay_side_t){.tcp = conn->tcp, .relay = r, .peer = &r->up, .tls = conn->tls};
    r->up = (relay_side_t){.tcp = &r->up_tcp, .relay = r, .peer = &r->down, .is_upstream = true};
    conn->tcp->data = &r->down;
    conn->tls = NULL;
    r->initial = conn->initial;
    r->initial_len = conn->initial_len;
    conn->initial = NULL;
    uv_timer_init(&w->loop, &r->timer);
    r->timer.data = r;
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

    if (cluster_pick(cluster, w->index, (const struct sockaddr *)&conn->orig_dst, &r->up_addr,
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
        rc = uv_tcp_connect(&r->connect_req, &r->up_tcp, (const struct sockaddr *)&r->up_addr,
                            on_connect);
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
    /* Nothing saves a session any more: the worker is stopping. */
    resume_table_free();
}
