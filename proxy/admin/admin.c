/* The admin endpoint: a small HTTP/1.1 server on the main loop with Envoy's paths (/stats,
 * /stats/prometheus, /clusters, /listeners, /config_dump, /certs, /server_info, /ready,
 * /logging, /quitquitquit), one request per connection. */
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "proxy/admin/admin.h"

#include "base/version.h"
#include "proxy/admin/admin_certs.h"
#include "proxy/admin/admin_http.h"
#include "proxy/admin/admin_readouts.h"
#include "proxy/admin/admin_stats.h"
#include "proxy/core/log.h"
#include "proxy/http/h1/http1.h"
#include "base/strbuf.h"

struct admin {
    admin_http_t *http;
    const host_t *host; /* borrowed */
    bool health_only;   /* the kubelet's port: /healthz/ready and nothing else */
};

static char *render_stats_text(const void *ctx, const stats_entry_t *list, int n, const regex_t *re)
{
    return admin_stats_text(ctx, list, n, re);
}

static char *render_stats_json(const void *ctx, const stats_entry_t *list, int n, const regex_t *re)
{
    return admin_stats_json(ctx, list, n, re);
}

static void handle_stats(const host_t *host, const admin_request_t *rq, admin_response_t *r)
{
    /* Certificate expiry depends on the clock, so its gauges are computed when read. */
    int rc = admin_certs_update_gauges(host, (int64_t)time(NULL));
    if (rc < 0)
        log_warn("admin: /stats: certificate gauges not updated: %s", strerror(-rc));
    /* The host's text readouts go among the stats (never into Prometheus). */
    admin_stats_view_t view = {render_stats_text, render_stats_json, host};
    admin_respond_stats(r, rq, host->stats, &view);
}

static const char *cluster_kind_name(cluster_kind_t k)
{
    static const char *const names[] = {[CLUSTER_STATIC] = "STATIC",
                                        [CLUSTER_ORIGINAL_DST] = "ORIGINAL_DST",
                                        [CLUSTER_STRICT_DNS] = "STRICT_DNS",
                                        [CLUSTER_LOGICAL_DNS] = "LOGICAL_DNS",
                                        [CLUSTER_EDS] = "EDS"};
    return names[k];
}

static void handle_clusters(const host_t *host, const admin_request_t *rq, admin_response_t *r)
{
    char format[32] = "";
    admin_query_param(rq->query, "format", format, sizeof(format));
    const snapshot_t *snap = host_snapshot(host);
    if (strcmp(format, "json") == 0) {
        json_t *list = json_array();
        for (size_t i = 0; i < snap->n_clusters; i++) {
            const snap_cluster_t *c = &snap->clusters[i];
            json_t *hosts = json_array();
            for (size_t j = 0; j < c->n_endpoints; j++) {
                const snap_endpoint_t *e = &c->endpoints[j];
                json_t *h = json_pack("{s:s, s:I, s:s}", "address", e->label, "weight",
                                      (json_int_t)e->weight, "health_status", "HEALTHY");
                if (e->hostname)
                    json_object_set_new(h, "hostname", json_string(e->hostname));
                json_array_append_new(hosts, h);
            }
            json_array_append_new(
                list,
                json_pack("{s:s, s:s, s:s, s:o, s:I, s:I, s:I}", "name", c->name,
                          "observability_name", c->stat_name, "type", cluster_kind_name(c->kind),
                          "host_statuses", hosts, "upstream_cx_active",
                          (json_int_t)stats_value(host->stats, c->st.upstream_cx_active),
                          "upstream_cx_total",
                          (json_int_t)stats_value(host->stats, c->st.upstream_cx_total),
                          "upstream_cx_connect_fail",
                          (json_int_t)stats_value(host->stats, c->st.upstream_cx_connect_fail)));
        }
        admin_respond_json(r, json_pack("{s:o}", "cluster_statuses", list));
        return;
    }
    strbuf_t sb = {0};
    sb_puts(&sb, "");
    for (size_t i = 0; i < snap->n_clusters; i++) {
        const snap_cluster_t *c = &snap->clusters[i];
        sb_printf(&sb, "%s::observability_name::%s\n", c->name, c->stat_name);
        sb_printf(&sb, "%s::type::%s\n", c->name, cluster_kind_name(c->kind));
        sb_printf(&sb, "%s::upstream_cx_active::%lld\n", c->name,
                  (long long)stats_value(host->stats, c->st.upstream_cx_active));
        sb_printf(&sb, "%s::upstream_cx_connect_fail::%lld\n", c->name,
                  (long long)stats_value(host->stats, c->st.upstream_cx_connect_fail));
        for (size_t j = 0; j < c->n_endpoints; j++) {
            const snap_endpoint_t *e = &c->endpoints[j];
            if (e->hostname)
                sb_printf(&sb, "%s::%s::hostname::%s\n", c->name, e->label, e->hostname);
            sb_printf(&sb, "%s::%s::weight::%u\n", c->name, e->label, e->weight);
            sb_printf(&sb, "%s::%s::health_flags::healthy\n", c->name, e->label);
        }
    }
    r->status = 200;
    r->content_type = "text/plain; charset=UTF-8";
    r->body = sb_take(&sb);
}

typedef struct listeners_out {
    const snapshot_t *snap;
    json_t *list; /* ?format=json, or NULL */
    strbuf_t sb;
} listeners_out_t;

static void add_listener(void *arg, const char *name, const struct sockaddr *addr)
{
    listeners_out_t *o = arg;
    char text[80];
    snapshot_format_addr(addr, text, sizeof(text));
    if (o->list == NULL) {
        sb_printf(&o->sb, "%s::%s\n", name, text);
        return;
    }
    const snap_listener_t *l = snapshot_find_listener(o->snap, name);
    json_array_append_new(o->list, json_pack("{s:s, s:s, s:b}", "name", name, "local_address", text,
                                             "original_dst", l && l->use_original_dst));
}

/* The listeners running now (the listener manager's: a listener that could not bind is not
 * there), each with the address it accepts on. */
static void handle_listeners(const host_t *host, const admin_request_t *rq, admin_response_t *r)
{
    char format[32] = "";
    admin_query_param(rq->query, "format", format, sizeof(format));
    bool json = strcmp(format, "json") == 0;
    listeners_out_t o = {.snap = host_snapshot(host), .list = json ? json_array() : NULL};
    sb_puts(&o.sb, "");
    host_listeners(host, add_listener, &o);
    if (json) {
        sb_free(&o.sb);
        admin_respond_json(r, json_pack("{s:o}", "listener_statuses", o.list));
        return;
    }
    r->status = 200;
    r->content_type = "text/plain; charset=UTF-8";
    r->body = sb_take(&o.sb);
}

/* Envoy's server_info fields, then the workload identity: "identity" is the first leaf
 * certificate's (null when the sidecar presents none) and "identities" lists every distinct one
 * when its TLS contexts present several. */
static void handle_server_info(const host_t *host, admin_response_t *r)
{
    char uptime[32];
    snprintf(uptime, sizeof(uptime), "%llus",
             (unsigned long long)((uv_now(host->loop) - host->start_ms) / 1000));
    char drain[32];
    snprintf(drain, sizeof(drain), "%us", host->drain_time_s);
    const snapshot_t *snap = host_snapshot(host);
    json_t *root = json_pack(
        "{s:s, s:s, s:s, s:{s:s, s:s}, s:{s:s, s:I, s:s}}", "version", "remora/" REMORA_VERSION,
        "state", host_state_name(host), "uptime_current_epoch", uptime, "node", "id", snap->node_id,
        "cluster", snap->node_cluster, "command_line_options", "config_path", host->config_path,
        "concurrency", (json_int_t)host->concurrency, "drain_time", drain);
    json_t *ids = admin_certs_identities_json(snap);
    int rc = ids ? 0 : -1;
    if (rc == 0) {
        json_t *first = json_array_get(ids, 0);
        rc |= json_object_set(root, "identity", first ? first : json_null());
        if (json_array_size(ids) > 1)
            rc |= json_object_set(root, "identities", ids);
    }
    json_decref(ids);
    if (rc != 0) {
        json_decref(root);
        root = NULL;
    }
    admin_respond_json(r, root);
}

static void handle_logging(const admin_request_t *rq, admin_response_t *r)
{
    char level[32];
    if (admin_query_param(rq->query, "level", level, sizeof(level))) {
        log_level_t lv;
        if (log_level_parse(level, &lv) != 0) {
            admin_respond_text(r, 400,
                               "unknown level; use trace, debug, info, warning, error, off\n");
            return;
        }
        log_set_level(lv);
    }
    char text[64];
    snprintf(text, sizeof(text), "active level: %s\n", log_level_name(log_current_level));
    admin_respond_text(r, 200, text);
}

static const char *const help_text =
    "admin commands are:\n"
    "  /: this help\n"
    "  /certs: certificates of every TLS context: paths, serials, SANs, expiry (JSON)\n"
    "  /clusters: upstream clusters and their endpoints (?format=json)\n"
    "  /config_dump: the active configuration as JSON\n"
    "  /listeners: the running listeners and the addresses they accept on (?format=json)\n"
    "  /logging: POST ?level=debug to change the log level\n"
    "  /quitquitquit: POST to exit now\n"
    "  /ready: 200 once listeners accept, 503 before and while draining\n"
    "  /server_info: version, state, uptime, node, workload identity\n"
    "  /stats: counters and gauges (?format=json|prometheus, ?filter=REGEX)\n"
    "  /stats/prometheus: Prometheus exposition format\n";

static bool needs_post(const char *path)
{
    return strcmp(path, "/quitquitquit") == 0 || strcmp(path, "/logging") == 0;
}

static void admin_dispatch(const host_t *host, const admin_request_t *rq, admin_response_t *r)
{
    if (strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "POST") != 0 &&
        strcmp(rq->method, "HEAD") != 0) {
        admin_respond_text(r, 405, "method not allowed\n");
        return;
    }
    if (needs_post(rq->path) && strcmp(rq->method, "POST") != 0) {
        admin_respond_text(r, 405, "this endpoint needs POST\n");
        return;
    }
    const char *p = rq->path;
    if (strcmp(p, "/") == 0 || strcmp(p, "/help") == 0) {
        admin_respond_text(r, 200, help_text);
    } else if (strcmp(p, "/stats") == 0 || strcmp(p, "/stats/prometheus") == 0) {
        handle_stats(host, rq, r);
    } else if (strcmp(p, "/clusters") == 0) {
        handle_clusters(host, rq, r);
    } else if (strcmp(p, "/listeners") == 0) {
        handle_listeners(host, rq, r);
    } else if (strcmp(p, "/config_dump") == 0) {
        r->status = 200;
        r->content_type = "application/json";
        r->body = host_config_dump(host);
    } else if (strcmp(p, "/certs") == 0) {
        admin_respond_json(r, admin_certs_json(host_snapshot(host), (int64_t)time(NULL)));
    } else if (strcmp(p, "/server_info") == 0) {
        handle_server_info(host, r);
    } else if (strcmp(p, "/ready") == 0) {
        bool ready = host_ready(host);
        char text[32];
        snprintf(text, sizeof(text), "%s\n", host_state_name(host));
        admin_respond_text(r, ready ? 200 : 503, text);
    } else if (strcmp(p, "/logging") == 0) {
        handle_logging(rq, r);
    } else if (strcmp(p, "/quitquitquit") == 0) {
        admin_respond_text(r, 200, "OK\n");
    } else {
        admin_respond_text(r, 404, "invalid path; GET / lists the admin commands\n");
    }
}

static void quit_host(void *ctx)
{
    const admin_t *a = ctx;
    log_info("admin: /quitquitquit: exiting");
    host_quit(a->host);
}

static void admin_handle(void *ctx, const admin_request_t *rq, admin_response_t *r)
{
    admin_t *a = ctx;
    if (!a->health_only) {
        admin_dispatch(a->host, rq, r);
        if (r->status == 200 && strcmp(rq->path, "/quitquitquit") == 0) {
            r->after = quit_host;
            r->after_ctx = a;
        }
        return;
    }
    /* Reachable from outside the pod: answer readiness, reveal nothing else. */
    bool ready = host_ready(a->host);
    if (strcmp(rq->path, "/healthz/ready") != 0)
        admin_respond_text(r, 404, "not found\n");
    else
        admin_respond_text(r, ready ? 200 : 503, ready ? "LIVE\n" : "not ready\n");
}

static int listen_on(const host_t *host, admin_t **slot, const struct sockaddr *addr,
                     bool health_only, char *err, size_t errlen)
{
    admin_t *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return -ENOMEM;
    a->host = host;
    a->health_only = health_only;
    int rc = admin_http_start(host->loop, addr, health_only ? "health" : "admin", admin_handle, a,
                              &a->http, err, errlen);
    if (rc < 0) {
        free(a);
        return rc;
    }
    *slot = a;
    return 0;
}

int admin_start(const host_t *host, const struct sockaddr *addr, admin_t **out, char *err,
                size_t errlen)
{
    return listen_on(host, out, addr, false, err, errlen);
}

int admin_start_health(const host_t *host, const struct sockaddr *addr, admin_t **out, char *err,
                       size_t errlen)
{
    return listen_on(host, out, addr, true, err, errlen);
}

void admin_stop(admin_t *a)
{
    if (a == NULL)
        return;
    admin_http_stop(a->http);
    free(a);
}
