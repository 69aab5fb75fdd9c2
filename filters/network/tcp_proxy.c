/* envoy.filters.network.tcp_proxy: parses TcpProxy, picks the cluster (or one of weighted
 * clusters) for each connection, and hands the connection to the byte relay. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb-c.h"
#include "proxy/listener/network_filter.h"
#include "proxy/tcp/tcp_session.h"
#include "xds/config/config.h"

#define DEFAULT_IDLE_TIMEOUT_MS (3600 * 1000) /* Envoy's default: 1 hour */

typedef struct tcp_proxy_target {
    char *name;
    const snap_cluster_t *cluster; /* NULL when the snapshot has no such cluster */
    uint32_t weight;
} tcp_proxy_target_t;

typedef struct tcp_proxy_config {
    tcp_proxy_stat_ids_t st;
    uint64_t idle_timeout_ms;
    tcp_proxy_target_t *targets;
    size_t n_targets;
    uint64_t total_weight;
} tcp_proxy_config_t;

static void tcp_proxy_config_free(void *p)
{
    tcp_proxy_config_t *cfg = p;
    for (size_t i = 0; i < cfg->n_targets; i++)
        free(cfg->targets[i].name);
    free(cfg->targets);
    free(cfg);
}

static int define_stats(tcp_proxy_config_t *cfg, stats_store_t *stats, const char *prefix)
{
    struct {
        stat_id_t *id;
        const char *metric;
    } defs[] = {
        {&cfg->st.downstream_cx_total, "downstream_cx_total"},
        {&cfg->st.downstream_cx_no_route, "downstream_cx_no_route"},
        {&cfg->st.downstream_cx_rx_bytes_total, "downstream_cx_rx_bytes_total"},
        {&cfg->st.downstream_cx_tx_bytes_total, "downstream_cx_tx_bytes_total"},
        {&cfg->st.idle_timeout, "idle_timeout"},
        {&cfg->st.upstream_flush_total, "upstream_flush_total"},
    };
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
        int64_t id =
            stats_define(stats, STAT_COUNTER, "tcp", "envoy_tcp_prefix", prefix, defs[i].metric);
        if (id < 0)
            return (int)id;
        *defs[i].id = (stat_id_t)id;
    }
    return 0;
}

static int add_target(tcp_proxy_config_t *cfg, const struct snapshot *snap, const char *name,
                      uint32_t weight)
{
    tcp_proxy_target_t *t = &cfg->targets[cfg->n_targets];
    t->name = strdup(name);
    if (t->name == NULL)
        return -ENOMEM;
    /* A cluster that does not exist (yet) is not a config error: with CDS it may arrive later.
     * Connections meanwhile are refused and counted as downstream_cx_no_route. */
    t->cluster = snapshot_find_cluster(snap, name);
    t->weight = weight;
    cfg->total_weight += weight;
    cfg->n_targets++;
    return 0;
}

static int tcp_proxy_config_parse(const void *any, const struct snapshot *snap,
                                  stats_store_t *stats, void **out, char *err, size_t errlen)
{
    ProtobufCMessage *msg = NULL;
    int rc = config_any_unpack(
        any, &envoy__extensions__filters__network__tcp_proxy__v3__tcp_proxy__descriptor, &msg, err,
        errlen);
    if (rc < 0)
        return rc;
    Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy *m = (void *)msg;
    tcp_proxy_config_t *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    if (m->stat_prefix == NULL || m->stat_prefix[0] == '\0') {
        snprintf(err, errlen, "stat_prefix is required");
        rc = -EINVAL;
        goto out;
    }
    cfg->idle_timeout_ms = config_duration_ms(m->idle_timeout, DEFAULT_IDLE_TIMEOUT_MS);
    size_t n = 1;
    if (m->cluster_specifier_case ==
        ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS)
        n = m->weighted_clusters->n_clusters;
    cfg->targets = calloc(n ? n : 1, sizeof(*cfg->targets));
    if (cfg->targets == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    if (m->cluster_specifier_case ==
        ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_CLUSTER) {
        rc = add_target(cfg, snap, m->cluster, 1);
    } else if (
        m->cluster_specifier_case ==
        ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS) {
        for (size_t i = 0; rc == 0 && i < n; i++) {
            const char *name = m->weighted_clusters->clusters[i]->name;
            uint32_t w = m->weighted_clusters->clusters[i]->weight;
            if (name == NULL || *name == '\0' || w == 0) {
                snprintf(err, errlen,
                         "weighted_clusters[%zu]: a name and a weight >= 1 are "
                         "required",
                         i);
                rc = -EINVAL;
            } else {
                rc = add_target(cfg, snap, name, w);
            }
        }
    } else {
        snprintf(err, errlen, "cluster or weighted_clusters is required");
        rc = -EINVAL;
    }
    if (rc == 0)
        rc = define_stats(cfg, stats, m->stat_prefix);
out:
    if (rc < 0 && cfg) {
        tcp_proxy_config_free(cfg);
        cfg = NULL;
    }
    *out = cfg;
    protobuf_c_message_free_unpacked(msg, NULL);
    return rc;
}

static int tcp_proxy_on_accept(accepted_conn_t *conn, const void *config)
{
    const tcp_proxy_config_t *cfg = config;
    const tcp_proxy_target_t *t = &cfg->targets[0];
    if (cfg->n_targets > 1) {
        /* Per-connection weighted choice; rand_r state is per worker thread. */
        static _Thread_local unsigned seed;
        if (seed == 0)
            seed = (unsigned)(uintptr_t)conn->worker ^ 0x5bd1e995u;
        uint64_t point = (uint64_t)rand_r(&seed) % cfg->total_weight;
        for (size_t i = 0; i < cfg->n_targets; i++) {
            if (point < cfg->targets[i].weight) {
                t = &cfg->targets[i];
                break;
            }
            point -= cfg->targets[i].weight;
        }
    }
    if (t->cluster == NULL) {
        stats_inc(conn->stats, cfg->st.downstream_cx_total);
        stats_inc(conn->stats, cfg->st.downstream_cx_no_route);
        return -ENOENT;
    }
    return relay_start(conn, t->cluster, &cfg->st, cfg->idle_timeout_ms);
}

const net_filter_ops_t tcp_proxy_filter_ops = {
    .name = "envoy.filters.network.tcp_proxy",
    .type_url = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
    .config_parse = tcp_proxy_config_parse,
    .config_free = tcp_proxy_config_free,
    .on_accept = tcp_proxy_on_accept,
};
