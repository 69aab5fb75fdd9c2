/* The per-sidecar view: a service registry (view_types.h) in, the Envoy v3 resources each
 * sidecar gets out, encoded once as protobuf bytes in Istio's shapes and names, in groups that
 * sidecars share (docs/control-plane-view.md). A pure translation: no sockets, no clock. */
#ifndef REMORA_XDS_VIEW_H
#define REMORA_XDS_VIEW_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xds/view/view_types.h"

#define VIEW_TYPE_LISTENER  "type.googleapis.com/envoy.config.listener.v3.Listener"
#define VIEW_TYPE_ROUTES    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
#define VIEW_TYPE_CLUSTER   "type.googleapis.com/envoy.config.cluster.v3.Cluster"
#define VIEW_TYPE_ENDPOINTS "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"

/* The secrets the resources name over ADS (SDS), as Istio names them: the workload's
 * certificate and the trust bundle. The CA serves them. */
#define VIEW_SECRET_CERT "default"
#define VIEW_SECRET_ROOT "ROOTCA"

/* One encoded resource, shared by reference: by every group (and view) that holds the same
 * bytes, and by whoever sends it while a newer view replaces this one. Never written after it
 * is made. */
typedef struct view_blob {
    _Atomic int refs;
    uint64_t hash; /* FNV-1a of bytes */
    size_t len;
    uint8_t bytes[]; /* the resource message (not wrapped in an Any) */
} view_blob_t;

/* Adds a reference to b and returns it. */
view_blob_t *view_blob_ref(view_blob_t *b);
/* Drops a reference (taken); the last frees b. NULL is a no-op. Any thread. */
void view_blob_unref(view_blob_t *b);

typedef struct view_resource {
    const char *type_url; /* static: one of VIEW_TYPE_* */
    char *name;           /* owned by the view */
    view_blob_t *blob;    /* one reference held by the view */
} view_resource_t;

/* Who gets a group: every sidecar, the sidecars of a namespace, one workload's, or the
 * proxyless gRPC clients. */
typedef enum view_group_kind {
    VIEW_GROUP_CLUSTERS = 0,   /* key "": every CDS resource */
    VIEW_GROUP_ENDPOINTS,      /* key "": every ClusterLoadAssignment */
    VIEW_GROUP_ROUTES,         /* key <namespace>: route configurations "<port>" */
    VIEW_GROUP_OUTBOUND,       /* key <namespace>: virtualOutbound */
    VIEW_GROUP_INBOUND,        /* key "<namespace>/<pod>": the workload's virtualInbound */
    VIEW_GROUP_GRPC_LISTENERS, /* key "": API listeners "<host>:<port>" */
    VIEW_GROUP_GRPC_ROUTES,    /* key "": route configurations "<host>:<port>" */
    VIEW_GROUP_GRPC_CLUSTERS,  /* key "": "outbound|<port>|grpc|<host>" of headless and
                                * ExternalName services, in kinds a gRPC client takes */
    VIEW_GROUP_KINDS
} view_group_kind_t;

typedef struct view_group {
    view_group_kind_t kind;
    char *key;            /* owned */
    const char *type_url; /* static: the type of all its resources */
    view_resource_t *v;   /* owned, sorted by name */
    size_t n;
    uint64_t hash; /* of its resources' names and hashes: equal hashes, same group content */
} view_group_t;

struct view_memo;

/* The resources of every group, sorted by (kind, key). Immutable once built; may be read from
 * any thread. */
typedef struct view {
    view_group_t *groups; /* owned */
    size_t n;
    /* Owned, internal to xds/view/: what a build given this view as prev reuses without encoding
     * again (each registry unit's input and encoded parts; docs/control-plane-view.md, "Cost"). */
    struct view_memo *memo;
} view_t;

/* Computes the view of reg (borrowed for the call; nothing of it is kept). prev (borrowed; NULL:
 * none) is the view it replaces: a resource whose bytes come out the same is prev's blob,
 * shared, so unchanged resources keep their pointer as well as their hash. Returns 0 with *out
 * new (view_free), or negative with err saying what and where (a registry the view cannot
 * express: an empty name, a port of 0, two services with one host). */
int view_build(const view_registry_t *reg, const view_t *prev, view_t **out, char *err,
               size_t errlen);

/* Frees v (taken; NULL: nothing) and its references to blobs. */
void view_free(view_t *v);

/* The group of that kind and key (borrowed; "" for the global groups), or NULL. Borrowed from
 * v. */
const view_group_t *view_find_group(const view_t *v, view_group_kind_t kind, const char *key);

/* The resource of that name in g (borrowed), or NULL. Borrowed from g's view. */
const view_resource_t *view_group_resource(const view_group_t *g, const char *name);

/* What the view needs to know of a node (docs/control-plane-view.md, "The node"). Strings
 * borrowed by the caller's struct; pod and namespace_ may point into buf. */
typedef struct view_node {
    const char *pod;        /* the pod's name; NULL: unknown */
    const char *namespace_; /* its namespace; NULL: unknown */
    bool proxyless;         /* a proxyless gRPC client (GENERATOR: grpc) */
    const char *workload_name;
    const char *service_account;
    char buf[320];
} view_node_t;

/* Reads a node id, Istio's "sidecar~<ip>~<pod>.<namespace>~<namespace>.svc.<domain>" or
 * "<pod>.<namespace>" (a "sidecar~" prefix of only two parts, "sidecar~<pod>.<namespace>", too):
 * resets *node and fills node->pod and node->namespace_ (in node->buf; the namespace is what
 * follows the last dot). id borrowed. Returns 0, or -EINVAL when the id names no pod and namespace.
 */
int view_node_parse_id(const char *id, view_node_t *node);

#define VIEW_NODE_MAX_GROUPS 5

/* The groups a node gets (borrowed from v, in out->v), in the order a sidecar subscribes:
 * clusters, endpoints, listeners, routes. A sidecar: clusters, endpoints, its namespace's
 * outbound listener and route configurations, and its workload's inbound listener when its pod
 * is in the registry (out->has_workload). A proxyless client: clusters, the gRPC clusters,
 * endpoints, the gRPC listeners and route configurations. Returns 0, or -ENOENT when the node's
 * namespace is unknown (no group is then given). */
typedef struct view_node_groups {
    const view_group_t *v[VIEW_NODE_MAX_GROUPS];
    size_t n;
    bool has_workload;
} view_node_groups_t;
int view_node_groups(const view_t *v, const view_node_t *node, view_node_groups_t *out);

#endif
