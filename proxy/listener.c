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
    if (l->needs_dst)
        original_destination(fd, l->use_original_dst, &ac.orig_dst);

    stats_inc(w->stats, l->st.downstream_cx_total);
    stats_inc(w->stats, l->st.downstream_cx_active);
    atomic_fetch_add_explicit(&w->active_conns, 1, memory_order_relaxed);

    int rc = -ENOENT;
    if (l->use_original_dst && is_self_destined(fd, &ac.orig_dst)) {
        stats_inc(w->stats, l->st.downstream_cx_loop);
        log_debug("listener '%s': connection made directly to the capture port refused", l->name);
    } else if ((ac.chain = snapshot_match_chain(l, (const struct sockaddr *)&ac.orig_dst)) ==
               NULL) {
        stats_inc(w->stats, l->st.no_filter_chain_match);
        if (log_current_level <= LOG_DEBUG) {
            char dst[80];
            snapshot_format_addr((const struct sockaddr *)&ac.orig_dst, dst, sizeof(dst));
            log_debug("listener '%s': no filter chain matches %s", l->name, dst);
        }
    } else if (ac.chain->n_filters > 0) {
        const snap_filter_t *f = &ac.chain->filters[ac.chain->n_filters - 1];
        rc = f->ops->on_accept(&ac, f->config);
    }
    if (rc < 0) {
        stats_add(w->stats, l->st.downstream_cx_active, -1);
        stats_inc(w->stats, l->st.downstream_cx_destroy);
        atomic_fetch_sub_explicit(&w->active_conns, 1, memory_order_relaxed);
        if (uv_tcp_close_reset(tcp, on_rejected_closed) != 0)
            uv_close((uv_handle_t *)tcp, on_rejected_closed);
    }
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
