/* envoy.filters.network.http_connection_manager: parses HttpConnectionManager (inline
 * route_config or one named over RDS, http_filters, protocol options, proxy-header settings)
 * into hcm_config_t and hands accepted connections to the connection manager. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "proxy/listener/network_filter.h"
#include "envoy/extensions/access_loggers/file/v3/file.pb-c.h"
#include "envoy/extensions/access_loggers/stream/v3/stream.pb-c.h"
#include "filters/registry.h"
#include "proxy/http/access_log.h"
#include "proxy/http/hcm.h"
#include "xds/config/config.h"
#include "base/err.h"

typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager
    hcm_msg_t;

#define DEFAULT_MAX_HEAD_KB      60
#define DEFAULT_MAX_HEADERS      100
#define DEFAULT_IDLE_TIMEOUT_MS  (3600 * 1000)
#define DEFAULT_DELAYED_CLOSE_MS 1000 /* as Envoy's; 0 closes at once after our FIN */

static void hcm_config_free(void *p)
{
    hcm_config_t *cfg = p;
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->n_filters; i++) {
        if (cfg->filters[i].ops && cfg->filters[i].ops->config_free)
            cfg->filters[i].ops->config_free(cfg->filters[i].config);
        free(cfg->filters[i].name);
    }
    free(cfg->filters);
    for (size_t i = 0; i < cfg->n_logs; i++)
        access_log_close(cfg->logs[i]);
    for (size_t i = 0; i < cfg->n_upgrade_types; i++)
        free(cfg->upgrade_types[i]);
    free(cfg->upgrade_types);
    free(cfg->logs);
    for (size_t i = 0; cfg->route_stats && cfg->routes && i < cfg->routes->n_vhosts; i++)
        free(cfg->route_stats[i]);
    free(cfg->route_stats);
    free(cfg->vhost_stats);
    if (cfg->routes)
        route_table_free(cfg->routes);
    free(cfg->stat_prefix);
    free(cfg);
}

static int define_stats(hcm_config_t *cfg, stats_store_t *st)
{
    struct {
        stat_id_t *id;
        stat_kind_t kind;
        const char *metric;
    } defs[] = {
        {&cfg->st.downstream_cx_total, STAT_COUNTER, "downstream_cx_total"},
        {&cfg->st.downstream_cx_active, STAT_GAUGE, "downstream_cx_active"},
        {&cfg->st.downstream_cx_protocol_error, STAT_COUNTER, "downstream_cx_protocol_error"},
        {&cfg->st.downstream_rq_total, STAT_COUNTER, "downstream_rq_total"},
        {&cfg->st.downstream_rq_active, STAT_GAUGE, "downstream_rq_active"},
        {&cfg->st.downstream_rq_xx[0], STAT_COUNTER, "downstream_rq_1xx"},
        {&cfg->st.downstream_rq_xx[1], STAT_COUNTER, "downstream_rq_2xx"},
        {&cfg->st.downstream_rq_xx[2], STAT_COUNTER, "downstream_rq_3xx"},
        {&cfg->st.downstream_rq_xx[3], STAT_COUNTER, "downstream_rq_4xx"},
        {&cfg->st.downstream_rq_xx[4], STAT_COUNTER, "downstream_rq_5xx"},
        {&cfg->st.downstream_rq_timeout, STAT_COUNTER, "downstream_rq_timeout"},
        {&cfg->st.downstream_rq_too_large, STAT_COUNTER, "downstream_rq_too_large"},
        {&cfg->st.downstream_rq_rx_reset, STAT_COUNTER, "downstream_rq_rx_reset"},
        {&cfg->st.downstream_rq_tx_reset, STAT_COUNTER, "downstream_rq_tx_reset"},
        {&cfg->st.downstream_cx_destroy_remote_active_rq, STAT_COUNTER,
         "downstream_cx_destroy_remote_active_rq"},
        {&cfg->st.downstream_cx_destroy_local_active_rq, STAT_COUNTER,
         "downstream_cx_destroy_local_active_rq"},
        {&cfg->st.no_route, STAT_COUNTER, "no_route"},
        {&cfg->st.no_cluster, STAT_COUNTER, "no_cluster"},
        {&cfg->st.rq_direct_response, STAT_COUNTER, "rq_direct_response"},
        {&cfg->st.downstream_cx_http2_total, STAT_COUNTER, "downstream_cx_http2_total"},
        {&cfg->st.downstream_cx_http2_active, STAT_GAUGE, "downstream_cx_http2_active"},
        {&cfg->st.downstream_rq_http2_total, STAT_COUNTER, "downstream_rq_http2_total"},
        {&cfg->st.http2_rx_reset, STAT_COUNTER, "http2.rx_reset"},
        {&cfg->st.http2_tx_reset, STAT_COUNTER, "http2.tx_reset"},
        {&cfg->st.http2_rx_messaging_error, STAT_COUNTER, "http2.rx_messaging_error"},
        {&cfg->st.http2_inbound_empty_frames_flood, STAT_COUNTER,
         "http2.inbound_empty_frames_flood"},
        {&cfg->st.http2_inbound_priority_frames_flood, STAT_COUNTER,
         "http2.inbound_priority_frames_flood"},
        {&cfg->st.http2_inbound_window_update_frames_flood, STAT_COUNTER,
         "http2.inbound_window_update_frames_flood"},
        {&cfg->st.http2_outbound_control_flood, STAT_COUNTER, "http2.outbound_control_flood"},
        {&cfg->st.http2_header_overflow, STAT_COUNTER, "http2.header_overflow"},
        {&cfg->st.downstream_rq_too_many_premature_resets, STAT_COUNTER,
         "downstream_rq_too_many_premature_resets"},
    };
    int64_t hid = stats_define_histogram(st, "http", "envoy_http_conn_manager_prefix",
                                         cfg->stat_prefix, "downstream_rq_time");
    if (hid < 0)
        return (int)hid;
    cfg->st.downstream_rq_time = (stat_id_t)hid;
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
        int64_t id = stats_define(st, defs[i].kind, "http", "envoy_http_conn_manager_prefix",
                                  cfg->stat_prefix, defs[i].metric);
        if (id < 0)
            return (int)id;
        *defs[i].id = (stat_id_t)id;
    }
    return 0;
}

/* A SubstitutionFormatString: text (inline or file) or a flat JSON object of format strings. */
static int open_with_format(const char *path,
                            const Envoy__Config__Core__V3__SubstitutionFormatString *f,
                            unsigned nworkers, access_log_t **out, char *err, size_t errlen)
{
    if (f == NULL)
        return access_log_open(path, NULL, NULL, NULL, 0, nworkers, out, err, errlen);
    if (f->format_case == ENVOY__CONFIG__CORE__V3__SUBSTITUTION_FORMAT_STRING__FORMAT_JSON_FORMAT) {
        const Google__Protobuf__Struct *js = f->json_format;
        const char **keys = calloc(js->n_fields ? js->n_fields : 1, sizeof(char *));
        const char **fmts = calloc(js->n_fields ? js->n_fields : 1, sizeof(char *));
        int rc = keys && fmts ? 0 : -ENOMEM;
        for (size_t i = 0; rc == 0 && i < js->n_fields; i++) {
            const Google__Protobuf__Value *v = js->fields[i]->value;
            if (v == NULL || v->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE) {
                snprintf(err, errlen, "json_format: '%s' must be a format string",
                         js->fields[i]->key);
                rc = -EINVAL;
                break;
            }
            keys[i] = js->fields[i]->key;
            fmts[i] = v->string_value;
        }
        if (rc == 0)
            rc = access_log_open(path, NULL, keys, fmts, js->n_fields, nworkers, out, err, errlen);
        free(keys);
        free(fmts);
        return rc;
    }
    const char *text = NULL;
    if (f->format_case == ENVOY__CONFIG__CORE__V3__SUBSTITUTION_FORMAT_STRING__FORMAT_TEXT_FORMAT)
        text = f->text_format;
    else if (f->format_case ==
             ENVOY__CONFIG__CORE__V3__SUBSTITUTION_FORMAT_STRING__FORMAT_TEXT_FORMAT_SOURCE) {
        const Envoy__Config__Core__V3__DataSource *ds = f->text_format_source;
        if (ds->specifier_case != ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING) {
            snprintf(err, errlen, "text_format_source: only inline_string is supported");
            return -EINVAL;
        }
        text = ds->inline_string;
    }
    return access_log_open(path, text, NULL, NULL, 0, nworkers, out, err, errlen);
}

static int parse_access_logs(const hcm_msg_t *m, hcm_config_t *cfg, unsigned nworkers, char *err,
                             size_t errlen)
{
    if (m->n_access_log == 0)
        return 0;
    cfg->logs = calloc(m->n_access_log, sizeof(*cfg->logs));
    if (cfg->logs == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < m->n_access_log; i++) {
        const Envoy__Config__Accesslog__V3__AccessLog *al = m->access_log[i];
        const Google__Protobuf__Any *any = al->typed_config;
        const char *type = any && any->type_url ? strrchr(any->type_url, '/') : NULL;
        type = type ? type + 1 : "";
        ProtobufCMessage *msg = NULL;
        char aerr[300] = "";
        int rc;
        if (strcmp(type, "envoy.extensions.access_loggers.file.v3.FileAccessLog") == 0) {
            rc = config_any_unpack(
                any, &envoy__extensions__access_loggers__file__v3__file_access_log__descriptor,
                &msg, aerr, sizeof(aerr));
            const Envoy__Extensions__AccessLoggers__File__V3__FileAccessLog *f = (void *)msg;
            if (rc == 0 &&
                f->access_log_format_case ==
                    ENVOY__EXTENSIONS__ACCESS_LOGGERS__FILE__V3__FILE_ACCESS_LOG__ACCESS_LOG_FORMAT_FORMAT)
                rc = access_log_open(f->path, f->format, NULL, NULL, 0, nworkers,
                                     &cfg->logs[cfg->n_logs], aerr, sizeof(aerr));
            else if (
                rc == 0 &&
                f->access_log_format_case !=
                    ENVOY__EXTENSIONS__ACCESS_LOGGERS__FILE__V3__FILE_ACCESS_LOG__ACCESS_LOG_FORMAT__NOT_SET &&
                f->access_log_format_case !=
                    ENVOY__EXTENSIONS__ACCESS_LOGGERS__FILE__V3__FILE_ACCESS_LOG__ACCESS_LOG_FORMAT_LOG_FORMAT) {
                snprintf(aerr, sizeof(aerr),
                         "use log_format (json_format/typed_json_format "
                         "directly on FileAccessLog are not supported)");
                rc = -EINVAL;
            } else if (rc == 0) {
                rc = open_with_format(f->path, f->log_format, nworkers, &cfg->logs[cfg->n_logs],
                                      aerr, sizeof(aerr));
            }
        } else if (strcmp(type, "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog") == 0 ||
                   strcmp(type, "envoy.extensions.access_loggers.stream.v3.StderrAccessLog") == 0) {
            bool out = strstr(type, "Stdout") != NULL;
            rc = config_any_unpack(
                any,
                out ? &envoy__extensions__access_loggers__stream__v3__stdout_access_log__descriptor
                    : &envoy__extensions__access_loggers__stream__v3__stderr_access_log__descriptor,
                &msg, aerr, sizeof(aerr));
            /* Both messages have the same single field. */
            const Envoy__Extensions__AccessLoggers__Stream__V3__StdoutAccessLog *so = (void *)msg;
            if (rc == 0)
                rc = open_with_format(out ? "/dev/stdout" : "/dev/stderr", so->log_format, nworkers,
                                      &cfg->logs[cfg->n_logs], aerr, sizeof(aerr));
        } else {
            snprintf(aerr, sizeof(aerr), "unsupported access logger type '%s'", type);
            rc = -EINVAL;
        }
        if (msg)
            protobuf_c_message_free_unpacked(msg, NULL);
        if (rc < 0) {
            snprintf(err, errlen, "access_log[%zu]: %s", i, aerr);
            return rc;
        }
        cfg->n_logs++;
    }
    return 0;
}

static int define_rq_stats(stats_store_t *st, const char *scope_name, hcm_rq_stat_ids_t *ids)
{
    static const char *const xx[5] = {"upstream_rq_1xx", "upstream_rq_2xx", "upstream_rq_3xx",
                                      "upstream_rq_4xx", "upstream_rq_5xx"};
    int64_t id = stats_define(st, STAT_COUNTER, "vhost", "envoy_virtual_host", scope_name,
                              "upstream_rq_total");
    if (id < 0)
        return (int)id;
    ids->upstream_rq_total = (stat_id_t)id;
    for (int i = 0; i < 5; i++) {
        id = stats_define(st, STAT_COUNTER, "vhost", "envoy_virtual_host", scope_name, xx[i]);
        if (id < 0)
            return (int)id;
        ids->upstream_rq_xx[i] = (stat_id_t)id;
    }
    id = stats_define_histogram(st, "vhost", "envoy_virtual_host", scope_name, "upstream_rq_time");
    if (id < 0)
        return (int)id;
    ids->upstream_rq_time = (stat_id_t)id;
    ids->defined = true;
    return 0;
}

/* vhost.<vhost>.* for every virtual host; vhost.<vhost>.route.<route>.* for named routes. */
static int define_route_stats(hcm_config_t *cfg, stats_store_t *st)
{
    const route_table_t *t = cfg->routes;
    cfg->vhost_stats = calloc(t->n_vhosts ? t->n_vhosts : 1, sizeof(*cfg->vhost_stats));
    cfg->route_stats = calloc(t->n_vhosts ? t->n_vhosts : 1, sizeof(*cfg->route_stats));
    if (cfg->vhost_stats == NULL || cfg->route_stats == NULL)
        return -ENOMEM;
    char name[512];
    for (size_t i = 0; i < t->n_vhosts; i++) {
        const route_vhost_t *v = &t->vhosts[i];
        int rc = define_rq_stats(st, v->name, &cfg->vhost_stats[i]);
        if (rc < 0)
            return rc;
        cfg->route_stats[i] = calloc(v->n_routes ? v->n_routes : 1, sizeof(hcm_rq_stat_ids_t));
        if (cfg->route_stats[i] == NULL)
            return -ENOMEM;
        for (size_t j = 0; j < v->n_routes; j++) {
            if (v->routes[j].name == NULL || v->routes[j].name[0] == '\0')
                continue;
            snprintf(name, sizeof(name), "%s.route.%s", v->name, v->routes[j].name);
            rc = define_rq_stats(st, name, &cfg->route_stats[i][j]);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static int parse_filters(const hcm_msg_t *m, hcm_config_t *cfg, const struct snapshot *snap,
                         stats_store_t *stats, char *err, size_t errlen)
{
    if (m->n_http_filters == 0) {
        snprintf(err, errlen, "http_filters: the router (envoy.filters.http.router) is required");
        return -EINVAL;
    }
    cfg->filters = calloc(m->n_http_filters, sizeof(*cfg->filters));
    if (cfg->filters == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < m->n_http_filters; i++) {
        const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter *f =
            m->http_filters[i];
        hcm_filter_t *hf = &cfg->filters[cfg->n_filters];
        if (f->disabled)
            continue;
        const char *url = f->typed_config ? f->typed_config->type_url : NULL;
        hf->name = strdup(f->name ? f->name : "");
        if (hf->name == NULL)
            return -ENOMEM;
        cfg->n_filters++;
        hf->ops = filter_http_lookup(f->name, url);
        if (hf->ops == NULL) {
            if (f->is_optional)
                continue;
            snprintf(err, errlen, "http_filters[%zu] '%s': unsupported HTTP filter%s%s", i,
                     hf->name, url ? " type " : "", url ? url : "");
            return -EINVAL;
        }
        char ferr[400];
        int rc =
            hf->ops->config_parse(f->typed_config, snap, stats, &hf->config, ferr, sizeof(ferr));
        if (rc < 0) {
            hf->ops = NULL;
            snprintf(err, errlen, "http_filters[%zu] '%s': %s", i, hf->name, ferr);
            return rc;
        }
        bool last = i + 1 == m->n_http_filters;
        if (hf->ops->terminal != last) {
            snprintf(err, errlen, "http_filters[%zu] '%s': %s", i, hf->name,
                     last ? "the last HTTP filter must be the router"
                          : "the router must be the last HTTP filter");
            return -EINVAL;
        }
    }
    return 0;
}

/* forward_client_cert_details and set_current_client_cert_details. */
static int parse_xfcc(const hcm_msg_t *m, hcm_config_t *cfg, char *err, size_t errlen)
{
    switch (m->forward_client_cert_details) {
    case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__FORWARD_CLIENT_CERT_DETAILS__SANITIZE:
        cfg->xfcc = HCM_XFCC_SANITIZE;
        break;
    case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__FORWARD_CLIENT_CERT_DETAILS__FORWARD_ONLY:
        cfg->xfcc = HCM_XFCC_FORWARD_ONLY;
        break;
    case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__FORWARD_CLIENT_CERT_DETAILS__APPEND_FORWARD:
        cfg->xfcc = HCM_XFCC_APPEND_FORWARD;
        break;
    case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__FORWARD_CLIENT_CERT_DETAILS__SANITIZE_SET:
        cfg->xfcc = HCM_XFCC_SANITIZE_SET;
        break;
    case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__FORWARD_CLIENT_CERT_DETAILS__ALWAYS_FORWARD_ONLY:
        cfg->xfcc = HCM_XFCC_ALWAYS_FORWARD_ONLY;
        break;
    default:
        snprintf(err, errlen, "forward_client_cert_details: unknown value %d",
                 (int)m->forward_client_cert_details);
        return -EINVAL;
    }
    const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager__SetCurrentClientCertDetails
        *d = m->set_current_client_cert_details;
    if (d) {
        cfg->xfcc_set.subject = d->subject && d->subject->value;
        cfg->xfcc_set.cert = d->cert;
        cfg->xfcc_set.chain = d->chain;
        cfg->xfcc_set.dns = d->dns;
        cfg->xfcc_set.uri = d->uri;
    }
    return 0;
}

/* upgrade_configs: CONNECT turns on routes with connect_matcher; other types are kept
 * lowercased for the connection manager to let through. */
static int parse_upgrades(const hcm_msg_t *m, hcm_config_t *cfg, char *err, size_t errlen)
{
    cfg->upgrade_types = calloc(m->n_upgrade_configs + 1, sizeof(char *));
    if (cfg->upgrade_types == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < m->n_upgrade_configs; i++) {
        const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager__UpgradeConfig
            *u = m->upgrade_configs[i];
        if (u->enabled && !u->enabled->value)
            continue;
        if (u->upgrade_type == NULL || u->upgrade_type[0] == '\0')
            return err_set(err, errlen, -EINVAL, "upgrade_configs[%zu]: upgrade_type is required",
                           i);
        if (strcasecmp(u->upgrade_type, "CONNECT") == 0) {
            cfg->connect_enabled = true; /* routes with connect_matcher take it from here */
            continue;
        }
        if (u->n_filters)
            return err_set(err, errlen, -EINVAL,
                           "upgrade_configs[%zu]: per-upgrade filters are not supported", i);
        char *t = strdup(u->upgrade_type);
        if (t == NULL)
            return -ENOMEM;
        for (char *q = t; *q; q++)
            *q = (char)tolower((unsigned char)*q);
        cfg->upgrade_types[cfg->n_upgrade_types++] = t;
    }
    return 0;
}

/* The route table: inline, or the route configuration rds names, from the resource set the
 * snapshot is built from (an empty table until the set has it, as in Envoy). */
static int parse_routes(const hcm_msg_t *m, hcm_config_t *cfg, const struct snapshot *snap,
                        char *err, size_t errlen)
{
    char rerr[700];
    int rc;
    switch (m->route_specifier_case) {
    case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_ROUTE_CONFIG:
        rc = route_table_build(m->route_config, snap, &cfg->routes, rerr, sizeof(rerr));
        return rc < 0 ? err_set(err, errlen, rc, "route_config: %s", rerr) : 0;
    case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS:
        rc = snapshot_rds_route_table(snap, m->rds, &cfg->routes, rerr, sizeof(rerr));
        return rc < 0 ? err_set(err, errlen, rc, "rds: %s", rerr) : 0;
    default:
        return err_set(err, errlen, -EINVAL, "route_config or rds is required");
    }
}

static int hcm_config_parse(const void *any, const struct snapshot *snap, stats_store_t *stats,
                            void **out, char *err, size_t errlen)
{
    ProtobufCMessage *msg = NULL;
    *out = NULL;
    int rc = config_any_unpack(
        any,
        &envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor,
        &msg, err, errlen);
    if (rc < 0)
        return rc;
    const hcm_msg_t *m = (const hcm_msg_t *)msg;
    hcm_config_t *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    rc = -EINVAL;
    if (m->stat_prefix == NULL || m->stat_prefix[0] == '\0') {
        snprintf(err, errlen, "stat_prefix is required");
        goto out;
    }
    if (m->codec_type ==
        ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__CODEC_TYPE__HTTP3) {
        snprintf(err, errlen, "codec_type: HTTP3 is not supported (AUTO, HTTP1 and HTTP2 are)");
        goto out;
    }
    /* AUTO takes HTTP/2 by its preface and HTTP/1 otherwise; HTTP1 never looks for it; HTTP2
     * takes every connection as HTTP/2 (a bad preface is answered with GOAWAY). */
    cfg->http1_only =
        m->codec_type ==
        ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__CODEC_TYPE__HTTP1;
    cfg->http2_only =
        m->codec_type ==
        ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__CODEC_TYPE__HTTP2;
    rc = parse_upgrades(m, cfg, err, errlen);
    if (rc < 0)
        goto out;
    cfg->stat_prefix = strdup(m->stat_prefix);
    if (cfg->stat_prefix == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    rc = parse_routes(m, cfg, snap, err, errlen);
    if (rc == 0)
        rc = parse_filters(m, cfg, snap, stats, err, errlen);
    if (rc == 0)
        rc = parse_access_logs(m, cfg, snap->nworkers, err, errlen);
    if (rc < 0)
        goto out;
    cfg->max_head_bytes =
        (m->max_request_headers_kb ? m->max_request_headers_kb->value : DEFAULT_MAX_HEAD_KB) * 1024;
    cfg->max_headers = DEFAULT_MAX_HEADERS;
    cfg->idle_timeout_ms = DEFAULT_IDLE_TIMEOUT_MS;
    if (m->common_http_protocol_options) {
        if (m->common_http_protocol_options->max_headers_count)
            cfg->max_headers = m->common_http_protocol_options->max_headers_count->value;
        cfg->idle_timeout_ms = config_duration_ms(m->common_http_protocol_options->idle_timeout,
                                                  DEFAULT_IDLE_TIMEOUT_MS);
    }
    cfg->generate_request_id = m->generate_request_id ? m->generate_request_id->value : true;
    cfg->use_remote_address = m->use_remote_address && m->use_remote_address->value;
    cfg->skip_xff_append = m->skip_xff_append;
    cfg->accept_http_10 = m->http_protocol_options && m->http_protocol_options->accept_http_10;
    cfg->request_headers_timeout_ms = config_duration_ms(m->request_headers_timeout, 0);
    cfg->delayed_close_ms = config_duration_ms(m->delayed_close_timeout, DEFAULT_DELAYED_CLOSE_MS);
    rc = parse_xfcc(m, cfg, err, errlen);
    if (rc == 0)
        rc = define_stats(cfg, stats);
    if (rc == 0)
        rc = define_route_stats(cfg, stats);
out:
    protobuf_c_message_free_unpacked(msg, NULL);
    if (rc < 0) {
        hcm_config_free(cfg);
        cfg = NULL;
    }
    *out = cfg;
    return rc;
}

static int hcm_on_accept(accepted_conn_t *conn, const void *config)
{
    return hcm_start(conn, config);
}

static void hcm_on_worker_tick(const void *config, unsigned worker_index)
{
    const hcm_config_t *cfg = config;
    for (size_t i = 0; i < cfg->n_logs; i++)
        access_log_flush(cfg->logs[i], worker_index);
}

const net_filter_ops_t http_connection_manager_filter_ops = {
    .name = "envoy.filters.network.http_connection_manager",
    .type_url = "type.googleapis.com/"
                "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    .config_parse = hcm_config_parse,
    .config_free = hcm_config_free,
    .on_accept = hcm_on_accept,
    .on_worker_tick = hcm_on_worker_tick,
};
