/* The HTTP route table: virtual hosts, routes and their actions, built from an Envoy v3
 * RouteConfiguration (route_build.c) and matched per request by proxy/http/route_match.c. Plain
 * data: free of protobuf-c types and of request-path code. */
#ifndef REMORA_ROUTE_H
#define REMORA_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xds/snapshot/snapshot.h"

#define ROUTE_DEFAULT_TIMEOUT_MS      15000 /* RouteAction.timeout when unset */
#define ROUTE_DEFAULT_MAX_DIRECT_BODY 4096  /* max_direct_response_body_size_bytes */
#define ROUTE_DEFAULT_NUM_RETRIES     1     /* RetryPolicy.num_retries when unset */

/* HeaderValueOption.append_action (the deprecated `append` maps onto the first or third). */
typedef enum {
    HDR_APPEND_IF_EXISTS_OR_ADD,
    HDR_ADD_IF_ABSENT,
    HDR_OVERWRITE_IF_EXISTS_OR_ADD,
    HDR_OVERWRITE_IF_EXISTS,
} route_append_t;

typedef struct route_header_add {
    char *name;  /* lowercased */
    char *value; /* taken literally: Envoy's %VARIABLE% substitutions are not expanded */
    route_append_t action;
    bool keep_empty_value;
} route_header_add_t;

typedef struct route_header_ops {
    route_header_add_t *add;
    size_t n_add;
    char **remove; /* lowercased */
    size_t n_remove;
} route_header_ops_t;

/* A typed_per_filter_config entry, kept as the serialized Any for the filter to unpack. */
typedef struct route_filter_config {
    char *filter; /* the map key: the HTTP filter's name */
    char *type_url;
    uint8_t *value;
    size_t value_len;
} route_filter_config_t;

typedef struct route_filter_configs {
    route_filter_config_t *v;
    size_t n;
} route_filter_configs_t;

typedef struct route_cluster {
    char *name;
    uint32_t weight;
    const snap_cluster_t *cluster; /* NULL: not in the snapshot (503 at request time) */
    route_header_ops_t request_ops, response_ops;
} route_cluster_t;

typedef enum {
    ROUTE_MATCH_PREFIX,
    ROUTE_MATCH_PATH,
    ROUTE_MATCH_PATH_SEPARATED_PREFIX,
    ROUTE_MATCH_CONNECT, /* connect_matcher: CONNECT requests (empty path) only */
} route_match_kind_t;

typedef enum {
    ROUTE_HDR_EXACT,
    ROUTE_HDR_PREFIX,
    ROUTE_HDR_SUFFIX,
    ROUTE_HDR_CONTAINS,
    ROUTE_HDR_PRESENT,
    ROUTE_HDR_RANGE, /* range_match: the value is a base-10 integer in [range_start, range_end) */
} route_hdr_kind_t;

typedef struct route_header_matcher {
    char *name; /* lowercased */
    route_hdr_kind_t kind;
    char *value; /* EXACT/PREFIX/SUFFIX/CONTAINS */
    uint32_t value_len;
    bool ignore_case; /* string_match.ignore_case */
    bool invert;
    bool present; /* PRESENT: true = must be present, false = must be absent */
    bool treat_missing_as_empty;
    int64_t range_start, range_end;
} route_header_matcher_t;

typedef enum { ROUTE_ACTION_ROUTE, ROUTE_ACTION_DIRECT_RESPONSE } route_action_kind_t;

typedef struct route_entry {
    char *name; /* "" when the route has none */
    route_match_kind_t match_kind;
    bool connect_terminate; /* upgrade_configs CONNECT with connect_config: answer 200, tunnel */
    char *match;
    uint32_t match_len;
    bool case_sensitive;
    route_header_matcher_t *headers;
    size_t n_headers;
    route_action_kind_t action;
    /* ROUTE_ACTION_ROUTE */
    route_cluster_t *clusters; /* one entry (weight 1) for `cluster` */
    size_t n_clusters;
    uint64_t total_weight;
    char *prefix_rewrite; /* NULL: none */
    char *host_rewrite;   /* host_rewrite_literal; NULL: none */
    bool auto_host_rewrite;
    uint32_t cluster_not_found_status; /* 503 (default), 404 or 500 */
    uint64_t timeout_ms;               /* default 15000; 0 = none */
    bool has_idle_timeout;             /* idle_timeout set: overrides the HCM's stream idle */
    uint64_t idle_timeout_ms;          /* 0 = none */
    /* ROUTE_ACTION_DIRECT_RESPONSE */
    uint32_t direct_status;
    char *direct_body; /* NUL-terminated copy (may hold NULs: use the length); NULL: no body */
    size_t direct_body_len;
    route_header_ops_t request_ops, response_ops;
    /* The route's retry_policy, else the virtual host's; parsed for later. retry_on NULL and
     * retry_num 0 when there is none. */
    uint32_t retry_num;
    char *retry_on;
    uint64_t per_try_timeout_ms; /* 0 = none */
    route_filter_configs_t filter_configs;
} route_entry_t;

typedef enum { ROUTE_TLS_NONE, ROUTE_TLS_EXTERNAL_ONLY, ROUTE_TLS_ALL } route_tls_t;

typedef struct route_vhost {
    char *name;
    char **domains; /* lowercased */
    size_t n_domains;
    route_entry_t *routes;
    size_t n_routes;
    route_header_ops_t request_ops, response_ops;
    route_tls_t require_tls; /* stored; the connection manager decides what to do with it */
    route_filter_configs_t filter_configs;
} route_vhost_t;

/* The domain index: an open-addressing hash table of every exact and wildcard domain, filled by
 * route_index_domains and probed by route_match with the same hash. */
enum { ROUTE_DOMAIN_EXACT, ROUTE_DOMAIN_SUFFIX, ROUTE_DOMAIN_PREFIX };

/* FNV-1a over the lowercased bytes, so a lookup needs no lowercased copy of the authority. */
static inline uint32_t route_domain_hash(uint8_t kind, const char *s, size_t n)
{
    uint32_t h = 2166136261u ^ kind;
    for (size_t i = 0; i < n; i++) {
        char c = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] + 32) : s[i];
        h ^= (uint8_t)c;
        h *= 16777619u;
    }
    return h;
}

typedef struct route_domain_slot {
    const char *key; /* points into a vhost's domains; NULL = empty slot */
    uint32_t len;
    uint8_t kind; /* exact, suffix ("*.x" stored as ".x") or prefix ("x.*" stored as "x.") */
    uint32_t vhost;
} route_domain_slot_t;

typedef struct route_table {
    char *name;
    route_vhost_t *vhosts;
    size_t n_vhosts;
    route_header_ops_t request_ops, response_ops;
    char **internal_only_headers; /* lowercased */
    size_t n_internal_only;
    bool most_specific_header_mutations_wins;
    bool ignore_port_in_host_matching;
    route_filter_configs_t filter_configs;
    /* Domain index: one open-addressing hash table for exact, suffix and prefix domains, and
     * the distinct wildcard lengths (longest first) to probe it with. */
    route_domain_slot_t *slots;
    size_t slot_mask;
    uint32_t *suffix_lens;
    size_t n_suffix_lens;
    uint32_t *prefix_lens;
    size_t n_prefix_lens;
    const route_vhost_t *default_vhost; /* the "*" domain, or NULL */
} route_table_t;

/* Builds a table from an envoy.config.route.v3.RouteConfiguration (borrowed; nothing in the table
 * points into it). Cluster names are resolved against snap (borrowed; the table's cluster
 * pointers borrow from it, so the table must not outlive it; NULL in tests: every cluster is
 * NULL). A cluster missing from snap is NULL (answered 503 at request time), unless the config
 * sets validate_clusters: true, which makes it an error. On success returns 0 and *out is a new
 * table owned by the caller (route_table_free). On error returns -EINVAL (or -ENOMEM), *out is
 * NULL and err names the virtual host and route: "virtual_host 'x': route 2: safe_regex is not
 * supported". */
int route_table_build(const void *route_config, const snapshot_t *snap, route_table_t **out,
                      char *err, size_t errlen);

/* As route_table_build, for a route configuration delivered over RDS: validate_clusters
 * defaults to false, as Envoy's does for a route table from RDS (a route to a cluster the
 * snapshot lacks answers 503 at request time). For snapshot_rds_route_table. */
int route_table_build_rds(const void *route_config, const snapshot_t *snap, route_table_t **out,
                          char *err, size_t errlen);

/* The route table an HTTP connection manager's `rds` (an Envoy ...HttpConnectionManager's Rds*,
 * borrowed) names: its config_source must be ADS, and the route configuration of that name is
 * taken from the resource set snap (borrowed) is being built from, and built as
 * route_table_build_rds builds it. One the set lacks gives an empty table of that name, whose
 * every request finds no route (404, response flag NR, as Envoy answers before RDS delivers),
 * and is listed as missing in snap's references. Only while snap is being built (from a network
 * filter's config_parse); the name is recorded as referenced either way. On success *out is a
 * new table owned by the caller (route_table_free). On error returns negative, *out is NULL and
 * err says what, e.g. "config_source: only ads is supported". */
int snapshot_rds_route_table(const snapshot_t *snap, const void *rds, route_table_t **out,
                             char *err, size_t errlen);

/* Takes t: frees it and everything it owns (not the snapshot its clusters borrow from). NULL is a
 * no-op. */
void route_table_free(route_table_t *t);

/* Indexes the domains of t's virtual hosts (t borrowed; the index, owned by t, points into its
 * domains); route_table_build calls it last. Not for other
 * callers. Returns -EINVAL with err naming the vhost on a duplicate domain. */
int route_index_domains(route_table_t *t, char *err, size_t errlen);

#endif
