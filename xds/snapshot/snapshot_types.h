/* The snapshot's types only (no functions): the translated, immutable view of the config that
 * the data plane reads (listeners, filter chains, clusters, endpoints, TLS settings). Functions
 * that build and look into it are declared in xds/snapshot/snapshot.h. */
#ifndef REMORA_SNAPSHOT_TYPES_H
#define REMORA_SNAPSHOT_TYPES_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "certs/identity.h"
#include "base/stats.h"
#include "xds/snapshot/runtime.h"

struct net_filter_ops;
struct lb_state;
struct snapshot;
struct snap_filter_registry;
struct snap_cluster_runtime;

typedef struct snap_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    uint8_t prefix_len;
} snap_cidr_t;

/* An endpoint's address: IPv4 or IPv6, the families endpoints hold (28 bytes where a
 * sockaddr_storage takes 128, for every endpoint of every cluster). */
typedef union snap_addr {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
} snap_addr_t;

/* The longest label: "[" an IPv6 address (45 characters at most) "]:65535" and its NUL. */
#define SNAP_ADDR_LABEL_MAX 54

typedef struct snap_endpoint {
    snap_addr_t addr;
    uint32_t weight;
    char label[SNAP_ADDR_LABEL_MAX]; /* "198.18.0.3:8080", for /clusters and logs */
    const char *hostname; /* DNS clusters: the name it was resolved from (borrowed from the
                           * cluster's dns targets); NULL otherwise */
} snap_endpoint_t;

typedef enum {
    CLUSTER_STATIC,
    CLUSTER_ORIGINAL_DST,
    CLUSTER_STRICT_DNS,  /* every address of every target's name is an endpoint */
    CLUSTER_LOGICAL_DNS, /* one target; the first address of its name is the one endpoint */
    CLUSTER_EDS,         /* endpoints from a ClusterLoadAssignment of the resource set (EDS) */
} cluster_kind_t;
typedef enum { LB_ROUND_ROBIN, LB_LEAST_REQUEST, LB_RANDOM, LB_CLUSTER_PROVIDED } lb_policy_t;

/* Envoy's ssl.* counters of the TLS contexts of a cluster (upstream) or a listener's chains
 * (downstream); defined only where TLS is configured. fail[] is indexed by the TLS engine's
 * tls_fail_reason_t: connection_error, fail_verify_no_cert, fail_verify_error, fail_verify_san. */
typedef struct ssl_stat_ids {
    stat_id_t handshake;
    stat_id_t session_reused;
    stat_id_t fail[5]; /* [0] unused (TLS_FAIL_NONE) */
} ssl_stat_ids_t;

typedef struct cluster_stat_ids {
    stat_id_t upstream_cx_total;
    stat_id_t upstream_cx_active;
    stat_id_t upstream_cx_connect_fail;
    stat_id_t upstream_cx_connect_timeout;
    stat_id_t upstream_cx_rx_bytes_total;
    stat_id_t upstream_cx_tx_bytes_total;
    stat_id_t upstream_cx_destroy_local;
    stat_id_t upstream_cx_destroy_remote;
    stat_id_t upstream_cx_none_healthy;
    stat_id_t upstream_cx_idle_timeout;
    stat_id_t upstream_rq_total;
    stat_id_t upstream_rq_xx[5]; /* 1xx..5xx */
    stat_id_t upstream_rq_timeout;
    stat_id_t upstream_rq_rx_reset;
    stat_id_t upstream_rq_tx_reset; /* we abandoned a request in flight (client gone, timeout) */
    stat_id_t upstream_cx_destroy_local_with_active_rq;
    stat_id_t upstream_cx_destroy_remote_with_active_rq;
    stat_id_t upstream_rq_retry;
    stat_id_t upstream_rq_time; /* histogram */
    stat_id_t upstream_rq_pending_overflow;
    stat_id_t upstream_cx_overflow;
    stat_id_t upstream_cx_http2_total;  /* HTTP/2 connections made (proxy/upstream/h2_pool.c) */
    stat_id_t upstream_cx_close_notify; /* GOAWAY received on an HTTP/2 connection */
    stat_id_t http2_rx_reset;           /* http2.rx_reset: RST_STREAM received */
    stat_id_t http2_tx_reset;           /* http2.tx_reset: RST_STREAM sent */
    stat_id_t update_attempt;           /* DNS lookups started (Envoy's config update stats) */
    stat_id_t update_success;
    stat_id_t update_failure;
    stat_id_t membership_change; /* the endpoint set changed (counted by the installer) */
    stat_id_t membership_total;  /* gauge: endpoints of the running snapshot */
    ssl_stat_ids_t ssl;
} cluster_stat_ids_t;

/* Counts shared by every worker, for circuit breaking (Envoy's are process-wide too). They
 * belong to the cluster's runtime state, kept by name across snapshots by the data plane
 * (snap_cluster_runtime_t below), and change through atomics only. */
typedef struct cluster_shared {
    _Atomic int64_t rq_active;
    _Atomic int64_t cx_active;
} cluster_shared_t;

/* ---- TLS settings of a transport socket ------------------------------------------------------
 * Plain data parsed from Envoy's UpstreamTlsContext / DownstreamTlsContext. The snapshot reads
 * no PEM: the TLS engine (certs/) parses these bytes into its own contexts. */

typedef enum { TLS_CONFIG_CLIENT, TLS_CONFIG_SERVER } tls_config_role_t;

/* TlsParameters.TlsProtocol, in the same order. AUTO: the engine's default for that end. */
typedef enum {
    TLS_CONFIG_VERSION_AUTO,
    TLS_CONFIG_VERSION_1_0,
    TLS_CONFIG_VERSION_1_1,
    TLS_CONFIG_VERSION_1_2,
    TLS_CONFIG_VERSION_1_3,
} tls_config_version_t;

/* A DataSource, read when the snapshot is built. */
typedef struct tls_config_data {
    char *filename; /* the DataSource's filename, kept for watching rotation; NULL when inline */
    char *data;     /* NULL when the source is absent; else the bytes plus a NUL not counted in
                     * len (mbedtls_x509_crt_parse wants PEM NUL-terminated: pass len + 1) */
    size_t len;
} tls_config_data_t;

/* Which SubjectAltName entries of the peer's certificate a matcher looks at. ANY: the
 * deprecated match_subject_alt_names, which Envoy checks against every SAN type (URI and DNS
 * are the ones the TLS engine reads). EMAIL and IP are refused by the snapshot for now. */
typedef enum {
    TLS_CONFIG_SAN_ANY,
    TLS_CONFIG_SAN_EMAIL,
    TLS_CONFIG_SAN_DNS,
    TLS_CONFIG_SAN_URI,
    TLS_CONFIG_SAN_IP,
} tls_config_san_type_t;

/* StringMatcher kinds; SUFFIX and CONTAINS are refused by the snapshot for now, as the TLS
 * engine (certs/identity.h) matches exact and prefix only. */
typedef enum {
    TLS_CONFIG_MATCH_EXACT,
    TLS_CONFIG_MATCH_PREFIX,
    TLS_CONFIG_MATCH_SUFFIX,
    TLS_CONFIG_MATCH_CONTAINS,
} tls_config_match_t;

typedef struct tls_config_san_matcher {
    tls_config_san_type_t type;
    tls_config_match_t match;
    char *value;      /* never NULL; empty only for an exact match */
    bool ignore_case; /* only with TLS_CONFIG_SAN_DNS, whose names always compare so */
} tls_config_san_matcher_t;

typedef struct tls_context_config {
    tls_config_role_t role;
    /* Our certificate and its key (PEM); both absent (data NULL) only for a client that
     * presents no certificate. The key bytes are wiped before they are freed. */
    tls_config_data_t cert_chain;
    tls_config_data_t private_key;
    /* validation_context.trusted_ca (PEM bundle). Always there for a client (servers are
     * always verified); a server without it does not ask for client certificates. */
    tls_config_data_t trusted_ca;
    /* The peer's certificate must have a SAN matching at least one of these; none: any. Only
     * with trusted_ca. */
    tls_config_san_matcher_t *san_matchers;
    size_t n_san_matchers;
    char **alpn; /* alpn_protocols, in preference order */
    size_t n_alpn;
    tls_config_version_t min_version; /* TLS_CONFIG_VERSION_AUTO when unset */
    tls_config_version_t max_version;
    char **cipher_suites; /* tls_params.cipher_suites as written (BoringSSL names); none: default */
    size_t n_cipher_suites;
    char **ecdh_curves; /* tls_params.ecdh_curves ("X25519", "P-256"); none: default */
    size_t n_ecdh_curves;
    /* TLS_CONFIG_CLIENT (UpstreamTlsContext) */
    char *sni;                 /* server name to send; NULL: none */
    uint32_t max_session_keys; /* sessions kept for resumption; Envoy's default 1, 0: none */
    /* TLS_CONFIG_SERVER (DownstreamTlsContext) */
    bool require_client_certificate;   /* needs trusted_ca */
    bool require_sni;                  /* refuse a ClientHello without SNI */
    bool disable_stateless_resumption; /* no session tickets */
    bool disable_stateful_resumption;  /* no session-id cache */
    /* A secret it takes over SDS is not in the resource set yet: no engine (engine and
     * engine_no_alpn NULL), so its connections fail, as Envoy's do on a context whose secrets
     * are not ready. The snapshot lists the secret as missing (snapshot_references). */
    bool awaiting_secret;
    /* The TLS engine's config built from the fields above (a reference owned here), shared
     * read-only by every worker's connections. */
    struct tls_config *engine;
    /* Server with alpn: the same config without ALPN, for clients that offer none of ours
     * (mbedTLS would refuse them with no_application_protocol; Envoy goes on without ALPN). */
    struct tls_config *engine_no_alpn;
    /* san_matchers in the engine's form, for tls_session_expect_peer (values borrowed from
     * san_matchers); the engine config itself carries no expected peer, so contexts differing
     * only in it (and in sni) share one. */
    identity_matcher_t *peer_ids;
    size_t n_peer_ids;
} tls_context_config_t;

/* Cluster.DnsLookupFamily, in the same order. */
typedef enum {
    SNAP_DNS_AUTO,         /* IPv6 addresses if the answer has any, else IPv4 */
    SNAP_DNS_V4_ONLY,      /* IPv4 only */
    SNAP_DNS_V6_ONLY,      /* IPv6 only */
    SNAP_DNS_V4_PREFERRED, /* IPv4 addresses if the answer has any, else IPv6 */
    SNAP_DNS_ALL,          /* both */
} snap_dns_family_t;

/* One lb_endpoint of a STRICT_DNS or LOGICAL_DNS cluster. */
typedef struct snap_dns_target {
    char *host;                   /* the socket_address's address as written */
    struct sockaddr_storage addr; /* the port; for an IP literal the whole address */
    bool literal;                 /* an IP literal: needs no lookup */
    uint32_t weight;
} snap_dns_target_t;

/* The DNS settings of a cluster and the names to resolve. */
typedef struct snap_dns {
    snap_dns_family_t family;
    uint64_t refresh_ms;      /* dns_refresh_rate: Envoy's default 5000 */
    uint64_t jitter_ms;       /* dns_jitter: up to this much later, at random; 0: none */
    uint64_t failure_base_ms; /* dns_failure_refresh_rate; 0: retry at refresh_ms */
    uint64_t failure_max_ms;
    bool respect_ttl; /* accepted; the system resolver gives no TTLs (docs/config.md) */
    snap_dns_target_t *targets;
    size_t n_targets;
} snap_dns_t;

struct snap_cluster_share;

typedef struct snap_cluster {
    char *name;      /* first: tables by name (snap_name_index_t) read it there */
    char *stat_name; /* alt_stat_name or name */
    cluster_kind_t kind;
    lb_policy_t lb_policy;
    uint64_t connect_timeout_ms;
    uint32_t buffer_limit; /* per_connection_buffer_limit_bytes */
    bool has_bind;         /* upstream_bind_config: connect from this source address */
    snap_addr_t bind_addr;
    snap_endpoint_t *endpoints;
    size_t n_endpoints;
    cluster_stat_ids_t st;
    struct lb_state *lb;   /* the link to its runtime state (snap_cluster_runtime_t); NULL: none */
    uint32_t max_requests; /* circuit_breakers, DEFAULT priority: Envoy's default 1024 */
    uint32_t max_connections;  /* likewise */
    cluster_shared_t *shared;  /* in the cluster's runtime state (borrowed: lb holds it) */
    tls_context_config_t *tls; /* transport_socket: an UpstreamTlsContext (owned); NULL: plain */
    snap_dns_t *dns;           /* STRICT_DNS and LOGICAL_DNS (owned); NULL for other kinds */
    bool http2;                /* typed_extension_protocol_options: HTTP/2 */
    /* Http2ProtocolOptions.max_concurrent_streams: streams per connection at most (the peer's
     * SETTINGS may lower it); 0: not set. */
    uint32_t h2_max_concurrent_streams;
    /* HttpProtocolOptions.common_http_protocol_options.max_requests_per_connection (HTTP/2
     * upstreams); 0: not set. */
    uint32_t max_requests_per_connection;
    /* Http2ProtocolOptions.connection_keepalive: PING every interval, close after timeout
     * without its ack; 0: not set. */
    uint64_t h2_keepalive_interval_ms, h2_keepalive_timeout_ms;
    /* EDS: the name of its ClusterLoadAssignment (eds_cluster_config.service_name, else the
     * cluster's name; owned); NULL for other kinds. */
    char *eds_service;
    /* EDS: the resource set had no assignment of that name, so the cluster has no endpoints
     * yet (Envoy keeps such a cluster warming until its assignment arrives). */
    bool awaiting_assignment;
    /* What owns the pointers above (name, stat_name, endpoints, tls, dns, eds_service, lb),
     * shared by the copies of this cluster in consecutive snapshots built from the same inputs;
     * each copy holds a reference (xds/snapshot/snapshot_share.c). */
    struct snap_cluster_share *share;
    /* What the next build compares to share this cluster without reading its share or its name
     * (snap_cluster_reuse_plain), set when its inputs are plain: no TLS context, no DNS, nothing
     * taken from the set but its load assignment. The holder of the Cluster resource it was built
     * from (NULL: not plain, or a static cluster) and of the assignment it took (NULL: none). */
    const struct snap_kept *plain_src, *plain_eds;
    uint64_t name_hash; /* snap_name_hash of name */
    bool eds_own_name;  /* EDS: eds_service is the cluster's own name */
} snap_cluster_t;

typedef struct snap_filter {
    char *name;
    const struct net_filter_ops *ops; /* the data plane's (proxy/listener/network_filter.h) */
    void *config;                     /* owned; freed through the snapshot's filter registry */
} snap_filter_t;

/* Listener filters we understand; their configs carry no fields we use yet. */
typedef enum {
    LISTENER_FILTER_UNKNOWN,
    LISTENER_FILTER_ORIGINAL_DST,
    LISTENER_FILTER_HTTP_INSPECTOR,
} listener_filter_kind_t;

/* ListenerFilterChainMatchPredicate, compiled: decides per connection whether a listener
 * filter is disabled (Istio turns protocol sniffing off for server-first ports this way). */
typedef enum { PRED_ANY, PRED_PORT_RANGE, PRED_OR, PRED_AND, PRED_NOT } snap_pred_kind_t;
typedef struct snap_pred {
    snap_pred_kind_t kind;
    int32_t start, end; /* PRED_PORT_RANGE: [start, end) */
    struct snap_pred *kids;
    size_t n_kids;
} snap_pred_t;

/* FilterChainMatch.transport_protocol; TLS and RAW_BUFFER need the listener's tls_inspector
 * to tell them apart (without it every connection is raw_buffer). */
typedef enum { SNAP_TRANSPORT_ANY, SNAP_TRANSPORT_RAW_BUFFER, SNAP_TRANSPORT_TLS } snap_transport_t;

typedef struct snap_chain {
    char *name;
    char **app_protocols; /* application_protocols; none: any */
    size_t n_app_protocols;
    snap_transport_t transport;
    char **server_names; /* lowercased; exact names and "*.suffix" wildcards; none: any */
    size_t n_server_names;
    uint32_t dest_port; /* 0: any port */
    snap_cidr_t *prefixes;
    size_t n_prefixes; /* 0: any destination address */
    snap_filter_t *filters;
    size_t n_filters;
    tls_context_config_t *tls; /* transport_socket: a DownstreamTlsContext (owned); NULL: plain */
    /* A hash of the FilterChain message it was built from, as the listener's config_hash: an
     * HTTP connection moves to a new snapshot's chain of equal hash, and drains when there is
     * none. RDS routes are not in it (the message names them only). */
    uint64_t config_hash;
} snap_chain_t;

typedef struct listener_stat_ids {
    stat_id_t downstream_cx_total;
    stat_id_t downstream_cx_active;
    stat_id_t downstream_cx_destroy;
    stat_id_t no_filter_chain_match;
    stat_id_t downstream_cx_loop;
    stat_id_t downstream_cx_overflow;        /* over the listener's connection_limit */
    stat_id_t downstream_global_cx_overflow; /* over global_downstream_max_connections */
    ssl_stat_ids_t ssl;
} listener_stat_ids_t;

typedef struct snap_listener {
    char *name;          /* the listener's name, or one made from its address when it has none */
    bool name_generated; /* the config gave no name */
    char *stat_name;     /* stat_prefix or name */
    struct sockaddr_storage addr;
    bool use_original_dst; /* has the original_dst listener filter (or use_original_dst) */
    bool bind_to_port;
    bool inbound;                    /* traffic_direction INBOUND */
    bool needs_dst;                  /* a chain matches on the destination, or original_dst is on */
    bool http_inspector;             /* sniff HTTP/1.x and h2c before choosing the chain */
    snap_pred_t *inspector_disabled; /* its filter_disabled predicate, or NULL */
    bool tls_inspector;              /* read the TLS ClientHello (SNI, ALPN) before choosing */
    snap_pred_t *tls_inspector_disabled; /* its filter_disabled predicate, or NULL */
    uint64_t filters_timeout_ms;         /* how long sniffing may wait for the client's bytes */
    uint32_t buffer_limit;
    /* Open connections allowed, across workers: the runtime key
     * envoy.resource_limits.listener.<name>.connection_limit, or RUNTIME_NO_LIMIT. */
    uint64_t cx_limit;
    bool ignore_global_cx_limit; /* ignore_global_conn_limit: not counted in the global limit */
    snap_chain_t *chains;
    size_t n_chains;
    snap_chain_t *default_chain; /* NULL when the listener has none */
    listener_stat_ids_t st;
    /* A hash of the Listener message it was built from: equal hashes, same listener config
     * (what the listener manager compares to tell a changed listener from an unchanged one). */
    uint64_t config_hash;
} snap_listener_t;

/* dynamic_resources of the bootstrap: resources over ADS from a control plane (docs/xds.md). */
typedef struct snap_ads {
    bool enabled;         /* ads_config is given */
    bool delta;           /* DELTA_GRPC (or AGGREGATED_DELTA_GRPC): the incremental protocol */
    bool node_first_only; /* set_node_on_first_message_only */
    bool lds, cds;        /* lds_config / cds_config: {ads: {}}: listeners / clusters over ADS */
    char *cluster;        /* grpc_services[0].envoy_grpc.cluster_name: a static cluster (owned) */
    char *authority;      /* envoy_grpc.authority, or NULL: the cluster's name (owned) */
    uint64_t timeout_ms;  /* grpc_services[0].timeout: 0 none */
    /* lds_config / cds_config initial_fetch_timeout (15 s when unset; 0: none): how long the
     * first config, and each route configuration, endpoint or secret asked for by name, is
     * waited for (the listeners' for route configurations and secrets, the clusters' for
     * endpoints). */
    uint64_t lds_fetch_ms, cds_fetch_ms;
} snap_ads_t;

/* A resource named by another, and whether the resource set the snapshot was built from had
 * it. */
typedef struct snap_ref {
    char *name;    /* owned, or borrowed from the snapshot's clusters when `borrowed` */
    bool missing;  /* not in the set: awaited (Envoy warms what needs it until it arrives) */
    bool borrowed; /* name is a cluster's (its eds_service), which the snapshot outlives */
} snap_ref_t;

typedef struct snap_ref_list {
    snap_ref_t *v; /* owned; sorted by name, no name twice once the build is over */
    size_t n, cap;
} snap_ref_list_t;

/* The names of the resources a snapshot's listeners and clusters take from the resource set,
 * for an xDS client to subscribe to. */
typedef struct snap_refs {
    snap_ref_list_t route_configs; /* RDS: Rds.route_config_name of HTTP connection managers */
    snap_ref_list_t endpoints;     /* EDS: snap_cluster_t.eds_service of EDS clusters */
    snap_ref_list_t secrets;       /* SDS: SdsSecretConfig.name in TLS contexts */
} snap_refs_t;

/* The names of a set's load assignments in the set's order, which was strictly ascending, with
 * their holders (arrays owned; each name borrowed from its holder's message, which the snapshot
 * keeps): the next build indexes its assignments from these when the holders at the same places
 * are the same, reading only the names that changed. */
typedef struct snap_set_names {
    const char **name;
    const struct snap_kept **kept;
    size_t n;
} snap_set_names_t;

struct snap_build;
struct snap_dynamic;

/* A table of a snapshot's clusters or listeners by name: open addressing over 1 + the entry's
 * place (0: free), cap a power of two at least twice the count. Built with the snapshot, read
 * only afterwards. It reads an entry's name where snap_cluster_t and snap_listener_t keep it:
 * first; and only when the name's hash matches the one kept in the slot. */
typedef struct snap_name_index {
    uint32_t *slot; /* owned; hash[] is in the same allocation */
    uint32_t *hash; /* [slot]: the low 32 bits of the name's snap_name_hash */
    size_t cap;
} snap_name_index_t;

typedef struct snapshot {
    _Atomic int refs;
    uint64_t version;
    unsigned nworkers;
    char *node_id;
    char *node_cluster;
    /* Who this sidecar is, for Istio's metrics: node.metadata WORKLOAD_NAME (else the node's
     * cluster) and NAMESPACE (else what follows the first '.' of a "<pod>.<namespace>" node
     * id), as Istio's node metadata carries them; "" when unknown. */
    char *node_workload;
    char *node_namespace;
    snap_ads_t ads; /* dynamic_resources */
    bool has_admin;
    struct sockaddr_storage admin_addr;
    snap_listener_t *listeners;
    size_t n_listeners;
    snap_cluster_t *clusters;
    size_t n_clusters;
    /* The references its clusters hold to their shares, in blocks of SNAP_SHARE_BLOCK places
     * (owned references; NULL: each cluster holds its own, a snapshot made by hand): a block
     * whose clusters are the last snapshot's at the same places is that snapshot's block. */
    struct snap_share_block **share_blocks;
    size_t n_share_blocks;
    /* Every EDS cluster takes the load assignment of its own name (eds_own_name), as CDS from
     * Istio and most control planes gives them: the clusters taking an assignment are then the
     * one of that name (snapshot_eds_cluster). */
    bool eds_own_names;
    snap_name_index_t cluster_names, listener_names; /* snapshot_find_cluster, _listener */
    runtime_t runtime; /* layered_runtime, flattened; its entries borrow from bootstrap */
    /* Open connections allowed over every listener that counts (not the admin endpoint): the
     * runtime key overload.global_downstream_max_connections, or RUNTIME_NO_LIMIT. */
    uint64_t global_cx_limit;
    void *bootstrap; /* the Bootstrap message it came from (bootstrap_kept's), for /config_dump */
    /* The holder of bootstrap (a reference; NULL when it keeps none), shared by the snapshots
     * built from the same Bootstrap: the next one takes a reference instead of a copy, as no
     * build writes into a Bootstrap once a first build has named its listeners. */
    struct snap_kept *bootstrap_kept;
    /* Copies of the resources of its set that came over xDS (owned; NULL: none), for
     * /config_dump and rebuilds. */
    struct snap_dynamic *dynamic;
    snap_refs_t references;            /* what its resources name (snapshot_references) */
    snap_set_names_t assignment_names; /* n 0: none kept */
    /* While it is being built: the build (borrowed), through which filters' config_parse reach
     * the resource set (snapshot_rds_route_table). NULL once built. */
    struct snap_build *build;
    /* What it was built with (snap_build_opts_t), so snapshot_rebuild builds the next one
     * alike: the filter registry (static), the cluster runtime (static) and its table (a
     * reference, dropped after the clusters' links). */
    const struct snap_filter_registry *filters;
    const struct snap_cluster_runtime *cluster_runtime;
    void *cluster_states;
    /* The store its clusters' stats are defined in (borrowed; NULL: made by hand), for the next
     * build to tell whether their stat ids serve it. */
    const stats_store_t *stats;
    /* The TLS engine configs its build made or took over, by what makes them (owned; internal
     * to snapshot_tls.c): the next build takes those it needs, so unchanged TLS contexts keep
     * their engine config across snapshots. */
    struct tls_engine_entry *tls_engines;
} snapshot_t;

/* Where a build finds the addresses of the host names of DNS clusters: whoever resolves them
 * (proxy/server/dns.c) keeps them, so the xds layer does no lookups itself. */
typedef struct snap_resolver {
    /* Sets *addrs and *n to what `host` of cluster `cluster` resolves to now, the address to
     * prefer first (a LOGICAL_DNS cluster uses only that one); ports are ignored. *addrs is
     * borrowed and must stay valid until the build returns. Returns 0, or negative when
     * nothing is known (not resolved yet, or never successfully): no endpoints from it. */
    int (*lookup)(void *ctx, const char *cluster, const char *host,
                  const struct sockaddr_storage **addrs, size_t *n);
    void *ctx;
} snap_resolver_t;

/* The network filters a build knows: a filter is found by type URL (as Envoy does) or by name,
 * and its typed_config parsed into a config the snapshot owns. filters/registry.c is the set
 * the proxy ships; the builder knows nothing else of a filter, and the data plane reads its ops
 * (proxy/listener/network_filter.h). Every hook borrows its arguments. */
typedef struct snap_filter_registry {
    /* The filter of this type URL, or of this name when type_url is NULL; NULL: unknown. */
    const struct net_filter_ops *(*lookup)(const char *name, const char *type_url);
    /* Parses any (a Google__Protobuf__Any*) for filter f into *out (new, freed with
     * config_free). snap is the snapshot being built: its clusters are in place. Stats go into
     * stats. Returns 0, or negative with err set. */
    int (*config_parse)(const struct net_filter_ops *f, const void *any,
                        const struct snapshot *snap, stats_store_t *stats, void **out, char *err,
                        size_t errlen);
    void (*config_free)(const struct net_filter_ops *f, void *config); /* config taken */
} snap_filter_registry_t;

/* The data plane's runtime state of clusters, which outlives snapshots (circuit-breaker counts,
 * load-balancer positions and per-endpoint counts; proxy/upstream/cluster_state.h implements
 * it over a table kept by cluster name). A build links each cluster it builds to its state, so
 * a snapshot swap resets no count; the snapshot unlinks them as it is freed. `states` is the
 * table, opaque here. */
typedef struct snap_cluster_runtime {
    /* Before a build links its clusters (main thread): checks that states serves nworkers
     * workers and frees what no snapshot holds any more. Returns 0, or negative with err set. */
    int (*begin)(void *states, unsigned nworkers, char *err, size_t errlen);
    /* Sets c->lb and c->shared (c borrowed; the snapshot's). Returns 0 or -ENOMEM; unlink undoes
     * either. Main thread. */
    int (*link)(void *states, snap_cluster_t *c);
    /* Drops what link took (c borrowed). Any thread: the snapshot's last holder. */
    void (*unlink)(snap_cluster_t *c);
    void *(*ref)(void *states);  /* a new reference, returned */
    void (*unref)(void *states); /* one reference taken; any thread */
} snap_cluster_runtime_t;

/* What a build links the new snapshot to besides its resources; every field may be NULL. */
typedef struct snap_build_opts {
    /* The addresses of DNS clusters' host names (borrowed); NULL: only IP literals. */
    const snap_resolver_t *resolver;
    /* The network filters a config may name (static); NULL: none, so any listener with a filter
     * chain is refused. */
    const snap_filter_registry_t *filters;
    /* The runtime state of clusters (static), and its table (borrowed: the snapshot takes a
     * reference). Clusters keep their state across snapshots built with the same table. NULL:
     * clusters get no runtime state (enough to check a config, not to run it). Builds that
     * share a table run on one thread (the main thread), one at a time. */
    const snap_cluster_runtime_t *cluster_runtime;
    void *cluster_states;
} snap_build_opts_t;

#endif
