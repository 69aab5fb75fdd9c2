/* Upstream connections, from admission to close: the circuit breaker's max_connections, the TCP
 * connect under the cluster's connect_timeout (from upstream_bind_config's source address when
 * set), TLS origination with session resumption, and the cluster's connection counters and
 * ssl.* stats. The data path stays with the owners; nothing here runs per byte.
 *
 * Saved TLS sessions: each worker keeps the last session per (engine config, cluster name, SNI
 * and expected peer SANs, endpoint address) in a small table of its own, replaced least recently
 * used when full. An entry holds a reference to the engine config and a copy of the rest: a new
 * engine config (certificate rotation) never finds an old session, as Envoy's per-context session
 * cache, a context expecting another peer never resumes a session verified for the first, and a
 * context rebuilt unchanged by a later snapshot (the snapshot builder keeps engine configs
 * across builds) resumes the sessions of the one before. Thread-local, because a worker is one
 * thread; upstream_connect_forget_sessions frees it. */
#include "proxy/upstream/upstream_connect.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/core/log.h"
#include "proxy/upstream/cluster_state.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define SESSIONS_FIRST             16
#define SESSIONS_MAX               512

/* The upstream_connect_t whose `member` ptr points to. */
#define UPC_OF(ptr, member)                                                                        \
    ((upstream_connect_t *)((char *)(ptr)-offsetof(upstream_connect_t, member)))

/* ---- saved TLS sessions --------------------------------------------------------------------- */

typedef struct saved_entry {
    tls_config_t *engine; /* reference held; NULL: a free slot */
    char *peer;           /* peer_key of the cluster and its context (owned) */
    size_t peer_len;
    upstream_addr_t addr;
    tls_saved_session_t *saved; /* owned */
    uint64_t used;              /* LRU clock */
} saved_entry_t;

static _Thread_local saved_entry_t *sessions;
static _Thread_local size_t n_sessions_cap;
static _Thread_local uint64_t sessions_clock;

static void key_add(char *k, size_t *len, const void *data, size_t n)
{
    if (k) {
        memcpy(k + *len, &n, sizeof(n)); /* length-prefixed: no two lists collide */
        memcpy(k + *len + sizeof(n), data, n);
    }
    *len += sizeof(n) + n;
}

/* Whose a session is besides the engine config: the cluster's name (each cluster keeps its
 * own sessions, as each Envoy cluster has its own TLS context), the SNI and the expected peer
 * SANs of its context ctx (both borrowed), as bytes written to k (NULL: only counted). Returns
 * the length. */
static size_t peer_key(const char *cluster, const tls_context_config_t *ctx, char *k)
{
    size_t len = 0;
    key_add(k, &len, cluster ? cluster : "", cluster ? strlen(cluster) : 0);
    key_add(k, &len, ctx->sni ? ctx->sni : "", ctx->sni ? strlen(ctx->sni) + 1 : 0);
    for (size_t i = 0; i < ctx->n_san_matchers; i++) {
        const tls_config_san_matcher_t *m = &ctx->san_matchers[i];
        int v[3] = {(int)m->type, (int)m->match, m->ignore_case};
        key_add(k, &len, v, sizeof(v));
        key_add(k, &len, m->value, strlen(m->value));
    }
    return len;
}

/* The entry for ctx (its engine config and peer_key, pk of pk_len bytes) at addr, or NULL. */
static saved_entry_t *session_find(const tls_context_config_t *ctx, const char *pk, size_t pk_len,
                                   const upstream_addr_t *addr)
{
    for (size_t i = 0; i < n_sessions_cap; i++) {
        saved_entry_t *e = &sessions[i];
        if (e->engine == ctx->engine && e->peer_len == pk_len && memcmp(e->peer, pk, pk_len) == 0 &&
            cluster_same_addr(&e->addr.sa, &addr->sa))
            return e;
    }
    return NULL;
}

/* The session to offer (borrowed until the next call here; tls_io_new copies it), or NULL. */
static const tls_saved_session_t *
session_lookup(const char *cluster, const tls_context_config_t *ctx, const upstream_addr_t *addr)
{
    size_t len = peer_key(cluster, ctx, NULL);
    char *pk = n_sessions_cap ? malloc(len) : NULL;
    if (pk == NULL)
        return NULL;
    peer_key(cluster, ctx, pk);
    saved_entry_t *e = session_find(ctx, pk, len, addr);
    free(pk);
    if (e == NULL)
        return NULL;
    e->used = ++sessions_clock;
    return e->saved;
}

static void entry_clear(saved_entry_t *e)
{
    tls_config_unref(e->engine);
    tls_saved_session_free(e->saved);
    free(e->peer);
    memset(e, 0, sizeof(*e));
}

/* A slot for a new entry: a free one (the table grows up to SESSIONS_MAX), else the least
 * recently used one, cleared. NULL when out of memory. */
static saved_entry_t *session_slot(void)
{
    saved_entry_t *lru = NULL;
    for (size_t i = 0; i < n_sessions_cap; i++) {
        if (sessions[i].engine == NULL)
            return &sessions[i];
        if (lru == NULL || sessions[i].used < lru->used)
            lru = &sessions[i];
    }
    if (n_sessions_cap < SESSIONS_MAX) {
        size_t cap = n_sessions_cap ? n_sessions_cap * 2 : SESSIONS_FIRST;
        saved_entry_t *v = realloc(sessions, cap * sizeof(*v));
        if (v) {
            memset(v + n_sessions_cap, 0, (cap - n_sessions_cap) * sizeof(*v));
            sessions = v;
            lru = &sessions[n_sessions_cap];
            n_sessions_cap = cap;
            return lru;
        }
    }
    if (lru)
        entry_clear(lru);
    return lru;
}

/* Keeps saved (taken) as the session to resume with cluster's context ctx at addr (all
 * borrowed). */
static void session_store(const char *cluster, const tls_context_config_t *ctx,
                          const upstream_addr_t *addr, tls_saved_session_t *saved)
{
    size_t len = peer_key(cluster, ctx, NULL);
    char *pk = malloc(len);
    saved_entry_t *e = NULL;
    if (pk) {
        peer_key(cluster, ctx, pk);
        e = session_find(ctx, pk, len, addr);
    }
    if (pk && e == NULL && (e = session_slot()) != NULL) {
        e->engine = tls_config_ref(ctx->engine);
        e->peer = pk;
        e->peer_len = len;
        e->addr = *addr;
        pk = NULL;
    }
    free(pk);
    if (e == NULL) {
        tls_saved_session_free(saved);
        return;
    }
    tls_saved_session_free(e->saved);
    e->saved = saved;
    e->used = ++sessions_clock;
}

bool upstream_connect_same_tls(const tls_context_config_t *a, const tls_context_config_t *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    if (a == b)
        return a->engine != NULL;
    if (a->engine == NULL || a->engine != b->engine || (a->sni == NULL) != (b->sni == NULL) ||
        (a->sni && strcmp(a->sni, b->sni) != 0) || a->n_san_matchers != b->n_san_matchers)
        return false;
    for (size_t i = 0; i < a->n_san_matchers; i++) {
        const tls_config_san_matcher_t *x = &a->san_matchers[i], *y = &b->san_matchers[i];
        if (x->type != y->type || x->match != y->match || x->ignore_case != y->ignore_case ||
            strcmp(x->value, y->value) != 0)
            return false;
    }
    return true; /* peer_ids are made from san_matchers */
}

static bool snapshot_has_engine(const snapshot_t *snap, const tls_config_t *engine)
{
    for (size_t i = 0; i < snap->n_clusters; i++)
        if (snap->clusters[i].tls && snap->clusters[i].tls->engine == engine)
            return true;
    return false;
}

void upstream_connect_snapshot_installed(worker_t *w)
{
    for (size_t i = 0; i < n_sessions_cap; i++)
        if (sessions[i].engine && !snapshot_has_engine(w->snap, sessions[i].engine))
            entry_clear(&sessions[i]);
}

void upstream_connect_forget_sessions(void)
{
    for (size_t i = 0; i < n_sessions_cap; i++)
        if (sessions[i].engine)
            entry_clear(&sessions[i]);
    free(sessions);
    sessions = NULL;
    n_sessions_cap = 0;
}

/* ---- connecting ------------------------------------------------------------------------------ */

static void upc_log(const upstream_connect_t *c, const char *what, const char *detail)
{
    if (log_current_level > LOG_DEBUG)
        return;
    char label[64];
    snapshot_format_addr(&c->addr.sa, label, sizeof(label));
    log_debug("cluster '%s': %s %s: %s", c->cluster->name, what, label, detail);
}

/* Reports a failure (already counted) to the owner, which closes c. */
static void fail(upstream_connect_t *c, int status)
{
    uv_timer_stop(&c->timer);
    c->state = UPSTREAM_CONNECT_FAILED;
    c->ops->connected(c->owner, status);
}

/* The handshake failed (err: the engine's or libuv's code): counted as the cluster's
 * ssl.<reason> and a connect failure. */
static void handshake_failed(upstream_connect_t *c, int err)
{
    tls_session_t *ts = tls_io_session(c->tls);
    tls_fail_reason_t why = tls_session_fail_reason(ts);
    if (why == TLS_FAIL_NONE || why >= TLS_FAIL_COUNT)
        why = TLS_FAIL_CONNECTION_ERROR;
    stats_inc(c->worker->stats, c->cluster->st.ssl.fail[why]);
    stats_inc(c->worker->stats, c->cluster->st.upstream_cx_connect_fail);
    if (log_current_level <= LOG_DEBUG) {
        char msg[256];
        const char *detail = err == TLS_ERR_FAILED ? tls_session_error(ts, msg, sizeof(msg))
                                                   : uv_strerror(tls_io_uv_error(err));
        upc_log(c, "TLS handshake with", detail);
    }
    fail(c, UV_EPROTO);
}

static void handshake_done(upstream_connect_t *c)
{
    stats_slots_t *s = c->worker->stats;
    tls_session_t *ts = tls_io_session(c->tls);
    stats_inc(s, c->cluster->st.ssl.handshake);
    if (tls_session_resumed(ts)) {
        stats_inc(s, c->cluster->st.ssl.session_reused);
    } else {
        /* A resumed handshake brings no new ticket: only a full one is worth saving. */
        tls_saved_session_t *saved = tls_session_save(ts);
        if (saved)
            session_store(c->cluster->name, c->cluster->tls, &c->addr, saved);
    }
    uv_timer_stop(&c->timer);
    c->state = UPSTREAM_CONNECT_OPEN;
    c->ops->connected(c->owner, 0);
}

/* Advances the handshake once more bytes are in the session (or to send the ClientHello). */
static void handshake_step(upstream_connect_t *c)
{
    int rc = tls_io_handshake(c->tls);
    if (rc == TLS_ERR_WANT_READ)
        return;
    if (rc == 0)
        handshake_done(c);
    else
        handshake_failed(c, rc);
}

void upstream_connect_read(upstream_connect_t *c, ssize_t nread)
{
    if (c->state != UPSTREAM_CONNECT_HANDSHAKE || nread == 0)
        return;
    if (nread < 0) {
        handshake_failed(c, (int)nread);
        return;
    }
    tls_io_received(c->tls, (size_t)nread);
    handshake_step(c);
}

/* A write of the handshake failed: the owner takes the session's writes once connected. */
static void on_handshake_written(void *owner, int status)
{
    upstream_connect_t *c = owner;
    if (status < 0 && c->state == UPSTREAM_CONNECT_HANDSHAKE)
        handshake_failed(c, status);
}

static void on_timeout(uv_timer_t *t)
{
    upstream_connect_t *c = UPC_OF(t, timer);
    if (c->state != UPSTREAM_CONNECT_TCP && c->state != UPSTREAM_CONNECT_HANDSHAKE)
        return;
    stats_inc(c->worker->stats, c->cluster->st.upstream_cx_connect_timeout);
    stats_inc(c->worker->stats, c->cluster->st.upstream_cx_connect_fail);
    upc_log(c, c->state == UPSTREAM_CONNECT_HANDSHAKE ? "TLS handshake with" : "connect to",
            "timed out");
    fail(c, UV_ETIMEDOUT);
}

static void on_connect(uv_connect_t *req, int status)
{
    upstream_connect_t *c = UPC_OF(req, req);
    if (c->state != UPSTREAM_CONNECT_TCP)
        return; /* timed out, or closed by its owner (UV_ECANCELED) */
    if (status < 0) {
        stats_inc(c->worker->stats, c->cluster->st.upstream_cx_connect_fail);
        upc_log(c, "connect to", uv_strerror(status));
        fail(c, status);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (c->tls == NULL) {
        uv_timer_stop(&c->timer);
        c->state = UPSTREAM_CONNECT_OPEN;
        c->ops->connected(c->owner, 0);
        return;
    }
    /* The ClientHello offers the session last saved with this endpoint; the answer is read
     * through the owner's callbacks, which hand it back here until the handshake is done. */
    c->state = UPSTREAM_CONNECT_HANDSHAKE;
    int rc = uv_read_start((uv_stream_t *)&c->tcp, c->ops->alloc, c->ops->read);
    if (rc < 0)
        handshake_failed(c, rc);
    else
        handshake_step(c);
}

/* Binds the socket to the cluster's source address. IP_BIND_ADDRESS_NO_PORT defers the port
 * choice to connect(), so many connections from one source IP do not exhaust ports. */
static int bind_source(uv_tcp_t *tcp, const snap_cluster_t *c)
{
    int fd = socket(c->bind_addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return uv_translate_sys_error(errno);
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    int rc = uv_tcp_open(tcp, fd);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return uv_tcp_bind(tcp, &c->bind_addr.sa, 0);
}

/* The TLS session for c, before the connect: the engine config is the cluster's (none while
 * the cluster awaits an SDS secret: the connection fails, as on Envoy's context whose secrets
 * are not ready). */
static int tls_new(upstream_connect_t *c)
{
    const tls_context_config_t *ctx = c->cluster->tls;
    if (ctx->engine == NULL)
        return UV_EINVAL;
    int rc = tls_io_new(ctx->engine, session_lookup(c->cluster->name, ctx, &c->addr), ctx->sni,
                        ctx->peer_ids, ctx->n_peer_ids, (uv_stream_t *)&c->tcp, &c->worker->pool,
                        &c->tls);
    if (rc < 0)
        return tls_io_uv_error(rc);
    tls_io_attach(c->tls, c, on_handshake_written);
    return 0;
}

int upstream_connect_start(upstream_connect_t *c, worker_t *w, const snap_cluster_t *cluster,
                           const struct sockaddr *addr, void *owner,
                           const upstream_connect_ops_t *ops)
{
    /* Circuit breaking: connections to the cluster, across all workers and snapshots. */
    if (atomic_fetch_add_explicit(&cluster->shared->cx_active, 1, memory_order_relaxed) >=
        cluster->max_connections) {
        atomic_fetch_sub_explicit(&cluster->shared->cx_active, 1, memory_order_relaxed);
        stats_inc(w->stats, cluster->st.upstream_cx_overflow);
        return UV_EBUSY;
    }
    c->worker = w;
    c->cluster = cluster;
    c->owner = owner;
    c->ops = ops;
    c->counted = true;
    c->state = UPSTREAM_CONNECT_TCP;
    memcpy(&c->addr, addr,
           addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    uv_tcp_init(&w->loop, &c->tcp);
    uv_timer_init(&w->loop, &c->timer);
    stats_inc(w->stats, cluster->st.upstream_cx_total);
    stats_inc(w->stats, cluster->st.upstream_cx_active);
    int rc = cluster->tls ? tls_new(c) : 0;
    if (rc < 0) {
        stats_inc(w->stats, cluster->st.ssl.fail[TLS_FAIL_CONNECTION_ERROR]);
        stats_inc(w->stats, cluster->st.upstream_cx_connect_fail);
        upc_log(c, "TLS session for",
                cluster->tls->awaiting_secret ? "its SDS secret has not arrived" : uv_strerror(rc));
        c->state = UPSTREAM_CONNECT_FAILED;
        return rc;
    }
    rc = cluster->has_bind ? bind_source(&c->tcp, cluster) : 0;
    if (rc == 0)
        rc = uv_tcp_connect(&c->req, &c->tcp, addr, on_connect);
    if (rc < 0) {
        stats_inc(w->stats, cluster->st.upstream_cx_connect_fail);
        upc_log(c, "connect to", uv_strerror(rc));
        c->state = UPSTREAM_CONNECT_FAILED;
        return rc;
    }
    uint64_t timeout = cluster->connect_timeout_ms;
    uv_timer_start(&c->timer, on_timeout, timeout ? timeout : DEFAULT_CONNECT_TIMEOUT_MS, 0);
    return 0;
}

void upstream_connect_close(upstream_connect_t *c, bool reset, void *data, uv_close_cb cb)
{
    if (c->counted) {
        c->counted = false;
        stats_add(c->worker->stats, c->cluster->st.upstream_cx_active, -1);
        atomic_fetch_sub_explicit(&c->cluster->shared->cx_active, 1, memory_order_relaxed);
    }
    c->state = UPSTREAM_CONNECT_CLOSED;
    c->tcp.data = data;
    c->timer.data = data;
    if (!reset || uv_tcp_close_reset(&c->tcp, cb) != 0)
        uv_close((uv_handle_t *)&c->tcp, cb);
    uv_close((uv_handle_t *)&c->timer, cb);
}

void upstream_connect_free(upstream_connect_t *c)
{
    tls_io_free(c->tls);
    c->tls = NULL;
}
