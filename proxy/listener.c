/* Listening sockets and accept: one SO_REUSEPORT socket per listener per worker, the original
 * destination recovered from the capture (SO_ORIGINAL_DST), the filter chain chosen by it, and
 * the connection handed to the chain's terminal network filter. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "filters/filter.h"
#include "proxy/log.h"
#include "proxy/worker.h"

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

/* Hands a connection to its chain's terminal filter, or resets it. */
static void dispatch(accepted_conn_t *ac)
{
    worker_t *w = ac->worker;
    const snap_listener_t *l = ac->listener;
    int rc = -ENOENT;
    ac->chain = snapshot_match_chain(l, (const struct sockaddr *)&ac->orig_dst, ac->app_protocol);
    if (ac->chain == NULL) {
        stats_inc(w->stats, l->st.no_filter_chain_match);
        if (log_current_level <= LOG_DEBUG) {
            char dst[80];
            snapshot_format_addr((const struct sockaddr *)&ac->orig_dst, dst, sizeof(dst));
            log_debug("listener '%s': no filter chain matches %s", l->name, dst);
        }
    } else if (ac->chain->n_filters > 0) {
        const snap_filter_t *f = &ac->chain->filters[ac->chain->n_filters - 1];
        rc = f->ops->on_accept(ac, f->config);
    }
    if (rc < 0) {
        stats_add(w->stats, l->st.downstream_cx_active, -1);
        stats_inc(w->stats, l->st.downstream_cx_destroy);
        atomic_fetch_sub_explicit(&w->active_conns, 1, memory_order_relaxed);
        bufpool_put(&w->pool, ac->initial);
        if (uv_tcp_close_reset(ac->tcp, on_rejected_closed) != 0)
            uv_close((uv_handle_t *)ac->tcp, on_rejected_closed);
    }
}

/* ---- protocol detection (envoy.filters.listener.http_inspector) ------------------------- */

typedef struct sniff {
    accepted_conn_t ac;
    uv_timer_t timer;
    char *slab;
    size_t len;
    bool decided;
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

/* Ends sniffing: the connection moves on with whatever was read, or is closed. */
static void sniff_finish(sniff_t *sn, const char *proto, bool close_it)
{
    worker_t *w = sn->ac.worker;
    if (sn->decided)
        return;
    sn->decided = true;
    uv_read_stop((uv_stream_t *)sn->ac.tcp);
    uv_timer_stop(&sn->timer);
    if (sn->prev)
        sn->prev->next = sn->next;
    else if (w->sniffs == sn)
        w->sniffs = sn->next;
    if (sn->next)
        sn->next->prev = sn->prev;
    accepted_conn_t ac = sn->ac;
    ac.app_protocol = proto && *proto ? proto : NULL;
    ac.initial = sn->slab;
    ac.initial_len = sn->len;
    if (ac.initial_len == 0) {
        bufpool_put(&w->pool, ac.initial);
        ac.initial = NULL;
    }
    sn->slab = NULL;
    uv_close((uv_handle_t *)&sn->timer, on_sniff_timer_closed);
    if (close_it) {
        ac.chain = NULL;
        stats_add(w->stats, ac.listener->st.downstream_cx_active, -1);
        stats_inc(w->stats, ac.listener->st.downstream_cx_destroy);
        atomic_fetch_sub_explicit(&w->active_conns, 1, memory_order_relaxed);
        bufpool_put(&w->pool, ac.initial);
        uv_close((uv_handle_t *)ac.tcp, on_rejected_closed);
    } else {
        dispatch(&ac);
    }
    snapshot_unref(ac.snap);
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
        const char *proto = sn->len ? classify(sn->slab, sn->len) : NULL;
        sniff_finish(sn, proto && *proto ? proto : NULL, false);
        return;
    }
    if (nread < 0) {
        sniff_finish(sn, NULL, true); /* reset before saying anything we could route on */
        return;
    }
    sn->len += (size_t)nread;
    const char *proto = classify(sn->slab, sn->len);
    if (proto == NULL || *proto || sn->len == BUFPOOL_SLAB_SIZE)
        sniff_finish(sn, proto && *proto ? proto : NULL, false);
}

static void on_sniff_timeout(uv_timer_t *t)
{
    sniff_t *sn = t->data;
    /* A server-first protocol (the client waits for a greeting): continue as plain TCP. */
    sniff_finish(sn, NULL, false);
}

static void sniff_start(accepted_conn_t *ac)
{
    worker_t *w = ac->worker;
    sniff_t *sn = calloc(1, sizeof(*sn));
    char *slab = sn ? bufpool_get(&w->pool) : NULL;
    if (sn == NULL || slab == NULL) {
        free(sn);
        dispatch(ac);
        return;
    }
    sn->ac = *ac;
    sn->ac.snap = snapshot_ref(ac->snap);
    sn->slab = slab;
    uv_timer_init(&w->loop, &sn->timer);
    sn->timer.data = sn;
    ac->tcp->data = sn;
    sn->next = w->sniffs;
    if (w->sniffs)
        w->sniffs->prev = sn;
    w->sniffs = sn;
    uv_timer_start(&sn->timer, on_sniff_timeout, ac->listener->filters_timeout_ms, 0);
    uv_read_start((uv_stream_t *)ac->tcp, on_sniff_alloc, on_sniff_read);
}

void listener_abort_sniffs(worker_t *w)
{
    while (w->sniffs)
        sniff_finish(w->sniffs, NULL, true);
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
    accepted_conn_t ac = {
        .tcp = tcp, .worker = w, .stats = w->stats, .snap = w->snap, .listener = l};
    uv_os_fd_t fd;
    uv_fileno((uv_handle_t *)tcp, &fd);
    /* Each address costs a syscall per connection: ask only when something uses it. */
    if (l->needs_dst || l->http_inspector)
        original_destination(fd, l->use_original_dst, &ac.orig_dst);

    stats_inc(w->stats, l->st.downstream_cx_total);
    stats_inc(w->stats, l->st.downstream_cx_active);
    atomic_fetch_add_explicit(&w->active_conns, 1, memory_order_relaxed);

    if (l->use_original_dst && is_self_destined(fd, &ac.orig_dst)) {
        stats_inc(w->stats, l->st.downstream_cx_loop);
        log_debug("listener '%s': connection made directly to the capture port refused", l->name);
        stats_add(w->stats, l->st.downstream_cx_active, -1);
        stats_inc(w->stats, l->st.downstream_cx_destroy);
        atomic_fetch_sub_explicit(&w->active_conns, 1, memory_order_relaxed);
        if (uv_tcp_close_reset(tcp, on_rejected_closed) != 0)
            uv_close((uv_handle_t *)tcp, on_rejected_closed);
        return;
    }
    if (l->http_inspector && !(l->inspector_disabled &&
                               snapshot_pred_eval(l->inspector_disabled, dst_port(&ac.orig_dst))))
        sniff_start(&ac);
    else
        dispatch(&ac);
}

int listener_start(worker_listener_t *wl)
{
    worker_t *w = wl->worker;
    int rc = uv_tcp_init(&w->loop, &wl->tcp);
    if (rc < 0)
        return rc;
    wl->tcp.data = wl;
    wl->open = true;
    rc = uv_tcp_open(&wl->tcp, wl->fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&wl->tcp, 4096, on_connection);
    if (rc < 0)
        log_error("listener '%s': listen: %s", wl->cfg->name, uv_strerror(rc));
    return rc;
}
