/* What a finished request leaves behind: latency histograms, Istio's request metrics, per
 * virtual host and route counters, and access-log lines. */
#include <string.h>

#include "proxy/http/access_log.h"
#include "proxy/http/hcm_conn.h"
#include "proxy/net/tls_io.h"

/* The service a cluster stands for: Istio names clusters "outbound|80||svc.ns.svc.cluster.local".
 */
static const char *service_of(const char *cluster)
{
    const char *bars = strstr(cluster, "||");
    return bars ? bars + 2 : cluster;
}

/* istio_requests_total and istio_request_duration_milliseconds with Istio's main labels. The
 * stats are defined the first time a label combination appears on this worker and found in the
 * worker's cache afterwards. */
static void record_istio_metrics(hcm_conn_t *c, http_stream_t *s, uint64_t now_ms)
{
    worker_t *w = c->worker;
    const snap_cluster_t *cl = s->upstream->cluster;
    bool inbound = c->listener->inbound;
    uint64_t key = stats_key_u64(STATS_KEY_INIT, (uint64_t)(uintptr_t)cl);
    key = stats_key_u64(key, (uint64_t)s->status << 1 | inbound);
    key = stats_key_u64(key, (uint64_t)(s->grpc_status + 2) << 1 | s->grpc);
    key = stats_key_bytes(key, s->flags, strlen(s->flags));
    stat_id_t total, duration;
    if (!stats_cache_get(&w->stat_cache, key, &total) ||
        !stats_cache_get(&w->stat_cache, key ^ 1, &duration)) {
        char code[8], grpc_code[8] = "";
        snprintf(code, sizeof(code), "%d", s->status);
        if (s->grpc && s->grpc_status >= 0)
            snprintf(grpc_code, sizeof(grpc_code), "%d", s->grpc_status);
        /* This sidecar's workload is the source of what it sends out and the destination of
         * what it takes in; the other side is not known without Istio's metadata exchange. */
        const snapshot_t *sn = hcm_stream_snap(s);
        const char *me = sn->node_workload[0] ? sn->node_workload : "unknown";
        const char *my_ns = sn->node_namespace[0] ? sn->node_namespace : "unknown";
        stats_tag_t tags[] = {
            {"reporter", inbound ? "destination" : "source"},
            {"source_workload", inbound ? "unknown" : me},
            {"source_workload_namespace", inbound ? "unknown" : my_ns},
            {"destination_workload", inbound ? me : "unknown"},
            {"destination_workload_namespace", inbound ? my_ns : "unknown"},
            {"destination_service", service_of(cl->name)},
            {"destination_cluster", cl->name},
            {"request_protocol", s->grpc ? "grpc" : "http"},
            {"response_code", code},
            {"grpc_response_status", grpc_code},
            {"response_flags", s->flags},
        };
        size_t n = sizeof(tags) / sizeof(tags[0]);
        stats_store_t *store = c->worker->stats_store;
        int64_t t = stats_define_tagged(store, STAT_COUNTER, "istio_requests_total", NULL, tags, n);
        int64_t d = stats_define_histogram_tagged(store, "istio_request_duration_milliseconds",
                                                  NULL, tags, n);
        if (t < 0 || d < 0)
            return;
        total = (stat_id_t)t;
        duration = (stat_id_t)d;
        stats_cache_put(&w->stat_cache, key, total);
        stats_cache_put(&w->stat_cache, key ^ 1, duration);
    }
    stats_inc(w->stats, total);
    stats_record(w->stats, duration, (now_ms - s->start_ms) * 1000);
}

static void count_rq(stats_slots_t *st, const hcm_rq_stat_ids_t *ids, int status, uint64_t us)
{
    if (!ids->defined)
        return;
    stats_inc(st, ids->upstream_rq_total);
    if (status >= 100 && status < 600)
        stats_inc(st, ids->upstream_rq_xx[status / 100 - 1]);
    stats_record(st, ids->upstream_rq_time, us);
}

/* Requests that went upstream, counted per virtual host and per named route. */
static void record_route_stats(hcm_conn_t *c, http_stream_t *s, uint64_t now_ms)
{
    const hcm_config_t *cfg = s->cfg;
    if (s->vhost == NULL || s->route == NULL)
        return;
    size_t vi = (size_t)(s->vhost - cfg->routes->vhosts);
    size_t ri = (size_t)(s->route - s->vhost->routes);
    uint64_t us = (now_ms - s->start_ms) * 1000;
    count_rq(c->worker->stats, &cfg->vhost_stats[vi], s->status, us);
    count_rq(c->worker->stats, &cfg->route_stats[vi][ri], s->status, us);
}

static void write_access_logs(hcm_conn_t *c, http_stream_t *s, uint64_t now_ms)
{
    char upstream[80] = "", remote[80] = "", local[80] = "";
    const snap_cluster_t *cl = s->upstream ? s->upstream->cluster : NULL;
    int ep = cl ? s->upstream->endpoint : -1;
    if (cl && ep >= 0 && (size_t)ep < cl->n_endpoints)
        snprintf(upstream, sizeof(upstream), "%s", cl->endpoints[ep].label);
    else if (cl && cl->kind == CLUSTER_ORIGINAL_DST)
        snapshot_format_addr((const struct sockaddr *)&c->orig_dst, upstream, sizeof(upstream));
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(c->tcp, (struct sockaddr *)&ss, &len) == 0)
        snapshot_format_addr((struct sockaddr *)&ss, remote, sizeof(remote));
    len = sizeof(ss);
    if (uv_tcp_getsockname(c->tcp, (struct sockaddr *)&ss, &len) == 0)
        snapshot_format_addr((struct sockaddr *)&ss, local, sizeof(local));
    access_log_entry_t e = {
        .start_us = s->start_us,
        .request_headers = &s->head.headers,
        .response_headers = s->resp_headers.v ? &s->resp_headers : NULL,
        .method = s->head.method,
        .method_len = s->head.method_len,
        .path = s->head.path,
        .path_len = s->head.path_len,
        .authority = s->head.authority,
        .authority_len = s->head.authority_len,
        .protocol = http_proto_name(s->head.proto),
        .response_code = s->status,
        .response_flags = s->flags,
        .bytes_received = s->bytes_in,
        .bytes_sent = s->bytes_out,
        .duration_ms = now_ms - s->start_ms,
        .upstream_service_time_ms = s->upstream_ms,
        .upstream_host = upstream[0] ? upstream : NULL,
        .upstream_cluster = cl ? cl->name : NULL,
        .route_name = s->route && s->route->name[0] ? s->route->name : NULL,
        .downstream_remote = remote[0] ? remote : NULL,
        .downstream_local = local[0] ? local : NULL,
        .request_id = s->request_id[0] ? s->request_id : NULL,
        .request_duration_ms = s->req_done_ms,
        .response_duration_ms = s->upstream_ms,
    };
    if (c->tls) {
        const tls_session_t *ts = tls_io_session(c->tls);
        e.downstream_peer_uri_san = tls_session_peer_spiffe_id(ts);
        e.downstream_tls_version = tls_session_version(ts);
        e.downstream_tls_cipher = tls_session_cipher(ts);
        e.requested_server_name = tls_session_server_name(ts);
    }
    for (size_t i = 0; i < s->cfg->n_logs; i++)
        access_log_write(s->cfg->logs[i], c->worker->index, &e);
}

void hcm_report_stream(hcm_conn_t *c, http_stream_t *s, uint64_t now_ms)
{
    stats_slots_t *st = c->worker->stats;
    const hcm_config_t *cfg = s->cfg;
    /* The loop's clock has millisecond resolution; precise enough for these buckets. */
    stats_record(st, cfg->st.downstream_rq_time, (now_ms - s->start_ms) * 1000);
    const snap_cluster_t *cl = s->upstream ? s->upstream->cluster : NULL;
    if (cl) {
        if (s->upstream_ms >= 0)
            stats_record(st, cl->st.upstream_rq_time, (uint64_t)s->upstream_ms * 1000);
        record_istio_metrics(c, s, now_ms);
        record_route_stats(c, s, now_ms);
    }
    if (cfg->n_logs)
        write_access_logs(c, s, now_ms);
}
