/* The HTTP connection manager: its parsed config (built by the http_connection_manager network
 * filter) and the entry point that takes an accepted connection. Free of libuv types so filters
 * can include it. */
#ifndef REMORA_HCM_H
#define REMORA_HCM_H

#include <stdbool.h>
#include <stdint.h>

#include "proxy/listener/network_filter.h"
#include "proxy/http/http_filter.h"
#include "base/stats.h"
#include "xds/snapshot/route.h"

typedef struct hcm_filter {
    char *name;
    const http_filter_ops_t *ops;
    void *config;
} hcm_filter_t;

typedef struct hcm_stat_ids {
    stat_id_t downstream_cx_total;
    stat_id_t downstream_cx_active;
    stat_id_t downstream_cx_protocol_error;
    stat_id_t downstream_rq_total;
    stat_id_t downstream_rq_active;
    stat_id_t downstream_rq_xx[5]; /* 1xx..5xx */
    stat_id_t downstream_rq_timeout;
    stat_id_t downstream_rq_too_large;
    stat_id_t downstream_rq_rx_reset; /* the downstream went away mid-request (DC) */
    stat_id_t downstream_rq_tx_reset; /* we reset the downstream mid-request */
    stat_id_t downstream_cx_destroy_remote_active_rq;
    stat_id_t downstream_cx_destroy_local_active_rq;
    stat_id_t no_route;
    stat_id_t no_cluster;
    stat_id_t rq_direct_response;
    stat_id_t downstream_rq_time; /* histogram */
    stat_id_t downstream_cx_http2_total;
    stat_id_t downstream_cx_http2_active;
    stat_id_t downstream_rq_http2_total;
    stat_id_t http2_rx_reset;           /* http2.rx_reset: the client reset a stream */
    stat_id_t http2_tx_reset;           /* http2.tx_reset: we reset a stream */
    stat_id_t http2_rx_messaging_error; /* http2.rx_messaging_error: a stream broke the rules */
    /* Connections cut off for abuse (h2_guard.h): */
    stat_id_t http2_inbound_empty_frames_flood;
    stat_id_t http2_inbound_priority_frames_flood;
    stat_id_t http2_inbound_window_update_frames_flood;
    stat_id_t http2_outbound_control_flood;
    stat_id_t http2_header_overflow;
    stat_id_t downstream_rq_too_many_premature_resets;
} hcm_stat_ids_t;

/* Request counters of one virtual host or route: Envoy's vhost.<name>.* (and, for named routes,
 * vhost.<vhost>.route.<route>.*). */
typedef struct hcm_rq_stat_ids {
    stat_id_t upstream_rq_total;
    stat_id_t upstream_rq_xx[5];
    stat_id_t upstream_rq_time; /* histogram */
    bool defined;
} hcm_rq_stat_ids_t;

/* forward_client_cert_details: what happens to a request's x-forwarded-client-cert. */
typedef enum {
    HCM_XFCC_SANITIZE,            /* remove it (Envoy's default) */
    HCM_XFCC_FORWARD_ONLY,        /* keep it as received, on mTLS connections only */
    HCM_XFCC_APPEND_FORWARD,      /* on mTLS, append this hop's client certificate details */
    HCM_XFCC_SANITIZE_SET,        /* on mTLS, replace it with this hop's details */
    HCM_XFCC_ALWAYS_FORWARD_ONLY, /* keep it as received, TLS or not */
} hcm_xfcc_mode_t;

/* set_current_client_cert_details: what APPEND_FORWARD and SANITIZE_SET write besides By= and
 * Hash=. */
typedef struct hcm_xfcc_details {
    bool subject, cert, chain, dns, uri;
} hcm_xfcc_details_t;

typedef struct hcm_config {
    char *stat_prefix;
    route_table_t *routes;
    hcm_filter_t *filters;
    size_t n_filters;
    hcm_stat_ids_t st;
    uint32_t max_head_bytes; /* max_request_headers_kb, default 60 KiB */
    uint32_t max_headers;    /* common_http_protocol_options.max_headers_count, default 100 */
    bool generate_request_id;
    bool use_remote_address; /* append the downstream address to x-forwarded-for */
    bool skip_xff_append;
    bool accept_http_10;
    bool http1_only;          /* codec_type HTTP1: no HTTP/2 preface is looked for */
    bool http2_only;          /* codec_type HTTP2: every connection is HTTP/2 */
    uint64_t idle_timeout_ms; /* connection idle, default 1 h */
    uint64_t request_headers_timeout_ms;
    uint64_t delayed_close_ms; /* after our FIN, wait this long for the peer's (default 1 s) */
    struct access_log **logs;
    size_t n_logs;
    hcm_rq_stat_ids_t *vhost_stats;  /* one per routes->vhosts[i] */
    hcm_rq_stat_ids_t **route_stats; /* route_stats[i][j] for routes->vhosts[i].routes[j] */
    bool connect_enabled;            /* upgrade_configs has CONNECT */
    char **upgrade_types;            /* upgrade_configs enabled (lowercased, e.g. "websocket") */
    size_t n_upgrade_types;
    hcm_xfcc_mode_t xfcc;        /* forward_client_cert_details */
    hcm_xfcc_details_t xfcc_set; /* set_current_client_cert_details */
} hcm_config_t;

/* Takes over an accepted connection (network filter on_accept). initial/initial_len: bytes
 * already read by protocol detection. conn is borrowed; on success its socket, its
 * detection slab (initial) and its TLS endpoint are taken, and the connection takes its own
 * reference to conn->snap. cfg (conn->chain's, borrowed) lives with that snapshot. Between
 * requests the connection moves to its worker's newest snapshot, where conn->chain's equal
 * (snap_chain_t.config_hash) is, and takes that chain's config (hcm_conn.h, hcm_rebind). */
int hcm_start(accepted_conn_t *conn, const hcm_config_t *cfg);

#endif
