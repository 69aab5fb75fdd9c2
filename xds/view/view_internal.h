/* What the parts of the view's build share (internal to xds/view/): the build's state, the
 * registry as it reads it, and how a part adds an encoded resource to a group. */
#ifndef REMORA_XDS_VIEW_INTERNAL_H
#define REMORA_XDS_VIEW_INTERNAL_H

#include "xds/view/pb_write.h"
#include "xds/view/view.h"

#define VIEW_DEFAULT_CONNECT_TIMEOUT_MS 10000

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

/* The mode of namespace ns (borrowed): its own, else the mesh's; OFF when neither says. */
view_mtls_t vb_mtls(const view_builder_t *b, const char *ns);
/* Whether a port of this protocol gets an HTTP chain (and route) besides its TCP chain. */
bool view_proto_http(view_protocol_t p);
/* The port endpoint e serves service port pi of s on. */
uint16_t view_endpoint_port(const view_service_t *s, size_t pi, const view_endpoint_t *e);
uint32_t vb_connect_timeout(const view_builder_t *b);

/* Writes a transport_socket field (open message: a Cluster or FilterChain) with Istio's mTLS:
 * the workload's certificate (SDS "default") and the trust bundle (SDS "ROOTCA") over ADS.
 * Upstream: sni and the server's SPIFFE IDs (exact URI SANs, sans[0..n_sans)) and alpn.
 * Downstream: a client certificate of the trust domain is required. */
void view_upstream_tls(pbw_t *w, const char *sni, const char *alpn, char *const *sans,
                       size_t n_sans);
void view_downstream_tls(pbw_t *w, const char *trust_domain);
/* The http_filters entry of the router (open message: an HttpConnectionManager). */
void view_router_filter(pbw_t *w);
/* An `ads: {}` ConfigSource field with resource_api_version V3. */
void view_ads_source(pbw_t *w, const char *field);

/* The parts, each adding its groups: CDS and EDS (view_clusters.c), the sidecars' listeners
 * (view_listeners.c), route configurations and the proxyless gRPC clients' resources
 * (view_routes.c). Return 0 or negative with b->err set. */
int view_build_clusters(view_builder_t *b);
int view_build_endpoints(view_builder_t *b);
int view_build_outbound(view_builder_t *b);
int view_build_inbound(view_builder_t *b);
int view_build_routes(view_builder_t *b);
int view_build_grpc(view_builder_t *b);

#endif
