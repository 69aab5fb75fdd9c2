/* Listening sockets and accept: one SO_REUSEPORT socket per listener per worker, the original
 * destination recovered from the capture (SO_ORIGINAL_DST), the filter chain chosen by it, and
 * the connection handed to the chain's terminal network filter. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/listener/network_filter.h"
#include "proxy/core/log.h"
#include "proxy/listener/chain_match.h"
#include "proxy/listener/tls_hello.h"
#include "proxy/net/tls_io.h"
#include "proxy/core/worker.h"

/* From <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h>, which clash with the
 * libc socket headers when included together. */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

int listener_socket_open(const snap_listener_t *l, int *out, char *err, size_t errlen)
{
    const struct sockaddr *sa = (const struct sockaddr *)&l->addr;
    socklen_t len =
        sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    char addr[80];
    snapshot_format_addr(sa, addr, sizeof(addr));
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "listener '%s': socket: %s", l->name, strerror(errno));
        return -errno;
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        int e = errno;
        snprintf(err, errlen, "listener '%s': setsockopt: %s", l->name, strerror(e));
        close(fd);
        return -e;
    }
    if (bind(fd, sa, len) < 0) {
        int e = errno;
        snprintf(err, errlen, "listener '%s': bind %s: %s", l->name, addr, strerror(e));
        close(fd);
        return -e;
    }
    *out = fd;
    return 0;
}

/* The address the client meant to reach. With iptables REDIRECT the socket's local address is
 * the proxy's port; the conntrack entry still has the original, which SO_ORIGINAL_DST returns. */
static void original_destination(int fd, bool use_original_dst, struct sockaddr_storage *out)
{
    socklen_t len = sizeof(*out);
    memset(out, 0, sizeof(*out));
    if (getsockname(fd, (struct sockaddr *)out, &len) < 0)
        return;
    if (!use_original_dst)
        return;
    struct sockaddr_storage od;
    len = sizeof(od);
    int rc = out->ss_family == AF_INET6 ? getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &od, &len)
                                        : getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &od, &len);
    if (rc == 0)
        *out = od;
}

/* A connection made straight to a capture port was not redirected: its "original destination"
 * is this listener, and passing it through would make the proxy connect to itself forever. */
static bool is_self_destined(int fd, const struct sockaddr_storage *dst)
{
    struct sockaddr_storage local;
    socklen_t len = sizeof(local);
    if (getsockname(fd, (struct sockaddr *)&local, &len) < 0 || local.ss_family != dst->ss_family)
        return false;
    if (dst->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)&local, *b = (const void *)dst;
        return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *a = (const void *)&local, *b = (const void *)dst;
    return a->sin6_port == b->sin6_port &&
           memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr)) == 0;
}

static void on_rejected_closed(uv_handle_t *h)
{
    free(h);
}

static void on_tls_rejected_closed(uv_handle_t *h)
{
    tls_io_free(h->data);
    free(h);
}

/* ---- connection limits (Envoy's runtime keys) --------------------------------------------- */

/* Takes a place in *count unless limit places are taken already. A compare-and-swap loop
 * rather than add-then-undo, so that a burst on other workers never sees a count over limit. */
static bool count_take(_Atomic int64_t *count, uint64_t limit)
{
    int64_t n = atomic_load_explicit(count, memory_order_relaxed);
    do {
        if (n >= 0 && (uint64_t)n >= limit)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(count, &n, n + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

/* Whether a new connection on wl may open: first the global limit
 * (overload.global_downstream_max_connections, unless the listener has
 * ignore_global_conn_limit), then the listener's (envoy.resource_limits.listener.<name>
 * .connection_limit), as Envoy checks them. A connection over either is counted in
 * downstream_global_cx_overflow or downstream_cx_overflow and never becomes a downstream
 * connection (not in downstream_cx_total). Every connection is counted, limit or not, so that a
 * limit a later snapshot brings starts from the connections really open. */
static bool admit(worker_t *w, const worker_listener_t *wl)
{
    const snap_listener_t *l = wl->cfg;
    bool global = !l->ignore_global_cx_limit;
    if (global && !count_take(w->cx_global, w->snap->global_cx_limit)) {
        stats_inc(w->stats, l->st.downstream_global_cx_overflow);
        return false;
    }
    if (!count_take(wl->set->cx_open, l->cx_limit)) {
        if (global)
            atomic_fetch_sub_explicit(w->cx_global, 1, memory_order_relaxed);
        stats_inc(w->stats, l->st.downstream_cx_overflow);
        return false;
    }
    return true;
}

void listener_conn_closed(worker_t *w, const snap_listener_t *l, worker_listener_t *wl)
{
    stats_add(w->stats, l->st.downstream_cx_active, -1);
    stats_inc(w->stats, l->st.downstream_cx_destroy);
    atomic_fetch_sub_explicit(&w->active_conns, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(wl->set->cx_open, 1, memory_order_relaxed);
    if (!l->ignore_global_cx_limit)
        atomic_fetch_sub_explicit(w->cx_global, 1, memory_order_relaxed);
    worker_listener_conn_done(wl); /* last: it may free wl, and then its set */
}

/* A connection that never reached a filter: count it out and reset it. */
static void reject(accepted_conn_t *ac)
{
    worker_t *w = ac->worker;
    listener_conn_closed(w, ac->listener, ac->wl);
    bufpool_put(&w->pool, ac->initial);
    ac->initial = NULL;
    /* A TLS endpoint the filter did not take goes once the handle is closed. */
    uv_close_cb done = on_rejected_closed;
    if (ac->tls) {
        ac->tcp->data = ac->tls;
        ac->tls = NULL;
        done = on_tls_rejected_closed;
    }
    if (uv_tcp_close_reset(ac->tcp, done) != 0)
        uv_close((uv_handle_t *)ac->tcp, done);
}

/* Hands a connection whose chain is chosen (and whose TLS, if any, is up) to the chain's
 * terminal filter, or resets it. */
static void hand_over(accepted_conn_t *ac)
{
    int rc = -ENOENT;
    if (ac->chain->n_filters > 0) {
        const snap_filter_t *f = &ac->chain->filters[ac->chain->n_filters - 1];
        rc = f->ops->on_accept(ac, f->config);
    }
    if (rc < 0)
        reject(ac);
}

static void tls_accept(accepted_conn_t *ac, const tls_hello_t *hello);

/* Chooses the filter chain (hello: what the tls_inspector read, NULL for plaintext) and moves
 * the connection on: through the TLS handshake first when the chain terminates TLS. */
static void route(accepted_conn_t *ac, const tls_hello_t *hello)
{
    worker_t *w = ac->worker;
    const snap_listener_t *l = ac->listener;
    chain_conn_info_t ci = {.dst = (const struct sockaddr *)&ac->orig_dst, .tls = hello != NULL};
    if (hello) {
        ci.server_name = hello->server_name_len ? hello->server_name : NULL;
        ci.app_protocols = hello->alpn;
        ci.n_app_protocols = hello->n_alpn;
    } else if (ac->app_protocol) {
        ci.app_protocols = &ac->app_protocol;
        ci.n_app_protocols = 1;
    }
    ac->chain = chain_select(l, &ci);
    if (ac->chain == NULL) {
        stats_inc(w->stats, l->st.no_filter_chain_match);
        if (log_current_level <= LOG_DEBUG) {
            char dst[80];
            snapshot_format_addr((const struct sockaddr *)&ac->orig_dst, dst, sizeof(dst));
            log_debug("listener '%s': no filter chain matches %s%s", l->name, dst,
                      hello ? " (TLS)" : "");
        }
        reject(ac);
        return;
    }
    if (ac->chain->tls)
        tls_accept(ac, hello);
    else
        hand_over(ac);
}

/* ---- listener filters: tls_inspector and http_inspector -------------------------------------
 * Both look at the first bytes without consuming them for the filter: what they read travels
 * on as accepted_conn_t.initial (or into the TLS session). */

typedef struct sniff {
    accepted_conn_t ac;
    uv_timer_t timer;
    char *slab;
    size_t len;
    bool decided;
    bool want_tls;  /* the tls_inspector still looks */
    bool want_http; /* the http_inspector looks */
    bool is_tls;
    tls_hello_t hello;
    bool handshake; /* the TLS handshake stage (after the chain was chosen) */
    tls_io_t *tls;  /* handshake stage: the server endpoint being set up */
    struct sniff *prev, *next;
} sniff_t;

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* "http/1.1", "http/1.0", "h2c", NULL (not HTTP), or "" (undecided: more bytes needed). */
static const char *classify(const char *p, size_t len)
{
    size_t plen = sizeof(h2_preface) - 1;
    if (memcmp(p, h2_preface, len < plen ? len : plen) == 0)
        return len >= plen ? "h2c" : "";
    size_t i = 0;
    for (; i < len && i < 32; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == ' ')
            break;
        if (c <= ' ' || c >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", c))
            return NULL; /* not a method token */
    }
    if (i == 0 || i == 32)
        return i == len ? "" : NULL;
    if (i == len)
        return "";
    const char *eol = memchr(p, '\n', len);
    if (eol == NULL)
        return len < BUFPOOL_SLAB_SIZE ? "" : NULL;
    size_t n = (size_t)(eol - p);
    if (n && p[n - 1] == '\r')
        n--;
    if (n > 9 && memcmp(p + n - 9, " HTTP/1.1", 9) == 0)
        return "http/1.1";
    if (n > 9 && memcmp(p + n - 9, " HTTP/1.0", 9) == 0)
        return "http/1.0";
    return NULL;
}

static void on_sniff_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void sniff_unlink(sniff_t *sn)
{
    worker_t *w = sn->ac.worker;
    if (sn->prev)
        sn->prev->next = sn->next;
    else if (w->sniffs == sn)
        w->sniffs = sn->next;
    if (sn->next)
        sn->next->prev = sn->prev;
    sn->prev = sn->next = NULL;
}

static void sniff_link(sniff_t *sn)
{
    worker_t *w = sn->ac.worker;
    sn->next = w->sniffs;
    if (w->sniffs)
        w->sniffs->prev = sn;
    w->sniffs = sn;
}

/* Stops reading and the timer, and leaves the worker's list; false when already done. */
static bool sniff_stop(sniff_t *sn)
{
    if (sn->decided)
        return false;
    sn->decided = true;
    uv_read_stop((uv_stream_t *)sn->ac.tcp);
    uv_timer_stop(&sn->timer);
    sniff_unlink(sn);
    return true;
}

/* Ends sniffing: the connection moves on with whatever was read, or is closed. */
static void sniff_finish(sniff_t *sn, const char *proto, bool close_it)
{
    worker_t *w = sn->ac.worker;
    if (!sniff_stop(sn))
        return;
    accepted_conn_t ac = sn->ac;
    ac.app_protocol = proto && *proto ? proto : NULL;
    ac.initial = sn->slab;
    ac.initial_len = sn->len;
    if (ac.initial_len == 0) {
        bufpool_put(&w->pool, ac.initial);
        ac.initial = NULL;
    }
    sn->slab = NULL;
    /* The hello lives in sn, which is freed with the timer's close callback (not before the
     * next loop iteration): route() may use it until then. */
    uv_close((uv_handle_t *)&sn->timer, on_sniff_timer_closed);
    if (close_it) {
        ac.chain = NULL;
        reject(&ac);
    } else {
        route(&ac, sn->is_tls ? &sn->hello : NULL);
    }
    snapshot_unref(ac.snap);
}

/* What the bytes so far say: 1 decided (proto set), 0 more bytes needed, -1 reset. */
static int sniff_decide(sniff_t *sn, const char **proto)
{
    *proto = NULL;
    if (sn->want_tls) {
        int r = tls_hello_parse((const uint8_t *)sn->slab, sn->len, &sn->hello);
        if (r == TLS_HELLO_OK) {
            sn->is_tls = true;
            return 1;
        }
        if (r == TLS_HELLO_NEED_MORE)
            return sn->len < BUFPOOL_SLAB_SIZE ? 0 : -1;
        if (r != TLS_HELLO_NOT_TLS) {
            log_debug("listener '%s': bad TLS ClientHello: %s", sn->ac.listener->name,
                      sn->hello.error ? sn->hello.error : "?");
            return -1;
        }
        sn->want_tls = false;
    }
    if (!sn->want_http)
        return 1;
    const char *p = classify(sn->slab, sn->len);
    if (p && *p == '\0' && sn->len < BUFPOOL_SLAB_SIZE)
        return 0;
    *proto = p && *p ? p : NULL;
    return 1;
}

static void on_sniff_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    sniff_t *sn = h->data;
    *buf = uv_buf_init(sn->slab + sn->len, (unsigned)(BUFPOOL_SLAB_SIZE - sn->len));
}

static void on_sniff_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    sniff_t *sn = stream->data;
    if (nread == 0)
        return;
    if (nread == UV_EOF) {
        /* The client half-closed: route what it sent as TCP; the filter reads the EOF again. */
        const char *proto = NULL;
        sn->want_tls = false; /* an incomplete ClientHello is not TLS we can terminate */
        if (sn->len && sn->want_http) {
            proto = classify(sn->slab, sn->len);
            if (proto && *proto == '\0')
                proto = NULL;
        }
        sniff_finish(sn, proto, false);
        return;
    }
    if (nread < 0) {
        sniff_finish(sn, NULL, true); /* reset before saying anything we could route on */
        return;
    }
    sn->len += (size_t)nread;
    const char *proto;
    int r = sniff_decide(sn, &proto);
    if (r != 0)
        sniff_finish(sn, proto, r < 0);
}

static void on_sniff_timeout(uv_timer_t *t)
{
    sniff_t *sn = t->data;
    /* A server-first protocol (the client waits for a greeting): continue as plain TCP. */
    sn->is_tls = false;
    sniff_finish(sn, NULL, false);
}

static sniff_t *sniff_new(accepted_conn_t *ac)
{
    worker_t *w = ac->worker;
    sniff_t *sn = calloc(1, sizeof(*sn));
    if (sn == NULL)
        return NULL;
    sn->ac = *ac;
    sn->ac.snap = snapshot_ref(ac->snap);
    uv_timer_init(&w->loop, &sn->timer);
    sn->timer.data = sn;
    ac->tcp->data = sn;
    sniff_link(sn);
    return sn;
}

static void sniff_start(accepted_conn_t *ac, bool tls, bool http)
{
    worker_t *w = ac->worker;
    char *slab = bufpool_get(&w->pool);
    sniff_t *sn = slab ? sniff_new(ac) : NULL;
    if (sn == NULL) {
        bufpool_put(&w->pool, slab);
        route(ac, NULL);
        return;
    }
    sn->slab = slab;
    sn->want_tls = tls;
    sn->want_http = http;
    uv_timer_start(&sn->timer, on_sniff_timeout, ac->listener->filters_timeout_ms, 0);
    uv_read_start((uv_stream_t *)ac->tcp, on_sniff_alloc, on_sniff_read);
}

/* ---- TLS termination (the chain's DownstreamTlsContext) ---------------------------------- */

#define TLS_HANDSHAKE_TIMEOUT_MS 10000

/* Ends the handshake stage: ok hands the connection to its filter, otherwise it is reset. */
static void tls_accept_finish(sniff_t *sn, bool ok)
{
    worker_t *w = sn->ac.worker;
    if (!sniff_stop(sn))
        return;
    accepted_conn_t ac = sn->ac;
    tls_io_t *tls = sn->tls;
    sn->tls = NULL;
    uv_close((uv_handle_t *)&sn->timer, on_sniff_timer_closed);
    const ssl_stat_ids_t *ssl = &ac.listener->st.ssl;
    tls_session_t *ts = tls ? tls_io_session(tls) : NULL;
    if (ok && ac.chain->tls->require_sni && tls_session_server_name(ts) == NULL) {
        log_debug("listener '%s': TLS client sent no SNI (require_sni)", ac.listener->name);
        ok = false;
    }
    if (ok) {
        stats_inc(w->stats, ssl->handshake);
        if (tls_session_resumed(ts))
            stats_inc(w->stats, ssl->session_reused);
        ac.tls = tls;
        hand_over(&ac);
    } else {
        tls_fail_reason_t why = ts ? tls_session_fail_reason(ts) : TLS_FAIL_NONE;
        stats_inc(w->stats, ssl->fail[why != TLS_FAIL_NONE ? why : TLS_FAIL_CONNECTION_ERROR]);
        if (ts && log_current_level <= LOG_DEBUG) {
            char msg[256];
            log_debug("listener '%s': TLS handshake failed: %s", ac.listener->name,
                      tls_session_error(ts, msg, sizeof(msg)));
        }
        ac.tls = tls;
        reject(&ac);
    }
    snapshot_unref(ac.snap);
}

static void tls_accept_step(sniff_t *sn)
{
    int rc = tls_io_handshake(sn->tls);
    if (rc != TLS_ERR_WANT_READ)
        tls_accept_finish(sn, rc == 0);
}

static void on_tls_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    sniff_t *sn = h->data;
    tls_io_alloc(sn->tls, buf);
}

static void on_tls_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    sniff_t *sn = stream->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        tls_accept_finish(sn, false);
        return;
    }
    tls_io_received(sn->tls, (size_t)nread);
    tls_accept_step(sn);
}

static void on_tls_timeout(uv_timer_t *t)
{
    tls_accept_finish(t->data, false);
}

/* Runs the server handshake of ac's chain; the bytes already read (the ClientHello) go in
 * first. */
/* The chain's server config for this client: without ALPN when the ClientHello offers none of
 * the chain's protocols (the handshake then goes on without ALPN, as Envoy's does). */
static struct tls_config *server_engine(const tls_context_config_t *t, const tls_hello_t *hello)
{
    if (t->engine_no_alpn == NULL || hello == NULL)
        return t->engine;
    for (size_t i = 0; i < t->n_alpn; i++)
        if (tls_hello_offers_alpn(hello, t->alpn[i], strlen(t->alpn[i])))
            return t->engine;
    return t->engine_no_alpn;
}

static void tls_accept(accepted_conn_t *ac, const tls_hello_t *hello)
{
    worker_t *w = ac->worker;
    sniff_t *sn = sniff_new(ac);
    if (sn == NULL) {
        reject(ac);
        return;
    }
    sn->handshake = true;
    sn->ac.initial = NULL;
    sn->ac.initial_len = 0;
    const tls_context_config_t *ctx = ac->chain->tls;
    /* A context awaiting its SDS secret has no engine: the connection fails, as on Envoy's
     * context whose secrets are not ready. */
    int rc = ctx->engine == NULL
                 ? UV_EINVAL
                 : tls_io_new(server_engine(ctx, hello), NULL, NULL, ctx->peer_ids, ctx->n_peer_ids,
                              (uv_stream_t *)ac->tcp, &w->pool, &sn->tls);
    if (rc == 0 && ac->initial_len)
        rc = tls_io_received_copy(sn->tls, ac->initial, ac->initial_len);
    bufpool_put(&w->pool, ac->initial);
    ac->initial = NULL;
    ac->initial_len = 0;
    if (rc < 0) {
        tls_accept_finish(sn, false);
        return;
    }
    uv_timer_start(&sn->timer, on_tls_timeout, TLS_HANDSHAKE_TIMEOUT_MS, 0);
    uv_read_start((uv_stream_t *)ac->tcp, on_tls_alloc, on_tls_read);
    tls_accept_step(sn);
}

void listener_abort_sniffs(worker_t *w)
{
    while (w->sniffs) {
        if (w->sniffs->handshake)
            tls_accept_finish(w->sniffs, false);
        else
            sniff_finish(w->sniffs, NULL, true);
    }
}

static uint32_t dst_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return 0;
}

static void on_connection(uv_stream_t *server, int status)
{
    worker_listener_t *wl = server->data;
    worker_t *w = wl->worker;
    if (status < 0) {
        log_warn("listener '%s': accept: %s", wl->cfg->name, uv_strerror(status));
        return;
    }
    uv_tcp_t *tcp = malloc(sizeof(*tcp));
    if (tcp == NULL)
        return;
    uv_tcp_init(&w->loop, tcp);
    if (uv_accept(server, (uv_stream_t *)tcp) != 0) {
        uv_close((uv_handle_t *)tcp, on_rejected_closed);
        return;
    }
    const snap_listener_t *l = wl->cfg;
    if (!admit(w, wl)) {
        uv_close((uv_handle_t *)tcp, on_rejected_closed);
        return;
    }
    wl->conns++; /* until listener_conn_closed */
    accepted_conn_t ac = {
        .tcp = tcp, .worker = w, .stats = w->stats, .snap = w->snap, .listener = l, .wl = wl};
    uv_os_fd_t fd;
    uv_fileno((uv_handle_t *)tcp, &fd);
    /* Each address costs a syscall per connection: ask only when something uses it. */
    if (l->needs_dst || l->http_inspector || l->tls_inspector)
        original_destination(fd, l->use_original_dst, &ac.orig_dst);

    stats_inc(w->stats, l->st.downstream_cx_total);
    stats_inc(w->stats, l->st.downstream_cx_active);
    atomic_fetch_add_explicit(&w->active_conns, 1, memory_order_relaxed);

    if (l->use_original_dst && is_self_destined(fd, &ac.orig_dst)) {
        stats_inc(w->stats, l->st.downstream_cx_loop);
        log_debug("listener '%s': connection made directly to the capture port refused", l->name);
        listener_conn_closed(w, l, ac.wl);
        if (uv_tcp_close_reset(tcp, on_rejected_closed) != 0)
            uv_close((uv_handle_t *)tcp, on_rejected_closed);
        return;
    }
    uint32_t port = dst_port(&ac.orig_dst);
    bool http = l->http_inspector &&
                !(l->inspector_disabled && chain_pred_eval(l->inspector_disabled, port));
    bool tls = l->tls_inspector &&
               !(l->tls_inspector_disabled && chain_pred_eval(l->tls_inspector_disabled, port));
    if (http || tls)
        sniff_start(&ac, tls, http);
    else
        route(&ac, NULL);
}

int listener_start(worker_listener_t *wl)
{
    worker_t *w = wl->worker;
    int rc = uv_tcp_init(&w->loop, &wl->tcp);
    if (rc < 0)
        return rc;
    wl->tcp.data = wl;
    wl->started = true;
    rc = uv_tcp_open(&wl->tcp, wl->fd);
    if (rc < 0)
        close(wl->fd); /* the handle did not take it */
    else
        rc = uv_listen((uv_stream_t *)&wl->tcp, 4096, on_connection);
    if (rc < 0)
        log_error("listener '%s': listen: %s", wl->cfg->name, uv_strerror(rc));
    return rc;
}

void listener_filters_tick(worker_t *w)
{
    const snapshot_t *snap = w->snap;
    for (size_t i = 0; i < snap->n_listeners; i++) {
        const snap_listener_t *l = &snap->listeners[i];
        size_t n = l->n_chains + (l->default_chain ? 1 : 0);
        for (size_t j = 0; j < n; j++) {
            const snap_chain_t *c = j < l->n_chains ? &l->chains[j] : l->default_chain;
            for (size_t k = 0; k < c->n_filters; k++)
                if (c->filters[k].ops->on_worker_tick)
                    c->filters[k].ops->on_worker_tick(c->filters[k].config, w->index);
        }
    }
}
