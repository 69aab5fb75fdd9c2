/* The listener manager on a running server (server_open, its own workers and main loop): the
 * snapshots installed while it runs add listeners (they accept), remove them (new connections
 * are refused, open ones go on), change their address (a new socket, the old one drains) or
 * only their filter chains (the socket and its connections stay); sockets bound while a
 * listener is checked go to the install that brings it. Real sockets on loopback:
 * tcp_proxy to upstreams that send back what they get behind a tag of their own, and HTTP
 * connections that drain with their listener. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "filters/registry.h"
#include "proxy/core/log.h"
#include "proxy/server/listener_manager.h"
#include "proxy/server/server.h"
#include "proxy/upstream/lb.h"

/* ---- upstreams: each answers every read with its tag and the bytes read, or never -------- */

typedef struct upstream {
    int lfd;
    int port;
    const char *tag;    /* "A:"; NULL: it reads and never answers */
    _Atomic size_t got; /* bytes read */
    pthread_t thread;
    _Atomic bool stop;
} upstream_t;

static void *upstream_main(void *arg)
{
    upstream_t *u = arg;
    struct pollfd fds[64] = {{.fd = u->lfd, .events = POLLIN}};
    size_t n = 1, tlen = u->tag ? strlen(u->tag) : 0;
    while (!atomic_load(&u->stop)) {
        if (poll(fds, n, 20) <= 0)
            continue;
        for (size_t i = 1; i < n; i++) {
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[512];
            memcpy(buf, u->tag ? u->tag : "", tlen);
            ssize_t r = read(fds[i].fd, buf + tlen, sizeof(buf) - tlen);
            if (r <= 0) {
                close(fds[i].fd);
                fds[i--] = fds[--n];
                continue;
            }
            atomic_fetch_add(&u->got, (size_t)r);
            if (u->tag && write(fds[i].fd, buf, tlen + (size_t)r) < 0)
                continue; /* the peer is gone: its read side says so next */
        }
        if (fds[0].revents & POLLIN) {
            int c = accept(u->lfd, NULL, NULL);
            if (c >= 0 && n < 64)
                fds[n++] = (struct pollfd){.fd = c, .events = POLLIN};
            else if (c >= 0)
                close(c);
        }
    }
    for (size_t i = 0; i < n; i++)
        close(fds[i].fd);
    return NULL;
}

static void upstream_start(upstream_t *u, const char *tag)
{
    memset(u, 0, sizeof(*u));
    u->tag = tag;
    u->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    assert_int_equal(bind(u->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(u->lfd, 64), 0);
    assert_int_equal(getsockname(u->lfd, (struct sockaddr *)&sin, &len), 0);
    u->port = ntohs(sin.sin_port);
    assert_int_equal(pthread_create(&u->thread, NULL, upstream_main, u), 0);
}

static void upstream_stop(upstream_t *u)
{
    atomic_store(&u->stop, true);
    pthread_join(u->thread, NULL);
}

/* ---- the server, run by the test's own loop ---------------------------------------------- */

typedef struct rig {
    uv_loop_t loop;
    server_t s;
    upstream_t a, b, silent;
    char dir[64];
    char path[128];
    int configs;
} rig_t;

static void cat(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void cat(char *buf, size_t cap, const char *fmt, ...)
{
    size_t len = strlen(buf);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
}

/* A tcp_proxy listener to cluster up_a or up_b. */
static void tcp_listener(char *buf, size_t cap, const char *name, const char *ip, int port,
                         const char *cluster)
{
    cat(buf, cap,
        "  - name: %s\n"
        "    address: {socket_address: {address: %s, port_value: %d}}\n"
        "    filter_chains:\n"
        "    - filters:\n"
        "      - name: envoy.filters.network.tcp_proxy\n"
        "        typed_config:\n"
        "          \"@type\": type.googleapis.com/"
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n"
        "          stat_prefix: %s\n"
        "          cluster: %s\n",
        name, ip, port, name, cluster);
}

/* An HTTP listener that answers /slow from up_silent (which never answers: a 504 after 0.5 s,
 * before the rig's 1 s drain deadline) and every other request with `body` itself. */
static void http_listener(char *buf, size_t cap, const char *name, const char *body)
{
    cat(buf, cap,
        "  - name: %s\n"
        "    address: {socket_address: {address: 127.0.0.1, port_value: 0}}\n"
        "    filter_chains:\n"
        "    - filters:\n"
        "      - name: envoy.filters.network.http_connection_manager\n"
        "        typed_config:\n"
        "          \"@type\": type.googleapis.com/envoy.extensions.filters.network."
        "http_connection_manager.v3.HttpConnectionManager\n"
        "          stat_prefix: %s\n"
        "          route_config:\n"
        "            virtual_hosts:\n"
        "            - name: all\n"
        "              domains: [\"*\"]\n"
        "              routes:\n"
        "              - match: {prefix: /slow}\n"
        "                route: {cluster: up_silent, timeout: 0.5s}\n"
        "              - match: {prefix: /}\n"
        "                direct_response: {status: 200, body: {inline_string: \"%s\"}}\n"
        "          http_filters:\n"
        "          - name: envoy.filters.http.router\n"
        "            typed_config: {\"@type\": type.googleapis.com/"
        "envoy.extensions.filters.http.router.v3.Router}\n",
        name, name, body);
}

/* Writes a bootstrap with `listeners` (YAML list items), the clusters up_a, up_b and up_silent, and
 * `extra` (top-level YAML, may be empty) to a new file; returns its path (r's). */
static const char *write_config(rig_t *r, const char *listeners, const char *extra)
{
    snprintf(r->path, sizeof(r->path), "%s/c%d.yaml", r->dir, r->configs++);
    FILE *f = fopen(r->path, "w");
    assert_non_null(f);
    fprintf(f, "static_resources:\n  listeners:\n%s  clusters:\n", listeners);
    const upstream_t *ups[] = {&r->a, &r->b, &r->silent};
    const char *names[] = {"up_a", "up_b", "up_silent"};
    for (int i = 0; i < 3; i++)
        fprintf(f,
                "  - name: %s\n"
                "    connect_timeout: 1s\n"
                "    load_assignment:\n"
                "      cluster_name: %s\n"
                "      endpoints:\n"
                "      - lb_endpoints:\n"
                "        - endpoint: {address: {socket_address: {address: 127.0.0.1, "
                "port_value: %d}}}\n",
                names[i], names[i], ups[i]->port);
    fputs(extra, f);
    fclose(f);
    return r->path;
}

static void pump_ms(rig_t *r, int ms)
{
    for (int i = 0; i < ms; i++) {
        uv_run(&r->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
}

/* Runs the main loop until cond holds (evaluated again each millisecond), for up to 5000
 * tries; fails the test if it never does. */
#define WAIT_UNTIL(r, cond)                                                                        \
    do {                                                                                           \
        bool held_ = false;                                                                        \
        for (int wait_i_ = 0; wait_i_ < 5000 && !(held_ = (cond)); wait_i_++)                      \
            pump_ms(r, 1);                                                                         \
        if (!held_)                                                                                \
            fail_msg("%s never held", #cond);                                                      \
    } while (0)

static void rig_start(rig_t *r, const char *listeners, const char *extra)
{
    memset(r, 0, sizeof(*r));
    upstream_start(&r->a, "A:");
    upstream_start(&r->b, "B:");
    upstream_start(&r->silent, NULL);
    snprintf(r->dir, sizeof(r->dir), "/tmp/remora-lm-XXXXXX");
    assert_non_null(mkdtemp(r->dir));
    assert_int_equal(uv_loop_init(&r->loop), 0);
    server_options_t opts = {.config_path = write_config(r, listeners, extra),
                             .concurrency = 2,
                             .drain_time_s = 1,
                             .filters = &filter_registry};
    assert_int_equal(server_open(&r->s, &opts, &r->loop), 0);
    WAIT_UNTIL(r, server_ready(&r->s));
}

/* Builds the next snapshot from a config the way the server builds them (its filters, its
 * clusters' runtime state) and installs it. */
static void install(rig_t *r, const char *listeners, const char *extra)
{
    snap_build_opts_t bopts = {.filters = &filter_registry,
                               .cluster_runtime = &cluster_runtime,
                               .cluster_states = r->s.snap->cluster_states};
    char err[512];
    snapshot_t *snap = NULL;
    int rc = snapshot_load_file(write_config(r, listeners, extra), &bopts, r->s.stats,
                                r->s.nworkers, &snap, err, sizeof(err));
    if (rc < 0)
        fail_msg("%s", err);
    server_install_snapshot(&r->s, snap);
}

static void rig_stop(rig_t *r)
{
    server_quit(&r->s);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    assert_int_equal(server_close(&r->s), 0);
    assert_int_equal(uv_loop_close(&r->loop), 0);
    upstream_stop(&r->a);
    upstream_stop(&r->b);
    upstream_stop(&r->silent);
    for (int i = 0; i < r->configs; i++) {
        snprintf(r->path, sizeof(r->path), "%s/c%d.yaml", r->dir, i);
        unlink(r->path);
    }
    rmdir(r->dir);
}

typedef struct port_query {
    const char *name;
    int port;
    int n; /* listeners listed */
} port_query_t;

static void on_listed(void *arg, const char *name, const struct sockaddr *addr)
{
    port_query_t *q = arg;
    q->n++;
    if (strcmp(name, q->name) == 0)
        q->port = ntohs(((const struct sockaddr_in *)addr)->sin_port);
}

/* The port listener `name` accepts on, as /listeners shows it; -1 when it is not running. */
static int port_of(rig_t *r, const char *name)
{
    port_query_t q = {.name = name, .port = -1};
    host_listeners(&r->s.host, on_listed, &q);
    return q.port;
}

static int listeners_listed(rig_t *r)
{
    port_query_t q = {.name = ""};
    host_listeners(&r->s.host, on_listed, &q);
    return q.n;
}

/* listener_manager.<metric>: the total_* ones are gauges. */
static int64_t lm_stat(rig_t *r, const char *metric)
{
    stat_kind_t kind = strncmp(metric, "total_", 6) == 0 ? STAT_GAUGE : STAT_COUNTER;
    int64_t id = stats_define(r->s.stats, kind, "listener_manager", NULL, NULL, metric);
    assert_true(id >= 0);
    return stats_value(r->s.stats, (stat_id_t)id);
}

/* ---- clients ------------------------------------------------------------------------------ */

/* A connected socket to 127.0.0.1:port (reads time out after 3 s), or -errno. */
static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 3};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* Reads into buf until it holds want bytes, or the peer closes, or a read times out. */
static size_t read_some(int fd, char *buf, size_t cap, size_t want)
{
    size_t got = 0;
    while (got < want && got + 1 < cap) {
        ssize_t n = read(fd, buf + got, cap - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    return got;
}

/* Sends msg on fd and whether the answer is tag followed by msg: who is upstream. */
static bool talks(int fd, const char *msg, const char *tag)
{
    char want[64], got[64];
    snprintf(want, sizeof(want), "%s%s", tag, msg);
    if (write(fd, msg, strlen(msg)) != (ssize_t)strlen(msg))
        return false;
    read_some(fd, got, sizeof(got), strlen(want));
    return strcmp(got, want) == 0;
}

/* A new connection to port relays to the upstream tagged tag. */
static bool new_connection_talks(int port, const char *tag)
{
    int fd = dial(port);
    if (fd < 0)
        return false;
    bool ok = talks(fd, "ping", tag);
    close(fd);
    return ok;
}

static bool refused(int port)
{
    int fd = dial(port);
    if (fd >= 0)
        close(fd);
    return fd == -ECONNREFUSED;
}

/* The peer closed fd (EOF or reset) within 3 s, with nothing more to read. */
static bool closed_by_peer(int fd)
{
    char c;
    ssize_t n = read(fd, &c, 1);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* Reads one response to a GET on fd (its body is "hello\n"): true if it came whole. */
static bool http_response(int fd, char *out, size_t cap)
{
    size_t got = 0;
    out[0] = '\0';
    while (strstr(out, "\r\n\r\nhello\n") == NULL) {
        ssize_t n = read(fd, out + got, cap - 1 - got);
        if (n <= 0)
            return false;
        got += (size_t)n;
        out[got] = '\0';
    }
    return true;
}

/* Reads everything up to the peer's close into out: false if a read timed out first. */
static bool read_to_close(int fd, char *out, size_t cap)
{
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, out + got, cap - 1 - got);
        if (n <= 0) {
            out[got] = '\0';
            return n == 0 || errno == ECONNRESET;
        }
        got += (size_t)n;
    }
}

static bool http_get(int fd, char *out, size_t cap)
{
    static const char rq[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    return write(fd, rq, sizeof(rq) - 1) == (ssize_t)(sizeof(rq) - 1) &&
           http_response(fd, out, cap);
}

/* A port nothing listens on now (bound once and let go). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    bind(fd, (struct sockaddr *)&sin, sizeof(sin));
    getsockname(fd, (struct sockaddr *)&sin, &len);
    close(fd);
    return ntohs(sin.sin_port);
}

/* ---- the stories -------------------------------------------------------------------------- */

static void test_added_listener_accepts_once_installed(void **state)
{
    (void)state;
    rig_t r;
    char l1[2048] = "", l2[4096] = "";
    tcp_listener(l1, sizeof(l1), "a", "127.0.0.1", 0, "up_a");
    rig_start(&r, l1, "");
    assert_int_equal(lm_stat(&r, "listener_added"), 1);
    assert_int_equal(lm_stat(&r, "listener_create_success"), 2); /* one socket per worker */
    assert_int_equal(port_of(&r, "b"), -1);

    strcpy(l2, l1);
    tcp_listener(l2, sizeof(l2), "b", "127.0.0.1", 0, "up_b");
    install(&r, l2, "");
    int pb = port_of(&r, "b");
    assert_true(pb > 0);
    WAIT_UNTIL(&r, new_connection_talks(pb, "B:"));
    assert_true(new_connection_talks(port_of(&r, "a"), "A:"));
    assert_int_equal(lm_stat(&r, "listener_added"), 2);
    assert_int_equal(lm_stat(&r, "listener_create_success"), 4);
    assert_int_equal(lm_stat(&r, "total_listeners_active"), 2);
    assert_int_equal(lm_stat(&r, "listener_modified"), 0);
    assert_int_equal(listeners_listed(&r), 2);
    rig_stop(&r);
}

static void test_removed_listener_refuses_new_connections_and_keeps_open_ones(void **state)
{
    (void)state;
    rig_t r;
    char l1[2048] = "", l2[4096] = "";
    tcp_listener(l1, sizeof(l1), "a", "127.0.0.1", 0, "up_a");
    strcpy(l2, l1);
    tcp_listener(l2, sizeof(l2), "b", "127.0.0.1", 0, "up_b");
    rig_start(&r, l2, "");
    int pb = port_of(&r, "b");
    int open = dial(pb);
    assert_true(open >= 0);
    assert_true(talks(open, "before", "B:"));

    install(&r, l1, "");
    WAIT_UNTIL(&r, refused(pb));
    assert_int_equal(port_of(&r, "b"), -1);
    assert_int_equal(listeners_listed(&r), 1);
    assert_true(talks(open, "after", "B:")); /* its snapshot keeps its config alive */
    assert_int_equal(lm_stat(&r, "listener_removed"), 1);
    assert_int_equal(lm_stat(&r, "total_listeners_active"), 1);
    listener_manager_sweep(r.s.lm);
    assert_int_equal(lm_stat(&r, "total_listeners_draining"), 1); /* its connection is open */

    close(open);
    WAIT_UNTIL(&r, lm_stat(&r, "total_listeners_draining") == 0);
    assert_true(new_connection_talks(port_of(&r, "a"), "A:"));
    rig_stop(&r);
}

static void test_changed_port_moves_the_listener_and_drains_the_old_socket(void **state)
{
    (void)state;
    rig_t r;
    char l1[2048] = "", l2[2048] = "";
    tcp_listener(l1, sizeof(l1), "b", "127.0.0.1", 0, "up_b");
    rig_start(&r, l1, "");
    int old_port = port_of(&r, "b");
    int open = dial(old_port);
    assert_true(open >= 0);
    assert_true(talks(open, "before", "B:"));

    int new_port = free_port();
    tcp_listener(l2, sizeof(l2), "b", "127.0.0.1", new_port, "up_b");
    install(&r, l2, "");
    assert_int_equal(port_of(&r, "b"), new_port);
    WAIT_UNTIL(&r, refused(old_port));
    WAIT_UNTIL(&r, new_connection_talks(new_port, "B:"));
    assert_true(talks(open, "after", "B:"));
    assert_int_equal(lm_stat(&r, "listener_modified"), 1);
    assert_int_equal(lm_stat(&r, "listener_in_place_updated"), 0);
    assert_int_equal(lm_stat(&r, "listener_added"), 1);
    assert_int_equal(lm_stat(&r, "total_listeners_active"), 1);
    listener_manager_sweep(r.s.lm);
    assert_int_equal(lm_stat(&r, "total_listeners_draining"), 1); /* its connection is open */
    close(open);
    WAIT_UNTIL(&r, lm_stat(&r, "total_listeners_draining") == 0);
    rig_stop(&r);
}

static void test_changed_filter_chain_keeps_the_socket_and_its_connections(void **state)
{
    (void)state;
    rig_t r;
    char l1[2048] = "", l2[2048] = "";
    tcp_listener(l1, sizeof(l1), "x", "127.0.0.1", 0, "up_a");
    rig_start(&r, l1, "");
    int port = port_of(&r, "x");
    int open = dial(port);
    assert_true(open >= 0);
    assert_true(talks(open, "before", "A:"));

    tcp_listener(l2, sizeof(l2), "x", "127.0.0.1", 0, "up_b");
    install(&r, l2, "");
    assert_int_equal(port_of(&r, "x"), port); /* the same socket */
    WAIT_UNTIL(&r, new_connection_talks(port, "B:"));
    assert_true(talks(open, "after", "A:")); /* the connection keeps its upstream */
    assert_int_equal(lm_stat(&r, "listener_modified"), 1);
    assert_int_equal(lm_stat(&r, "listener_in_place_updated"), 1);
    assert_int_equal(lm_stat(&r, "total_listeners_draining"), 0);

    install(&r, l2, ""); /* the same config again: no change at all */
    assert_int_equal(lm_stat(&r, "listener_modified"), 1);
    close(open);
    rig_stop(&r);
}

static void test_listener_that_cannot_bind_is_counted_and_the_rest_installs(void **state)
{
    (void)state;
    rig_t r;
    char l1[2048] = "", l2[4096] = "";
    tcp_listener(l1, sizeof(l1), "a", "127.0.0.1", 0, "up_a");
    rig_start(&r, l1, "");
    /* A socket without SO_REUSEPORT holds the port. */
    int taken = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    assert_int_equal(bind(taken, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(taken, 1), 0);
    getsockname(taken, (struct sockaddr *)&sin, &len);

    strcpy(l2, l1);
    tcp_listener(l2, sizeof(l2), "busy", "127.0.0.1", ntohs(sin.sin_port), "up_a");
    tcp_listener(l2, sizeof(l2), "b", "127.0.0.1", 0, "up_b");
    install(&r, l2, "");
    assert_int_equal(lm_stat(&r, "listener_create_failure"), 1);
    assert_int_equal(port_of(&r, "busy"), -1);
    WAIT_UNTIL(&r, new_connection_talks(port_of(&r, "b"), "B:"));
    assert_int_equal(lm_stat(&r, "total_listeners_active"), 2);

    close(taken); /* the next snapshot tries again, and now it binds */
    install(&r, l2, "");
    assert_int_equal(port_of(&r, "busy"), ntohs(sin.sin_port));
    WAIT_UNTIL(&r, new_connection_talks(ntohs(sin.sin_port), "A:"));
    assert_int_equal(lm_stat(&r, "total_listeners_active"), 3);
    rig_stop(&r);
}

/* A listener as a trial build gives it to an xDS client's check: name, 127.0.0.1:port. */
static snap_listener_t checked_listener(const char *name, int port)
{
    snap_listener_t l = {.name = (char *)name, .bind_to_port = true};
    struct sockaddr_in *sin = (struct sockaddr_in *)&l.addr;
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return l;
}

/* Whether a socket without SO_REUSEPORT can bind 127.0.0.1:port now (none of ours holds it). */
static bool port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
    close(fd);
    return ok;
}

static void test_sockets_bound_at_check_are_taken_by_the_install_and_the_rest_closed(void **state)
{
    (void)state;
    rig_t r;
    char l1[2048] = "", l2[4096] = "";
    tcp_listener(l1, sizeof(l1), "a", "127.0.0.1", 0, "up_a");
    rig_start(&r, l1, "");
    const host_ops_t *ops = r.s.host.ops;
    char err[256] = "";

    /* A port another socket holds: refused with the address and the errno. */
    int taken = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    assert_int_equal(bind(taken, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(taken, 1), 0);
    getsockname(taken, (struct sockaddr *)&sin, &len);
    snap_listener_t busy = checked_listener("busy", ntohs(sin.sin_port));
    assert_int_equal(ops->reserve_listener(r.s.host.ctx, &busy, err, sizeof(err)), -EADDRINUSE);
    char want[128];
    snprintf(want, sizeof(want), "cannot bind '127.0.0.1:%d': Address already in use",
             ntohs(sin.sin_port));
    assert_string_equal(err, want);
    close(taken);

    /* Bound at the check, the ports are held until the install. */
    int pb = free_port(), pc = free_port();
    snap_listener_t b = checked_listener("b", pb), c = checked_listener("c", pc);
    assert_int_equal(ops->reserve_listener(r.s.host.ctx, &b, err, sizeof(err)), 0);
    assert_int_equal(ops->reserve_listener(r.s.host.ctx, &c, err, sizeof(err)), 0);
    assert_false(port_free(pb));
    assert_false(port_free(pc));
    /* A listener running with the same socket keeps its own: nothing is bound. */
    snap_listener_t a = checked_listener("a", 0);
    assert_int_equal(ops->reserve_listener(r.s.host.ctx, &a, err, sizeof(err)), 0);

    /* The install takes b's sockets; c, which it does not have, is let go. */
    strcpy(l2, l1);
    tcp_listener(l2, sizeof(l2), "b", "127.0.0.1", pb, "up_b");
    install(&r, l2, "");
    assert_int_equal(port_of(&r, "b"), pb);
    WAIT_UNTIL(&r, new_connection_talks(pb, "B:"));
    assert_true(port_free(pc));
    assert_int_equal(lm_stat(&r, "listener_create_failure"), 0);
    assert_int_equal(lm_stat(&r, "listener_create_success"), 4);
    rig_stop(&r);
}

static void test_connection_limit_counts_the_replaced_listeners_connections(void **state)
{
    (void)state;
    rig_t r;
    char l1[2048] = "", l2[2048] = "";
    const char *limit = "layered_runtime:\n"
                        "  layers:\n"
                        "  - name: limits\n"
                        "    static_layer:\n"
                        "      envoy.resource_limits.listener.b.connection_limit: 1\n";
    tcp_listener(l1, sizeof(l1), "b", "127.0.0.1", 0, "up_b");
    rig_start(&r, l1, limit);
    int old_port = port_of(&r, "b");
    int open = dial(old_port);
    assert_true(open >= 0);
    assert_true(talks(open, "before", "B:"));

    int new_port = free_port();
    tcp_listener(l2, sizeof(l2), "b", "127.0.0.1", new_port, "up_b");
    install(&r, l2, limit);
    WAIT_UNTIL(&r, refused(old_port)); /* every worker has the new snapshot */
    /* The new socket admits nothing while the old one's connection holds the name's place. */
    for (int i = 0; i < 3; i++) {
        int fd = dial(new_port);
        if (fd >= 0) {
            assert_true(closed_by_peer(fd));
            close(fd);
        }
    }
    close(open);
    WAIT_UNTIL(&r, new_connection_talks(new_port, "B:"));
    rig_stop(&r);
}

static void test_removed_http_listener_drains_its_connections(void **state)
{
    (void)state;
    rig_t r;
    char l1[4096] = "", l2[8192] = "";
    http_listener(l1, sizeof(l1), "kept", "hello\\n");
    strcpy(l2, l1);
    http_listener(l2, sizeof(l2), "gone", "hello\\n");
    rig_start(&r, l2, "");
    int pg = port_of(&r, "gone"), pk = port_of(&r, "kept");
    char resp[1024];
    int idle = dial(pg), busy = dial(pg), other = dial(pk);
    assert_true(idle >= 0 && busy >= 0 && other >= 0);
    assert_true(http_get(idle, resp, sizeof(resp)));
    assert_true(http_get(other, resp, sizeof(resp)));
    static const char slow[] = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(write(busy, slow, sizeof(slow) - 1), sizeof(slow) - 1);
    WAIT_UNTIL(&r, atomic_load(&r.silent.got) > 0); /* the request is upstream */

    install(&r, l1, "");
    WAIT_UNTIL(&r, refused(pg));
    /* Idle keep-alive connections close at once, a request under way is answered with
     * "connection: close" before its connection closes, and the connections of the listener
     * that stays go on. */
    assert_true(closed_by_peer(idle));
    assert_true(read_to_close(busy, resp, sizeof(resp)));
    assert_non_null(strstr(resp, "HTTP/1.1 504 "));
    assert_non_null(strstr(resp, "connection: close\r\n"));
    assert_true(http_get(other, resp, sizeof(resp)));
    assert_null(strstr(resp, "connection: close"));
    close(idle);
    close(busy);
    close(other);
    WAIT_UNTIL(&r, lm_stat(&r, "total_listeners_draining") == 0);
    rig_stop(&r);
}

int main(void)
{
    log_set_level(LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_added_listener_accepts_once_installed),
        cmocka_unit_test(test_removed_listener_refuses_new_connections_and_keeps_open_ones),
        cmocka_unit_test(test_changed_port_moves_the_listener_and_drains_the_old_socket),
        cmocka_unit_test(test_changed_filter_chain_keeps_the_socket_and_its_connections),
        cmocka_unit_test(test_listener_that_cannot_bind_is_counted_and_the_rest_installs),
        cmocka_unit_test(test_sockets_bound_at_check_are_taken_by_the_install_and_the_rest_closed),
        cmocka_unit_test(test_connection_limit_counts_the_replaced_listeners_connections),
        cmocka_unit_test(test_removed_http_listener_drains_its_connections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
