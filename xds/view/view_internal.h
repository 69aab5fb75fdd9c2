/* What the parts of the view's build share (internal to xds/view/): the build's state, the
 * registry as it reads it, and how a part adds an encoded resource to a group. */
#ifndef REMORA_XDS_VIEW_INTERNAL_H
#define REMORA_XDS_VIEW_INTERNAL_H

#include "xds/view/pb_write.h"
#include "xds/view/view.h"

#define VIEW_DEFAULT_CONNECT_TIMEOUT_MS 10000

/* A resource of a service unit: which global group it goes to, its name, its bytes. */
typedef struct view_unit_res {
    view_group_kind_t kind; /* CLUSTERS, ENDPOINTS, GRPC_LISTENERS, GRPC_ROUTES, GRPC_CLUSTERS */
    char *name;             /* owned */
    view_blob_t *blob;      /* one reference held */
} view_unit_res_t;

/* Everything one service gives, encoded once and kept while its input stays the same: its
 * resources, the part of virtualOutbound that is its chains (Listener filter_chains fields),
 * and per port the virtual host of the route configurations (RouteConfiguration
 * virtual_hosts fields), as seen from its own namespace and from any other. Shared by the
 * memos of successive views (refcounted); never written after it is made. */
typedef struct view_unit {
    _Atomic int refs;
    char *namespace_, *name; /* owned: the service's, the unit's identity */
    uint8_t *input;          /* owned: every input its parts depend on, serialized */
    size_t input_len;
    view_unit_res_t *res; /* owned */
    size_t n_res, cap_res;
    view_blob_t *outbound; /* one reference held; len 0 when it has no chain */
    size_t n_ports;
    uint16_t *ports; /* owned, n_ports: the service's port numbers */
    /* n_ports each, one reference each: vh_other for every port (the gRPC clients' route
     * configurations are made of it too), vh_own NULL for a port with no HTTP route. */
    view_blob_t **vh_own, **vh_other;
} view_unit_t;

typedef struct view_memo view_memo_t;

/* A unit's input, serialized: what its encoding reads, so equal bytes mean equal parts. An
 * allocation failure sticks (err). */
typedef struct view_input {
    uint8_t *buf; /* owned */
    size_t len, cap;
    int err;
} view_input_t;
void vin_str(view_input_t *in, const char *s); /* s borrowed; NULL differs from "" */
void vin_u64(view_input_t *in, uint64_t v);

/* What sealing a group still needs: sorting, checking and hashing (resources added); hashing
 * (prev's resources, some blobs replaced); nothing (prev's group, shared). */
enum { VB_GROUP_OPEN, VB_GROUP_SORTED, VB_GROUP_SEALED };

typedef struct view_builder {
    const view_registry_t *reg; /* borrowed */
    const view_t *prev;         /* borrowed, or NULL */
    /* The services sorted by (namespace, name), and their host names (owned). */
    const view_service_t **svcs;
    char **hosts;
    size_t n_svcs;
    /* Every namespace the registry names, sorted, unique (borrowed strings). */
    const char **namespaces;
    size_t n_namespaces;
    view_group_t *groups; /* what is being built; taken by the view at the end */
    size_t n_groups, cap_groups;
    unsigned char *state;         /* per group: VB_GROUP_* */
    const view_memo_t *prev_memo; /* prev's, or NULL */
    view_memo_t *memo;            /* the new view's, being filled; taken by it at the end */
    view_unit_t **units;          /* per svcs[i]: borrowed from memo */
    char *err;
    size_t errlen;
} view_builder_t;

/* Appends an empty group (key copied) and returns its index, or negative (-ENOMEM). */
int vb_group(view_builder_t *b, view_group_kind_t kind, const char *type_url, const char *key);
/* Finishes w (reset whatever happens) and adds its bytes to group gi as resource `name`
 * (copied). Returns 0 or negative with b->err set. */
int vb_add(view_builder_t *b, int gi, const char *name, pbw_t *w);
/* Adds blob (a reference is taken) as resource `name` of group gi. */
int vb_add_blob(view_builder_t *b, int gi, const char *name, view_blob_t *blob);
/* Makes group gi (its resources so far dropped) prev's group pg (borrowed): shared whole, or a
 * copy whose blobs vb_group_set may replace. Returns 0 or negative with b->err set. */
int vb_group_from_prev(view_builder_t *b, int gi, const view_group_t *pg, bool copy);
/* Makes group gi (its resources so far dropped) prev's group pg (borrowed) without the
 * resources named drop[0..n_drop) and with add[0..n_add) (both sorted by name, borrowed; blobs
 * referenced). Returns 0; 1 when it cannot (a name twice, a name to drop missing: gi is then
 * untouched); or negative with b->err set. */
int vb_group_merge(view_builder_t *b, int gi, const view_group_t *pg, const char *const *drop,
                   size_t n_drop, const view_unit_res_t *const *add, size_t n_add);
/* Replaces the blob of resource `name` of a copied group gi by blob (a reference is taken). */
int vb_group_set(view_builder_t *b, int gi, const char *name, view_blob_t *blob);
/* Adds the units' resources of group gi's kind to global group gi, after the other resources
 * the caller added: prev's group, shared or with the changed units' blobs replaced, when the
 * services are the same ones and their resources have the same names. */
int vb_units_group(view_builder_t *b, int gi);
/* Adds u's resources (borrowed) of group gi's kind to group gi (references taken). */
int vb_add_unit(view_builder_t *b, int gi, const view_unit_t *u);
/* Finishes w (reset whatever happens) into *out: prev's blob of resource `name` in group
 * (kind, key) when the bytes are the same, else a new blob with no reference yet (the caller
 * takes one, or frees it). Returns 0 or negative with b->err set. */
int vb_encode(view_builder_t *b, view_group_kind_t kind, const char *key, const char *name,
              pbw_t *w, view_blob_t **out);
/* A resource made of units' parts: head bytes, the parts' bytes, tail bytes. states[0..n]
 * receives the hash state after the head and after each part; prev_states (NULL: none) are
 * those of the resource this one replaces, whose head and first n_same parts were these. */
typedef struct vb_parts {
    const uint8_t *head, *tail; /* borrowed */
    size_t hl, tl;
    view_blob_t *const *parts; /* borrowed */
    size_t n;
    const uint64_t *prev_states; /* borrowed */
    size_t n_same;
    uint64_t *states; /* caller's, n + 1 */
} vb_parts_t;
/* As vb_encode, for the bytes of in (borrowed): a resource assembled from parts without
 * encoding them again, hashed from where it differs from prev's. */
int vb_assemble(view_builder_t *b, view_group_kind_t kind, const char *key, const char *name,
                const vb_parts_t *in, view_blob_t **out);
/* Finishes w (reset whatever happens) into a new blob with one reference, unhashed: a part of
 * a resource, or prev (borrowed, may be NULL; a reference is then taken) when its bytes are
 * the same. Returns NULL with b->err set on failure. */
view_blob_t *vb_fragment(view_builder_t *b, pbw_t *w, view_blob_t *prev);
/* Appends a resource of group kind `kind` named `name` (copied) to u, from w (reset). */
int vu_add(view_builder_t *b, view_unit_t *u, view_group_kind_t kind, const char *name, pbw_t *w);

/* The index in b->svcs of service ns/name (borrowed), or -1. */
int vb_find_service(const view_builder_t *b, const char *ns, const char *name);

/* The rules of routes attached to services (view_http_rules.c). vr_input serializes what the
 * rules of service si make (into its unit's input): the rules and, of each backend, the
 * service it resolves to (host, kind, ports), so a unit is encoded again when a backend comes,
 * goes or changes its ports. vr_on_port: port pi of si gets its rules instead of the default
 * route. vr_write writes them (routes fields of the open VirtualHost) in the Gateway API's
 * precedence, naming the gRPC clients' own clusters when grpc (0 or -ENOMEM). vr_grpc_differs: the
 * gRPC clients' virtual host of si differs from the sidecars' (a backend they reach by a cluster of
 * their own). */
void vr_input(const view_builder_t *b, size_t si, view_input_t *in);
bool vr_on_port(const view_builder_t *b, size_t si, size_t pi);
int vr_write(const view_builder_t *b, pbw_t *w, size_t si, size_t pi, bool grpc);
bool vr_grpc_differs(const view_builder_t *b, size_t si);

/* The mode of namespace ns (borrowed): its own, else the mesh's; OFF when neither says. */
view_mtls_t vb_mtls(const view_builder_t *b, const char *ns);
/* Whether a port of this protocol gets an HTTP chain (and route) besides its TCP chain. */
bool view_proto_http(view_protocol_t p);
/* Whether the app behind a port of this protocol is spoken to in HTTP/2 (h2c): http2, grpc. */
bool view_proto_h2(view_protocol_t p);
/* Writes Envoy's typed_extension_protocol_options entry asking for HTTP/2 (open message: a
 * Cluster): HttpProtocolOptions with explicit_http_config.http2_protocol_options {}. */
void view_http2_options(pbw_t *w);
/* The port endpoint e serves service port pi of s on. */
uint16_t view_endpoint_port(const view_service_t *s, size_t pi, const view_endpoint_t *e);
uint32_t vb_connect_timeout(const view_builder_t *b);

/* Writes a transport_socket field (open message: a Cluster or FilterChain) with Istio's mTLS:
 * the workload's certificate (SDS "default") and the trust bundle (SDS "ROOTCA") over ADS.
 * Upstream: sni and the server's SPIFFE IDs (exact URI SANs, sans[0..n_sans)) and alpn.
 * Downstream: a client certificate of the trust domain is required; the server selects from
 * alpn (NULL-terminated, most preferred first; NULL: no ALPN). All arguments borrowed. */
void view_upstream_tls(pbw_t *w, const char *sni, const char *alpn, char *const *sans,
                       size_t n_sans);
void view_downstream_tls(pbw_t *w, const char *trust_domain, const char *const *alpn);
/* The http_filters entry of the router (open message: an HttpConnectionManager). */
void view_router_filter(pbw_t *w);
/* An `ads: {}` ConfigSource field with resource_api_version V3. */
void view_ads_source(pbw_t *w, const char *field);

/* gRPC clients take only EDS, LOGICAL_DNS and aggregate clusters: a headless or ExternalName
 * service's port gets, for them, a cluster of its own (VIEW_GROUP_GRPC_CLUSTERS), named
 * "outbound|<port>|grpc|<host>" (VIEW_GRPC_CLUSTER_FMT: port, host), that their routes name. */
#define VIEW_GRPC_CLUSTER_FMT "outbound|%u|grpc|%s"
/* The inbound cluster of a port whose app speaks HTTP/2 (view_proto_h2), for its HTTP chains:
 * "inbound|<port>|h2c|" (port). Its TCP chains keep "inbound|<port>||". */
#define VIEW_INBOUND_H2C_FMT "inbound|%u|h2c|"
static inline bool view_grpc_own_cluster(const view_service_t *s)
{
    return s->kind != VIEW_SVC_CLUSTER_IP;
}

/* A service unit's parts, encoded into u (u->n_ports set, vh_* allocated): its clusters and
 * the gRPC clients' own ones (view_clusters.c), assignments, outbound chains
 * (view_listeners.c), virtual hosts and gRPC resources (view_routes.c). prev (borrowed, may be
 * NULL) is the unit of the same service in prev's memo, whose parts are shared when their bytes are
 * the same. */
int vu_clusters(view_builder_t *b, size_t si, view_unit_t *u);
int vu_assignments(view_builder_t *b, size_t si, view_unit_t *u);
int vu_outbound(view_builder_t *b, size_t si, view_unit_t *u, const view_unit_t *prev);
int vu_routes(view_builder_t *b, size_t si, view_unit_t *u, const view_unit_t *prev);

/* The memo (view_memo.c): a unit per service, from prev's when its input is the same (in
 * b->units, held by b->memo); then the assembled resources, reused from prev's memo when the
 * parts they are made of are the same ones. Return 0 or negative with b->err set. */
int view_memo_units(view_builder_t *b);
/* The memo of the new view (new), taken from b. */
view_memo_t *view_memo_take(view_builder_t *b);
/* Frees m (taken; NULL: nothing). */
void view_memo_free(view_memo_t *m);
/* virtualOutbound: head (w, reset: the fields before the chains), every unit's chains and tail
 * (reset), or prev's when head and tail bytes and the chains are the same. *out is borrowed
 * (the memo holds it). */
int vm_outbound(view_builder_t *b, pbw_t *head, pbw_t *tail, view_blob_t **out);
/* Adds route configuration `name` of namespace ns to group gi: head (the name, w, reset), the
 * virtual hosts vh[0..n) (borrowed, units' parts) and tail (reset); reused from prev's when
 * vh is the same. */
int vm_route(view_builder_t *b, int gi, const char *ns, uint16_t port, pbw_t *head,
             view_blob_t *const *vh, size_t n, pbw_t *tail);
/* The virtualInbound blob of these inputs (input borrowed), borrowed: this build's or prev's
 * for the same input, else NULL. vm_inbound_put remembers a new one (a reference is taken). */
view_blob_t *vm_inbound_get(view_builder_t *b, const uint8_t *input, size_t len);
int vm_inbound_put(view_builder_t *b, const uint8_t *input, size_t len, view_blob_t *blob);

/* The parts, each adding its groups: CDS, EDS and the gRPC clients' own clusters
 * (view_clusters.c), the sidecars' listeners (view_listeners.c), route configurations and the
 * proxyless gRPC clients' listeners and routes (view_routes.c). Return 0 or negative with b->err
 * set. */
int view_build_clusters(view_builder_t *b);
int view_build_endpoints(view_builder_t *b);
int view_build_outbound(view_builder_t *b);
int view_build_inbound(view_builder_t *b);
int view_build_routes(view_builder_t *b);
int view_build_grpc(view_builder_t *b);
int view_build_grpc_clusters(view_builder_t *b);

#endif
