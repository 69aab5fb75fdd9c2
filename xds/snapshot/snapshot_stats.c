/* The stats of a cluster and of a listener, defined when the snapshot that first holds them is
 * built (Envoy's cluster.<name>.* and listener.<address>.* names); a cluster shared with the next
 * snapshot keeps its ids (snapshot_share.c). */
#include "base/stats.h"
#include "xds/snapshot/snapshot_build.h"

static int define_ssl_stats(stats_store_t *st, const char *scope, const char *label,
                            const char *name, ssl_stat_ids_t *ssl)
{
    struct {
        stat_id_t *id;
        const char *metric;
    } defs[] = {
        {&ssl->handshake, "ssl.handshake"},       {&ssl->session_reused, "ssl.session_reused"},
        {&ssl->fail[1], "ssl.connection_error"},  {&ssl->fail[2], "ssl.fail_verify_no_cert"},
        {&ssl->fail[3], "ssl.fail_verify_error"}, {&ssl->fail[4], "ssl.fail_verify_san"},
    };
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
        int64_t id = stats_define(st, STAT_COUNTER, scope, label, name, defs[i].metric);
        if (id < 0)
            return (int)id;
        *defs[i].id = (stat_id_t)id;
    }
    return 0;
}

static int define_cluster_stats(stats_store_t *st, snap_cluster_t *c)
{
    struct {
        stat_id_t *id;
        stat_kind_t kind;
        const char *metric;
    } defs[] = {
        {&c->st.upstream_cx_total, STAT_COUNTER, "upstream_cx_total"},
        {&c->st.upstream_cx_active, STAT_GAUGE, "upstream_cx_active"},
        {&c->st.upstream_cx_connect_fail, STAT_COUNTER, "upstream_cx_connect_fail"},
        {&c->st.upstream_cx_connect_timeout, STAT_COUNTER, "upstream_cx_connect_timeout"},
        {&c->st.upstream_cx_rx_bytes_total, STAT_COUNTER, "upstream_cx_rx_bytes_total"},
        {&c->st.upstream_cx_tx_bytes_total, STAT_COUNTER, "upstream_cx_tx_bytes_total"},
        {&c->st.upstream_cx_destroy_local, STAT_COUNTER, "upstream_cx_destroy_local"},
        {&c->st.upstream_cx_destroy_remote, STAT_COUNTER, "upstream_cx_destroy_remote"},
        {&c->st.upstream_cx_none_healthy, STAT_COUNTER, "upstream_cx_none_healthy"},
        {&c->st.upstream_cx_idle_timeout, STAT_COUNTER, "upstream_cx_idle_timeout"},
        {&c->st.upstream_rq_total, STAT_COUNTER, "upstream_rq_total"},
        {&c->st.upstream_rq_xx[0], STAT_COUNTER, "upstream_rq_1xx"},
        {&c->st.upstream_rq_xx[1], STAT_COUNTER, "upstream_rq_2xx"},
        {&c->st.upstream_rq_xx[2], STAT_COUNTER, "upstream_rq_3xx"},
        {&c->st.upstream_rq_xx[3], STAT_COUNTER, "upstream_rq_4xx"},
        {&c->st.upstream_rq_xx[4], STAT_COUNTER, "upstream_rq_5xx"},
        {&c->st.upstream_rq_timeout, STAT_COUNTER, "upstream_rq_timeout"},
        {&c->st.upstream_rq_rx_reset, STAT_COUNTER, "upstream_rq_rx_reset"},
        {&c->st.upstream_rq_tx_reset, STAT_COUNTER, "upstream_rq_tx_reset"},
        {&c->st.upstream_cx_destroy_local_with_active_rq, STAT_COUNTER,
         "upstream_cx_destroy_local_with_active_rq"},
        {&c->st.upstream_cx_destroy_remote_with_active_rq, STAT_COUNTER,
         "upstream_cx_destroy_remote_with_active_rq"},
        {&c->st.upstream_rq_retry, STAT_COUNTER, "upstream_rq_retry"},
        {&c->st.upstream_rq_pending_overflow, STAT_COUNTER, "upstream_rq_pending_overflow"},
        {&c->st.upstream_cx_overflow, STAT_COUNTER, "upstream_cx_overflow"},
        {&c->st.upstream_cx_http2_total, STAT_COUNTER, "upstream_cx_http2_total"},
        {&c->st.upstream_cx_close_notify, STAT_COUNTER, "upstream_cx_close_notify"},
        {&c->st.http2_rx_reset, STAT_COUNTER, "http2.rx_reset"},
        {&c->st.http2_tx_reset, STAT_COUNTER, "http2.tx_reset"},
        {&c->st.update_attempt, STAT_COUNTER, "update_attempt"},
        {&c->st.update_success, STAT_COUNTER, "update_success"},
        {&c->st.update_failure, STAT_COUNTER, "update_failure"},
        {&c->st.membership_change, STAT_COUNTER, "membership_change"},
        {&c->st.membership_total, STAT_GAUGE, "membership_total"},
    };
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
        int64_t id = stats_define(st, defs[i].kind, "cluster", "envoy_cluster_name", c->stat_name,
                                  defs[i].metric);
        if (id < 0)
            return (int)id;
        *defs[i].id = (stat_id_t)id;
    }
    if (c->tls)
        return define_ssl_stats(st, "cluster", "envoy_cluster_name", c->stat_name, &c->st.ssl);
    return 0;
}

int snapshot_define_cluster_stats(stats_store_t *st, snap_cluster_t *c, const snap_cluster_t *was)
{
    if (was && snap_cluster_same_stats(was, c, st)) {
        c->st = was->st; /* the same names in the same store: the same ids */
        return 0;
    }
    int rc = define_cluster_stats(st, c);
    if (rc < 0)
        return rc;
    int64_t id = stats_define_histogram(st, "cluster", "envoy_cluster_name", c->stat_name,
                                        "upstream_rq_time");
    c->st.upstream_rq_time = (stat_id_t)id;
    return id < 0 ? (int)id : 0;
}

int snapshot_define_listener_stats(stats_store_t *st, snap_listener_t *l)
{
    struct {
        stat_id_t *id;
        stat_kind_t kind;
        const char *metric;
    } defs[] = {
        {&l->st.downstream_cx_total, STAT_COUNTER, "downstream_cx_total"},
        {&l->st.downstream_cx_active, STAT_GAUGE, "downstream_cx_active"},
        {&l->st.downstream_cx_destroy, STAT_COUNTER, "downstream_cx_destroy"},
        {&l->st.no_filter_chain_match, STAT_COUNTER, "no_filter_chain_match"},
        {&l->st.downstream_cx_loop, STAT_COUNTER, "downstream_cx_loop"},
        {&l->st.downstream_cx_overflow, STAT_COUNTER, "downstream_cx_overflow"},
        {&l->st.downstream_global_cx_overflow, STAT_COUNTER, "downstream_global_cx_overflow"},
    };
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
        int64_t id = stats_define(st, defs[i].kind, "listener", "envoy_listener_address",
                                  l->stat_name, defs[i].metric);
        if (id < 0)
            return (int)id;
        *defs[i].id = (stat_id_t)id;
    }
    for (size_t i = 0; i < l->n_chains; i++)
        if (l->chains[i].tls)
            return define_ssl_stats(st, "listener", "envoy_listener_address", l->stat_name,
                                    &l->st.ssl);
    return 0;
}
