/* Upstream HTTP/1.1 connection pools, one set per worker: reuse idle keep-alive connections,
 * make new ones (proxy/upstream/upstream_connect.c connects, times out, makes TLS and counts
 * them), drop idle ones the server closed or that sat too long, and, when the worker swaps
 * snapshots, move the pools whose cluster the new snapshot still has with the same connection
 * settings and endpoint address to it, and retire the others (certificate rotation, changed
 * cluster, endpoint gone). */
#include "proxy/upstream/h1_pool.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/core/log.h"
#include "proxy/net/stream_write.h"
#include "proxy/upstream/cluster_state.h"
#include "proxy/net/tls_io.h"

#define POOL_MAX_IDLE        128
#define POOL_IDLE_TIMEOUT_MS 60000
#define POOL_SWEEP_MS        1000
#define UC_BUF_MAX           (256 * 1024)
#define UC_HIGH_WATER        (1024 * 1024)

typedef struct pool {
    const snap_cluster_t *cluster; /* points into the snapshot of the pool's generation */
    int endpoint;                  /* -1 for ORIGINAL_DST clusters: then addr tells pools apart */
    struct sockaddr_storage addr;
    upstream_conn_t *idle; /* most recently used first */
    size_t n_idle;
    size_t n_conns; /* connections not yet closing: connecting, busy and idle */
    /* Out of every lookup list, with no idle connection: freed when n_conns falls to 0. Its
     * busy connections' owners hold the snapshot that keeps `cluster` valid until then. */
    bool retired;
    struct pool *next;
} pool_t;

/* The pools whose clusters belong to one snapshot. Idle connections hold no snapshot reference,
 * so the generation holds one for them: a cluster pointer used as a key stays valid (and unique:
 * a later snapshot cannot reuse its address) for as long as the pool can be found. The
 * generation of a snapshot the worker swapped out stays while connections that started with it
 * may still ask for upstreams, and goes once only generations hold the snapshot (gen_unused). */
typedef struct pool_gen {
    snapshot_t *snap; /* reference held */
    pool_t *pools;
    struct pool_gen *next;
} pool_gen_t;

typedef struct pool_set {
    pool_gen_t *gens; /* newest first */
    uv_timer_t sweep; /* idle timeouts, and dropping generations of swapped-out snapshots */
    bool sweeping;
} pool_set_t;

static void uc_close(upstream_conn_t *uc);
static void on_sweep(uv_timer_t *t);

static pool_set_t *pool_set(worker_t *w)
{
    if (w->pools == NULL) {
        pool_set_t *ps = calloc(1, sizeof(*ps));
        if (ps == NULL)
            return NULL;
        uv_timer_init(&w->loop, &ps->sweep);
        ps->sweep.data = w;
        w->pools = ps;
    }
    return w->pools;
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

static pool_gen_t *gen_new(pool_set_t *ps, snapshot_t *snap)
{
    pool_gen_t *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    g->snap = snapshot_ref(snap);
    g->next = ps->gens;
    ps->gens = g;
    return g;
}

/* The generation c belongs to; created for the worker's current snapshot on first use. NULL
 * when c belongs to a snapshot with no generation any more, or when out of memory. */
static pool_gen_t *gen_find(pool_set_t *ps, worker_t *w, const snap_cluster_t *c)
{
    for (pool_gen_t *g = ps->gens; g; g = g->next)
        if (snap_has_cluster(g->snap, c))
            return g;
    return snap_has_cluster(w->snap, c) ? gen_new(ps, w->snap) : NULL;
}

/* A retired pool goes with its last connection. */
static void pool_free_if_unused(pool_t *p)
{
    if (p->retired && p->n_conns == 0)
        free(p);
}

/* uc no longer counts for its pool (it is closing); nothing reads uc->pool after this. */
static void pool_conn_gone(upstream_conn_t *uc)
{
    pool_t *p = uc->pool;
    uc->pool = NULL;
    p->n_conns--;
    pool_free_if_unused(p);
}

static pool_t *pool_find(worker_t *w, const snap_cluster_t *c, int ep, const struct sockaddr *addr)
{
    pool_set_t *ps = pool_set(w);
    if (ps == NULL)
        return NULL;
    pool_gen_t *g = gen_find(ps, w, c);
    for (pool_t *p = g ? g->pools : NULL; p; p = p->next)
        if (p->cluster == c && p->endpoint == ep &&
            (ep >= 0 || memcmp(&p->addr, addr, addr_len(addr)) == 0))
            return p;
    pool_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->cluster = c;
    p->endpoint = ep;
    memcpy(&p->addr, addr, addr_len(addr));
    if (g) {
        p->next = g->pools;
        g->pools = p;
    } else {
        p->retired = true; /* nowhere to keep it: one connection, closed when released */
    }
    return p;
}

static void idle_unlink(upstream_conn_t *uc)
{
    pool_t *p = uc->pool;
    if (uc->idle_prev)
        uc->idle_prev->idle_next = uc->idle_next;
    else if (p->idle == uc)
        p->idle = uc->idle_next;
    if (uc->idle_next)
        uc->idle_next->idle_prev = uc->idle_prev;
    uc->idle_prev = uc->idle_next = NULL;
    p->n_idle--;
}

static void on_uc_closed(uv_handle_t *h)
{
    upstream_conn_t *uc = h->data;
    if (--uc->handles > 0)
        return;
    conn_buf_drop(&uc->upc.worker->pool, &uc->in);
    upstream_connect_free(&uc->upc);
    free(uc);
}

static void uc_close(upstream_conn_t *uc)
{
    if (uc->state == UC_CLOSING)
        return;
    if (uc->state == UC_IDLE)
        idle_unlink(uc);
    uc->state = UC_CLOSING;
    pool_conn_gone(uc);
    upstream_connect_close(&uc->upc, false, uc, on_uc_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    upstream_conn_t *uc = h->data;
    if (uc->upc.tls) {
        tls_io_alloc(uc->upc.tls, buf);
        return;
    }
    size_t room = conn_buf_reserve(&uc->upc.worker->pool, &uc->in, UC_BUF_MAX);
    *buf = uv_buf_init(uc->in.data ? uc->in.data + uc->in.len : NULL, (unsigned)room);
}

/* nread > 0 bytes were appended to uc->in, or the connection ended (nread < 0). */
static void deliver(upstream_conn_t *uc, ssize_t nread)
{
    if (uc->state == UC_IDLE) {
        /* An idle keep-alive connection the server closed (or talks on unasked): drop it
         * now rather than hand it to the next request. */
        stats_inc(uc->upc.worker->stats, uc->upc.cluster->st.upstream_cx_destroy_remote);
        uc_close(uc);
        return;
    }
    if (nread > 0) {
        uc->in.len += (size_t)nread;
        stats_add(uc->upc.worker->stats, uc->upc.cluster->st.upstream_cx_rx_bytes_total, nread);
    } else {
        stats_inc(uc->upc.worker->stats, uc->upc.cluster->st.upstream_cx_destroy_remote);
        uv_read_stop((uv_stream_t *)&uc->upc.tcp);
    }
    void *owner = uc->owner;
    const upstream_conn_cbs_t *cbs = uc->cbs;
    if (nread < 0) {
        uc->owner = NULL;
        uc_close(uc);
    }
    if (owner)
        cbs->on_read(owner, uc, nread);
    if (uc->state != UC_CLOSING)
        conn_buf_trim(&uc->upc.worker->pool, &uc->in); /* idle connections hold no buffer */
}

/* Decrypts what the session holds into uc->in and delivers it, as long as the owner reads. */
static void tls_pump(upstream_conn_t *uc)
{
    while (uc->state == UC_BUSY || uc->state == UC_IDLE) {
        if (uc->state == UC_BUSY && !uv_is_active((uv_handle_t *)&uc->upc.tcp))
            return; /* paused by the owner; pool_read_start pumps again */
        size_t room = conn_buf_reserve(&uc->upc.worker->pool, &uc->in, UC_BUF_MAX);
        if (room == 0)
            return;
        ssize_t n = tls_io_decrypt(uc->upc.tls, uc->in.data + uc->in.len, room);
        if (n == 0) {
            conn_buf_trim(&uc->upc.worker->pool, &uc->in);
            return;
        }
        if (n < 0 && n != UV_EOF) {
            tls_fail_reason_t why = tls_session_fail_reason(tls_io_session(uc->upc.tls));
            if (why == TLS_FAIL_NONE)
                why = TLS_FAIL_CONNECTION_ERROR;
            stats_inc(uc->upc.worker->stats, uc->upc.cluster->st.ssl.fail[why]);
            n = UV_EPROTO;
        }
        deliver(uc, n);
    }
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    upstream_conn_t *uc = stream->data;
    if (nread == 0)
        return;
    if (uc->upc.tls == NULL) {
        deliver(uc, nread);
        return;
    }
    if (upstream_connect_handshaking(&uc->upc)) {
        upstream_connect_read(&uc->upc, nread); /* on_upstream_connected follows its end */
        return;
    }
    if (nread < 0) {
        deliver(uc, nread);
        return;
    }
    tls_io_received(uc->upc.tls, (size_t)nread);
    tls_pump(uc);
}

static void on_tls_written(void *owner, int status)
{
    upstream_conn_t *uc = owner;
    if (status < 0 || uc->state == UC_CLOSING)
        return; /* the read side reports the failure */
    if (uc->over_hwm && tls_io_queue_size(uc->upc.tls) == 0) {
        uc->over_hwm = false;
        if (uc->owner)
            uc->cbs->on_drained(uc->owner, uc);
    }
}

/* The connection is ready (connected, and its TLS handshake done if any), or failed (counted
 * already): the owner hears either way. */
static void on_upstream_connected(void *owner_uc, int status)
{
    upstream_conn_t *uc = owner_uc;
    void *owner = uc->owner;
    if (status < 0) {
        uc->owner = NULL;
        uc_close(uc);
        if (owner)
            uc->cbs->on_connected(owner, uc, status);
        return;
    }
    uc->state = UC_BUSY;
    if (uc->upc.tls) /* read since the handshake began */
        tls_io_attach(uc->upc.tls, uc, on_tls_written);
    else
        uv_read_start((uv_stream_t *)&uc->upc.tcp, on_alloc, on_read);
    if (owner)
        uc->cbs->on_connected(owner, uc, 0);
    if (uc->upc.tls)
        tls_pump(uc); /* records that came with the server's last flight */
}

static const upstream_connect_ops_t pool_connect_ops = {
    .connected = on_upstream_connected,
    .alloc = on_alloc,
    .read = on_read,
};

int pool_acquire(worker_t *w, const snap_cluster_t *c, int ep, const struct sockaddr *addr,
                 void *owner, const upstream_conn_cbs_t *cbs, upstream_conn_t **out, bool *ready)
{
    pool_t *p = pool_find(w, c, ep, addr);
    if (p == NULL)
        return UV_ENOMEM;
    if (p->idle) {
        upstream_conn_t *uc = p->idle;
        idle_unlink(uc);
        uc->state = UC_BUSY;
        uc->owner = owner;
        uc->cbs = cbs;
        uc->reused = true;
        *out = uc;
        *ready = true;
        return 0;
    }
    upstream_conn_t *uc = calloc(1, sizeof(*uc));
    if (uc == NULL) {
        pool_free_if_unused(p);
        return UV_ENOMEM;
    }
    int rc = upstream_connect_start(&uc->upc, w, c, addr, uc, &pool_connect_ops);
    if (rc == UV_EBUSY) { /* max_connections */
        free(uc);
        pool_free_if_unused(p);
        return rc;
    }
    uc->pool = p;
    p->n_conns++;
    uc->endpoint = ep;
    uc->owner = owner;
    uc->cbs = cbs;
    uc->state = UC_CONNECTING;
    snapshot_format_addr(addr, uc->label, sizeof(uc->label));
    uc->upc.tcp.data = uc->upc.timer.data = uc;
    uc->handles = 2;
    if (rc < 0) {
        uc->owner = NULL;
        uc_close(uc);
        return rc;
    }
    *out = uc;
    *ready = false;
    return 0;
}

static void close_idle(worker_t *w, pool_t *p)
{
    while (p->idle) {
        stats_inc(w->stats, p->idle->upc.cluster->st.upstream_cx_destroy_local);
        uc_close(p->idle);
    }
}

/* Drops a generation: closes its idle connections, retires its pools (each freed now or with
 * its last connection) and releases its snapshot reference. */
static void gen_drop(worker_t *w, pool_gen_t *g)
{
    pool_t *p = g->pools, *next;
    for (; p; p = next) {
        next = p->next;
        close_idle(w, p);
        p->next = NULL;
        p->retired = true;
        pool_free_if_unused(p);
    }
    snapshot_unref(g->snap);
    free(g);
}

/* Whether only generations still hold the snapshot: every worker keeps one for a snapshot it
 * swapped out, so at most nworkers references are theirs. Then no connection that started with
 * it is left to ask for its clusters, and none can appear (a reference is only ever taken from
 * another). Should a worker lack its generation, this answers yes early: harmless, as a later
 * request of such a connection gets a one-off pool, and busy connections' owners hold their own
 * references. */
static bool gen_unused(const pool_gen_t *g)
{
    return atomic_load_explicit(&g->snap->refs, memory_order_acquire) <= (int)g->snap->nworkers;
}

static void sweep_start(pool_set_t *ps)
{
    if (!ps->sweeping) {
        ps->sweeping = true;
        uv_timer_start(&ps->sweep, on_sweep, POOL_SWEEP_MS, POOL_SWEEP_MS);
    }
}

static void on_sweep(uv_timer_t *t)
{
    worker_t *w = t->data;
    pool_set_t *ps = w->pools;
    uint64_t now = uv_now(&w->loop);
    size_t left = 0;
    for (pool_gen_t **gp = &ps->gens; *gp;) {
        pool_gen_t *g = *gp;
        if (g->snap != w->snap && gen_unused(g)) {
            log_debug("connections of config version %" PRIu64 " are done: its upstream pools go",
                      g->snap->version);
            *gp = g->next;
            gen_drop(w, g);
            continue;
        }
        if (g->snap != w->snap)
            left++; /* keep sweeping until it can go */
        for (pool_t *p = g->pools; p; p = p->next) {
            upstream_conn_t *uc = p->idle, *next;
            for (; uc; uc = next) {
                next = uc->idle_next;
                if (now - uc->idle_since >= POOL_IDLE_TIMEOUT_MS) {
                    stats_inc(w->stats, uc->upc.cluster->st.upstream_cx_idle_timeout);
                    stats_inc(w->stats, uc->upc.cluster->st.upstream_cx_destroy_local);
                    uc_close(uc);
                } else {
                    left++;
                }
            }
        }
        gp = &g->next;
    }
    if (left == 0) {
        uv_timer_stop(&ps->sweep);
        ps->sweeping = false;
    }
}

void pool_release(upstream_conn_t *uc, bool reusable)
{
    uc->owner = NULL;
    if (uc->state == UC_CLOSING)
        return;
    pool_t *p = uc->pool;
    if (!reusable || p->retired || uc->state != UC_BUSY || uc->in.len != 0 ||
        p->n_idle >= POOL_MAX_IDLE || uc->upc.tcp.write_queue_size != 0 ||
        (uc->upc.tls && tls_io_queue_size(uc->upc.tls) != 0)) {
        stats_inc(uc->upc.worker->stats, uc->upc.cluster->st.upstream_cx_destroy_local);
        uc_close(uc);
        return;
    }
    /* A pool moved to a later snapshot while uc was busy: its idle connections count for the
     * pool's cluster, which its generation keeps valid (the owner's may go now). */
    uc->upc.cluster = p->cluster;
    uc->endpoint = p->endpoint;
    uc->state = UC_IDLE;
    uc->idle_since = uv_now(&uc->upc.worker->loop);
    uc->idle_next = p->idle;
    uc->idle_prev = NULL;
    if (p->idle)
        p->idle->idle_prev = uc;
    p->idle = uc;
    p->n_idle++;
    /* Keep reading while idle: a close from the server is seen before the next request. */
    uv_read_start((uv_stream_t *)&uc->upc.tcp, on_alloc, on_read);
    sweep_start(uc->upc.worker->pools);
}

static void on_write(uv_write_t *req, int status)
{
    copy_write_t *wr = (copy_write_t *)req;
    upstream_conn_t *uc = wr->owner;
    free(wr);
    if (status < 0 || uc->state == UC_CLOSING)
        return; /* the read side reports the failure */
    if (uc->over_hwm && uc->upc.tcp.write_queue_size == 0) {
        uc->over_hwm = false;
        if (uc->owner)
            uc->cbs->on_drained(uc->owner, uc);
    }
}

int pool_write(upstream_conn_t *uc, const uv_buf_t *bufs, unsigned n)
{
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += bufs[i].len;
    stats_add(uc->upc.worker->stats, uc->upc.cluster->st.upstream_cx_tx_bytes_total,
              (int64_t)total);
    if (uc->upc.tls) {
        int rc = tls_io_write(uc->upc.tls, bufs, n);
        if (rc == 0 && tls_io_queue_size(uc->upc.tls) > UC_HIGH_WATER)
            uc->over_hwm = true;
        return rc;
    }
    int rc = stream_write_copy((uv_stream_t *)&uc->upc.tcp, bufs, n, uc, on_write);
    if (rc == 0 && uc->upc.tcp.write_queue_size > UC_HIGH_WATER)
        uc->over_hwm = true;
    return rc;
}

void pool_read_stop(upstream_conn_t *uc)
{
    if (uc->state == UC_BUSY)
        uv_read_stop((uv_stream_t *)&uc->upc.tcp);
}

static void on_tls_pump(uv_timer_t *t)
{
    tls_pump(t->data);
}

void pool_read_start(upstream_conn_t *uc)
{
    if (uc->state != UC_BUSY)
        return;
    uv_read_start((uv_stream_t *)&uc->upc.tcp, on_alloc, on_read);
    if (uc->upc.tls) /* records already read wait in the session */
        uv_timer_start(&uc->upc.timer, on_tls_pump, 0, 0);
}

void pool_consume(upstream_conn_t *uc, size_t n)
{
    if (n >= uc->in.len) {
        uc->in.len = 0;
        return;
    }
    memmove(uc->in.data, uc->in.data + n, uc->in.len - n);
    uc->in.len -= n;
}

static void on_sweep_closed(uv_handle_t *h)
{
    free(h->data);
}

bool pool_cluster_compatible(const snap_cluster_t *a, const snap_cluster_t *b)
{
    if (a == b)
        return true;
    return a->name && b->name && strcmp(a->name, b->name) == 0 &&
           strcmp(a->stat_name, b->stat_name) == 0 && a->kind == b->kind &&
           a->shared == b->shared && a->has_bind == b->has_bind &&
           (!a->has_bind ||
            (a->bind_addr.sa.sa_family == b->bind_addr.sa.sa_family &&
             memcmp(&a->bind_addr, &b->bind_addr, addr_len(&a->bind_addr.sa)) == 0)) &&
           a->buffer_limit == b->buffer_limit && a->connect_timeout_ms == b->connect_timeout_ms &&
           a->http2 == b->http2 && upstream_connect_same_tls(a->tls, b->tls);
}

int pool_endpoint_index(const snap_cluster_t *c, const struct sockaddr *addr)
{
    for (size_t i = 0; i < c->n_endpoints; i++)
        if (cluster_same_addr((const struct sockaddr *)&c->endpoints[i].addr, addr))
            return (int)i;
    return -1;
}

/* Moves p (out of every list) into generation g, for cluster c at endpoint ep: its idle
 * connections count for c from now on; busy and connecting ones take c when released (their
 * owners hold the snapshot of the cluster they have until then). */
static void pool_move(pool_t *p, pool_gen_t *g, const snap_cluster_t *c, int ep)
{
    p->cluster = c;
    p->endpoint = ep;
    for (upstream_conn_t *uc = p->idle; uc; uc = uc->idle_next) {
        uc->upc.cluster = c;
        uc->endpoint = ep;
    }
    p->next = g->pools;
    g->pools = p;
}

void pool_retire_snapshot(worker_t *w, snapshot_t *old)
{
    pool_set_t *ps = pool_set(w);
    if (ps == NULL)
        return;
    pool_gen_t *g = ps->gens, *ng = ps->gens;
    while (g && g->snap != old)
        g = g->next;
    while (ng && ng->snap != w->snap)
        ng = ng->next;
    /* Even without pools yet, connections that started with old may ask for some later. */
    if (g == NULL && (g = gen_new(ps, old)) == NULL)
        return; /* out of memory: their requests get one-off connections */
    if (ng == NULL && g->pools)
        ng = gen_new(ps, w->snap);
    size_t moved = 0, retired = 0;
    for (pool_t **pp = &g->pools; *pp;) {
        pool_t *p = *pp;
        const snap_cluster_t *c =
            ng && p->cluster->name ? snapshot_find_cluster(w->snap, p->cluster->name) : NULL;
        int ep = -1;
        bool keep = c && pool_cluster_compatible(p->cluster, c);
        if (keep && p->endpoint >= 0)
            keep = (ep = pool_endpoint_index(c, (const struct sockaddr *)&p->addr)) >= 0;
        if (keep) {
            *pp = p->next;
            pool_move(p, ng, c, ep);
            moved++;
            continue;
        }
        close_idle(w, p); /* new connections for the new snapshot's cluster */
        retired++;
        pp = &p->next;
    }
    if (moved || retired)
        log_debug("config version %" PRIu64 ": %zu upstream pools kept, %zu retired",
                  w->snap->version, moved, retired);
    sweep_start(ps);
}

void pool_close_all(worker_t *w)
{
    upstream_connect_forget_sessions(); /* nothing saves one any more: the worker is stopping */
    pool_set_t *ps = w->pools;
    if (ps == NULL)
        return;
    while (ps->gens) {
        pool_gen_t *g = ps->gens;
        ps->gens = g->next;
        gen_drop(w, g);
    }
    ps->sweep.data = ps;
    uv_close((uv_handle_t *)&ps->sweep, on_sweep_closed);
    w->pools = NULL;
}
