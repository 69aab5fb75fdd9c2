/* Process lifecycle on the main thread: config load, socket setup, workers, admin, signals,
 * and the drain that SIGTERM starts. */
#include "proxy/server/server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/admin/admin.h"
#include "proxy/server/cert_watch.h"
#include "proxy/server/conn_kinds.h"
#include "proxy/server/listener_manager.h"
#include "proxy/upstream/lb.h"
#include "proxy/server/dns.h"
#include "proxy/server/xds_client.h"
#include "proxy/core/log.h"

#define TICK_MS 100

const char *server_state_name(server_state_t st)
{
    switch (st) {
    case SERVER_STARTING:
        return "PRE_INITIALIZING";
    case SERVER_LIVE:
        return "LIVE";
    case SERVER_DRAINING:
        return "DRAINING";
    default:
        return "STOPPING";
    }
}

bool server_ready(const server_t *s)
{
    return s->state == SERVER_LIVE;
}

int64_t server_active_connections(const server_t *s)
{
    int64_t n = 0;
    for (unsigned i = 0; i < s->n_started; i++)
        n += atomic_load_explicit(&s->workers[i].active_conns, memory_order_relaxed);
    return n;
}

/* membership_change and membership_total of snap's clusters, against old (NULL at start). A
 * cluster shared with old (most of them when an update changed a few) has old's endpoints and
 * stat ids, so its gauge holds its count already and nothing changed: it is skipped without a
 * lookup, tried at the same place in old, where clusters stay build after build, and a block of
 * them that the two snapshots hold alike is skipped whole, without reading its clusters. */
static void count_membership(server_t *s, const snapshot_t *old, const snapshot_t *snap)
{
    for (size_t i = 0; i < snap->n_clusters; i++) {
        size_t same = old ? snapshot_clusters_shared_from(old, snap, i) : 0;
        if (same) { /* a block of clusters the update left alone */
            i += same - 1;
            continue;
        }
        const snap_cluster_t *c = &snap->clusters[i];
        if (old && i < old->n_clusters && snapshot_cluster_shared(&old->clusters[i], c))
            continue;
        const snap_cluster_t *was = old ? snapshot_find_cluster(old, c->name) : NULL;
        if (was && snapshot_cluster_shared(was, c))
            continue;
        if (was ? !cluster_same_endpoints(was, c) : c->n_endpoints > 0)
            stats_inc(s->main_slots, c->st.membership_change);
        server_set_gauge(s, c->st.membership_total, (int64_t)c->n_endpoints);
    }
}

void server_install_snapshot(server_t *s, snapshot_t *snap)
{
    if (s->state == SERVER_STOPPING) {
        snapshot_unref(snap); /* the workers are ending */
        return;
    }
    /* Draining, the workers have closed their listeners and take no new ones. */
    if (s->state != SERVER_DRAINING)
        listener_manager_update(s->lm, snap, false, s->sockets, NULL, 0);
    for (unsigned i = 0; i < s->n_started; i++) {
        worker_publish(&s->workers[i], snapshot_ref(snap), s->sockets[i]);
        s->sockets[i] = NULL;
    }
    count_membership(s, s->snap, snap);
    snapshot_t *old = s->snap;
    s->snap = snap;
    snapshot_unref(old);
}

void server_set_gauge(server_t *s, stat_id_t id, int64_t value)
{
    stats_add(s->main_slots, id, value - stats_value(s->stats, id));
}

static const snapshot_t *host_op_snapshot(void *ctx)
{
    const server_t *s = ctx;
    return s->snap;
}

static void host_op_install_snapshot(void *ctx, snapshot_t *snap)
{
    server_install_snapshot(ctx, snap);
}

static const snap_resolver_t *host_op_resolver(void *ctx)
{
    const server_t *s = ctx;
    return dns_resolver(s->dns);
}

static bool host_op_ready(void *ctx)
{
    return server_ready(ctx);
}

static const char *host_op_state_name(void *ctx)
{
    const server_t *s = ctx;
    return server_state_name(s->state);
}

static void host_op_quit(void *ctx)
{
    server_quit(ctx);
}

static char *host_op_config_dump(void *ctx)
{
    const server_t *s = ctx;
    return s->xds ? xds_client_config_dump(s->xds, s->snap) : snapshot_config_dump(s->snap);
}

static void host_op_listeners(void *ctx,
                              void (*fn)(void *arg, const char *name, const struct sockaddr *addr),
                              void *arg)
{
    const server_t *s = ctx;
    listener_manager_list(s->lm, fn, arg);
}

static void host_op_text_readouts(void *ctx,
                                  void (*fn)(void *arg, const char *name, const char *value),
                                  void *arg)
{
    const server_t *s = ctx;
    if (s->xds)
        xds_client_text_readouts(s->xds, fn, arg);
}

static int host_op_reserve_listener(void *ctx, const snap_listener_t *l, char *err, size_t errlen)
{
    server_t *s = ctx;
    return listener_manager_reserve(s->lm, l, err, errlen);
}

static const host_ops_t server_host_ops = {
    .snapshot = host_op_snapshot,
    .install_snapshot = host_op_install_snapshot,
    .resolver = host_op_resolver,
    .ready = host_op_ready,
    .state_name = host_op_state_name,
    .quit = host_op_quit,
    .config_dump = host_op_config_dump,
    .listeners = host_op_listeners,
    .text_readouts = host_op_text_readouts,
    .reserve_listener = host_op_reserve_listener,
};

host_t server_host(server_t *s)
{
    return (host_t){
        .ops = &server_host_ops,
        .ctx = s,
        .loop = s->loop,
        .stats = s->stats,
        .slots = s->main_slots,
        .start_ms = s->start_ms,
        .config_path = s->opts.config_path,
        .concurrency = s->nworkers,
        .drain_time_s = s->opts.drain_time_s,
    };
}

static void on_closed_quietly(uv_handle_t *h)
{
    (void)h;
}

/* Ends the main loop: workers reset what is still open and exit. */
static void server_stop(server_t *s)
{
    if (s->state == SERVER_STOPPING)
        return;
    s->state = SERVER_STOPPING;
    server_set_gauge(s, s->st.live, 0);
    for (unsigned i = 0; i < s->n_started; i++)
        worker_stop(&s->workers[i]);
    admin_stop(s->admin);
    s->admin = NULL;
    admin_stop(s->health);
    s->health = NULL;
    cert_watch_stop(s->cert_watch);
    s->cert_watch = NULL;
    dns_stop(s->dns);
    s->dns = NULL;
    xds_client_stop(s->xds);
    s->xds = NULL;
    uv_close((uv_handle_t *)&s->sigterm, on_closed_quietly);
    uv_close((uv_handle_t *)&s->sigint, on_closed_quietly);
    uv_close((uv_handle_t *)&s->tick, on_closed_quietly);
}

void server_quit(server_t *s)
{
    server_stop(s);
}

void server_drain(server_t *s)
{
    if (s->state == SERVER_DRAINING || s->state == SERVER_STOPPING)
        return;
    s->state = SERVER_DRAINING;
    s->drain_deadline_ms = uv_now(s->loop) + (uint64_t)s->opts.drain_time_s * 1000;
    log_info("draining: listeners closed; waiting up to %us for %lld connection(s)",
             s->opts.drain_time_s, (long long)server_active_connections(s));
    for (unsigned i = 0; i < s->n_started; i++)
        worker_drain(&s->workers[i]);
}

/* The xDS client's first config is in: readiness no longer waits for it. */
static void on_xds_ready(void *arg)
{
    server_t *s = arg;
    s->xds_ready = true;
}

static void on_tick(uv_timer_t *t)
{
    server_t *s = t->data;
    uint64_t now = uv_now(s->loop);
    if (s->state == SERVER_STARTING && s->n_started == s->nworkers) {
        unsigned up = 0;
        for (unsigned i = 0; i < s->n_started; i++) {
            if (s->workers[i].start_error) {
                log_error("worker %u could not start its listeners; exiting", i);
                s->exit_code = 1;
                server_stop(s);
                return;
            }
            up += atomic_load(&s->workers[i].listening);
        }
        if (up == s->nworkers && (s->xds == NULL || s->xds_ready)) {
            s->state = SERVER_LIVE;
            server_set_gauge(s, s->st.live, 1);
            log_info("all %u workers listening: ready", s->nworkers);
        }
    }
    listener_manager_sweep(s->lm); /* frees listeners whose last connection closed */
    int64_t active = server_active_connections(s);
    server_set_gauge(s, s->st.uptime, (int64_t)((now - s->start_ms) / 1000));
    server_set_gauge(s, s->st.total_connections, active);
    server_set_gauge(s, s->st.state,
                     s->state == SERVER_LIVE       ? 0
                     : s->state == SERVER_DRAINING ? 1
                                                   : 2);
    if (s->state == SERVER_DRAINING) {
        if (active == 0) {
            log_info("drained: no open connections; exiting");
            server_stop(s);
        } else if (now >= s->drain_deadline_ms) {
            log_info("drain time over with %lld open connection(s); exiting", (long long)active);
            server_stop(s);
        }
    }
}

static void on_signal(uv_signal_t *sig, int signum)
{
    server_t *s = sig->data;
    log_info("received %s", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    if (s->state == SERVER_DRAINING && signum == SIGINT)
        server_stop(s); /* a second Ctrl-C does not wait */
    else
        server_drain(s);
}

static int define_server_stats(server_t *s)
{
    struct {
        stat_id_t *id;
        const char *metric;
    } defs[] = {
        {&s->st.live, "live"},
        {&s->st.state, "state"},
        {&s->st.concurrency, "concurrency"},
        {&s->st.uptime, "uptime"},
        {&s->st.total_connections, "total_connections"},
    };
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
        int64_t id = stats_define(s->stats, STAT_GAUGE, "server", NULL, NULL, defs[i].metric);
        if (id < 0)
            return (int)id;
        *defs[i].id = (stat_id_t)id;
    }
    server_set_gauge(s, s->st.concurrency, s->nworkers);
    return 0;
}

static int parse_admin_override(const char *text, struct sockaddr_storage *out)
{
    char host[64];
    const char *colon = strrchr(text, ':');
    if (colon == NULL || (size_t)(colon - text) >= sizeof(host))
        return -EINVAL;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return -EINVAL;
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out) == 0)
        return 0;
    return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)out) == 0 ? 0 : -EINVAL;
}

/* Starts the workers of arg (the server_t) on its snapshot, each with the sockets bound for it,
 * once (at start, or when the first DNS answers are in). */
static void start_workers(void *arg)
{
    server_t *s = arg;
    for (unsigned w = 0; s->state == SERVER_STARTING && w < s->nworkers; w++) {
        worker_socket_t *sockets = s->sockets[w];
        s->sockets[w] = NULL; /* the worker's now, even if it fails */
        if (worker_start(&s->workers[w], w, snapshot_ref(s->snap), s->stats, sockets,
                         listener_manager_global_count(s->lm), &conn_kinds,
                         (uint64_t)s->opts.drain_time_s * 1000) < 0) {
            log_error("worker %u: could not start", w);
            s->exit_code = 1;
            break;
        }
        s->n_started++;
    }
    if (s->exit_code != 0)
        server_stop(s);
}

/* Envoy ignores runtime keys it does not know; a key with no effect here is said once, at load
 * (a rebuilt snapshot does not say it again). */
static void warn_unused_runtime(const snapshot_t *snap)
{
    char keys[1536];
    size_t n = runtime_unused_keys(&snap->runtime, keys, sizeof(keys));
    if (n)
        log_warn(
            "layered_runtime: %zu key%s with no effect (Remora reads only " RUNTIME_GLOBAL_MAX_CX
            " and " RUNTIME_LISTENER_LIMIT_PREFIX "<listener>" RUNTIME_LISTENER_LIMIT_SUFFIX
            "): %s",
            n, n == 1 ? "" : "s", keys);
}

/* Starts what runs on the main loop around the workers, each handed s->host: the admin endpoint
 * on admin_addr (NULL: none) and the health port, signals, the tick, the DNS of DNS clusters
 * (which starts the workers once its first answers are in, or now without host names) and
 * certificate rotation. A failure is logged and sets s->exit_code. */
static void start_main_loop(server_t *s, const struct sockaddr *admin_addr)
{
    const server_options_t *opts = &s->opts;
    char err[1024];
    int rc;
    if (admin_addr && admin_start(&s->host, admin_addr, &s->admin, err, sizeof(err)) < 0) {
        log_error("%s", err);
        s->exit_code = 1;
    }
    if (opts->health_addr) {
        struct sockaddr_storage health_addr;
        if (parse_admin_override(opts->health_addr, &health_addr) < 0) {
            log_error("--health-address: '%s' is not IP:PORT", opts->health_addr);
            s->exit_code = 1;
        } else if (admin_start_health(&s->host, (struct sockaddr *)&health_addr, &s->health, err,
                                      sizeof(err)) < 0) {
            log_error("%s", err);
            s->exit_code = 1;
        }
    }

    uv_signal_init(s->loop, &s->sigterm);
    uv_signal_init(s->loop, &s->sigint);
    s->sigterm.data = s->sigint.data = s;
    uv_signal_start(&s->sigterm, on_signal, SIGTERM);
    uv_signal_start(&s->sigint, on_signal, SIGINT);
    uv_timer_init(s->loop, &s->tick);
    s->tick.data = s;
    uv_timer_start(&s->tick, on_tick, 0, TICK_MS);
    /* Like Envoy, the listeners wait for the DNS clusters' first answers. */
    if (s->exit_code == 0 && (rc = dns_start(&s->host, start_workers, s, &s->dns)) < 0) {
        log_error("DNS: cannot start: %s", strerror(-rc));
        s->exit_code = 1;
    }
    if (s->exit_code == 0 && s->dns == NULL)
        start_workers(s);
    if (s->exit_code == 0 &&
        (rc = cert_watch_start(&s->host, opts->cert_check_interval_ms, opts->cert_expiry_warn_s,
                               &s->cert_watch)) < 0) {
        log_error("certificate watch: cannot start: %s", strerror(-rc));
        s->exit_code = 1;
    }
    if (s->exit_code == 0 &&
        (rc = xds_client_start(&s->host, on_xds_ready, s, &s->xds, err, sizeof(err))) < 0) {
        log_error("xds: cannot start: %s", err);
        s->exit_code = 1;
    }
}

/* Loads opts->config_path into *snap for nworkers workers, with the filters of opts and a new
 * table of cluster runtime state (the snapshot holds it, and every later build reuses it).
 * Returns 0, or -1 with the error on stderr. */
static int load_config(const server_options_t *opts, unsigned nworkers, stats_store_t *stats,
                       snapshot_t **snap)
{
    char err[1024];
    /* The clusters' runtime state lives in this table for as long as any snapshot does: each
     * snapshot holds a reference, and so does nothing else once the first one is built. */
    cluster_states_t *states = NULL;
    if (cluster_states_new(nworkers, &states) < 0) {
        fprintf(stderr, "remora: out of memory\n");
        return -1;
    }
    snap_build_opts_t bopts = {
        .filters = opts->filters, .cluster_runtime = &cluster_runtime, .cluster_states = states};
    int rc = snapshot_load_file(opts->config_path, &bopts, stats, nworkers, snap, err, sizeof(err));
    cluster_states_unref(states);
    if (rc < 0) {
        fprintf(stderr, "remora: invalid configuration: %s\n", err);
        return -1;
    }
    warn_unused_runtime(*snap);
    return 0;
}

/* --concurrency, or one worker per core. */
static unsigned worker_count(const server_options_t *opts)
{
    unsigned n = opts->concurrency ? opts->concurrency : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
    return n ? n : 1;
}

/* Frees what server_open made before the main loop ran (s borrowed). */
static void server_unopen(server_t *s)
{
    for (unsigned w = 0; s->sockets && w < s->nworkers; w++)
        worker_sockets_free(s->sockets[w]);
    free(s->sockets);
    listener_manager_free(s->lm);
    free(s->workers);
    snapshot_unref(s->snap);
    stats_store_free(s->stats);
}

/* The admin address: the bootstrap's, or --admin-address; NULL without one. */
static const struct sockaddr *admin_address(const server_t *s, struct sockaddr_storage *buf)
{
    if (s->opts.admin_addr) {
        if (parse_admin_override(s->opts.admin_addr, buf) < 0)
            return NULL;
        return (const struct sockaddr *)buf;
    }
    *buf = s->snap->admin_addr;
    return s->snap->has_admin ? (const struct sockaddr *)buf : NULL;
}

int server_open(server_t *s, const server_options_t *opts, uv_loop_t *loop)
{
    memset(s, 0, sizeof(*s));
    s->opts = *opts;
    signal(SIGPIPE, SIG_IGN);
    s->nworkers = worker_count(opts);
    s->stats = stats_store_new(s->nworkers + 1);
    if (s->stats == NULL)
        return 1;
    s->main_slots = stats_slots(s->stats, s->nworkers);
    if (load_config(opts, s->nworkers, s->stats, &s->snap) < 0) {
        server_unopen(s);
        return 1;
    }
    struct sockaddr_storage admin_buf;
    const struct sockaddr *admin_addr = admin_address(s, &admin_buf);
    if (opts->admin_addr && admin_addr == NULL) {
        fprintf(stderr, "remora: --admin-address: '%s' is not IP:PORT\n", opts->admin_addr);
        server_unopen(s);
        return 1;
    }
    s->loop = loop;
    s->start_ms = uv_now(loop);
    s->host = server_host(s);
    s->workers = calloc(s->nworkers, sizeof(*s->workers));
    s->sockets = calloc(s->nworkers, sizeof(*s->sockets));
    if (s->workers == NULL || s->sockets == NULL || define_server_stats(s) < 0 ||
        listener_manager_new(s->nworkers, s->stats, s->main_slots, &s->lm) < 0) {
        fprintf(stderr, "remora: out of memory\n");
        server_unopen(s);
        return 1;
    }
    count_membership(s, NULL, s->snap);
    char err[1024];
    if (listener_manager_update(s->lm, s->snap, true, s->sockets, err, sizeof(err)) < 0) {
        server_unopen(s); /* the error is logged */
        return 1;
    }
    start_main_loop(s, admin_addr);
    if (s->exit_code != 0)
        server_stop(s);
    return 0;
}

int server_close(server_t *s)
{
    for (unsigned w = 0; w < s->nworkers; w++) {
        worker_sockets_free(s->sockets[w]); /* those of workers that never started */
        s->sockets[w] = NULL;
    }
    for (unsigned w = 0; w < s->n_started; w++)
        worker_join(&s->workers[w]);
    uv_run(s->loop, UV_RUN_NOWAIT);
    int rc = s->exit_code;
    server_unopen(s);
    return rc;
}

/* --validate: load and check the config, then exit. */
static int validate_config(const server_options_t *opts)
{
    unsigned nworkers = worker_count(opts);
    stats_store_t *stats = stats_store_new(nworkers + 1);
    snapshot_t *snap = NULL;
    int rc = stats ? load_config(opts, nworkers, stats, &snap) : -1;
    if (rc == 0)
        printf("configuration '%s' OK\n", opts->config_path);
    snapshot_unref(snap);
    stats_store_free(stats);
    return rc == 0 ? 0 : 1;
}

int server_run(const server_options_t *opts)
{
    if (opts->validate_only)
        return validate_config(opts);
    uv_loop_t loop;
    uv_loop_init(&loop);
    server_t srv;
    int rc = server_open(&srv, opts, &loop);
    if (rc == 0) {
        uv_run(&loop, UV_RUN_DEFAULT);
        rc = server_close(&srv);
    }
    uv_loop_close(&loop);
    return rc;
}
