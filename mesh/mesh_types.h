/* The Kubernetes objects remora-cp reads, reduced to the fields the mesh uses: types only
 * (mesh.h has the functions). Every string and array of an object lives in the object's own
 * block and is freed with it; nothing here points into another object. */
#ifndef REMORA_MESH_TYPES_H
#define REMORA_MESH_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum mesh_kind {
    MESH_NAMESPACE,
    MESH_SERVICE,
    MESH_ENDPOINTS,
    MESH_ENDPOINT_SLICE,
    MESH_POD,
    MESH_NETWORK_POLICY,
    MESH_HTTP_ROUTE,
    MESH_KIND_COUNT
} mesh_kind_t;

/* One label, annotation or selector entry. */
typedef struct mesh_label {
    const char *key;
    const char *value;
} mesh_label_t;

/* A string map, sorted by key (keys are unique). */
typedef struct mesh_labels {
    mesh_label_t *items;
    size_t count;
} mesh_labels_t;

typedef struct mesh_owner_ref {
    const char *kind;
    const char *name;
} mesh_owner_ref_t;

/* metadata, and where the object was read from (for messages). */
typedef struct mesh_meta {
    mesh_kind_t kind;
    const char *name;
    const char *ns;               /* "" for Namespace (cluster-scoped); "default" when absent */
    const char *uid;              /* "" when absent */
    const char *resource_version; /* "" when absent; not part of the content */
    mesh_labels_t labels;
    mesh_labels_t annotations;
    mesh_owner_ref_t *owners;
    size_t nowners;
    const char *file; /* the file or source name */
    unsigned doc;     /* 1-based document in the file */
    unsigned item;    /* 1-based item of a `kind: List`, 0 when not in one */
} mesh_meta_t;

typedef enum mesh_l4 { MESH_L4_TCP, MESH_L4_UDP, MESH_L4_SCTP } mesh_l4_t;

/* The mesh protocol of a port: appProtocol, else Istio's port-name prefix, else unknown (the
 * sidecar sniffs). */
typedef enum mesh_app_proto {
    MESH_PROTO_UNKNOWN,
    MESH_PROTO_HTTP,
    MESH_PROTO_HTTP2,
    MESH_PROTO_GRPC,
    MESH_PROTO_GRPC_WEB,
    MESH_PROTO_HTTPS,
    MESH_PROTO_TLS,
    MESH_PROTO_TCP,
    MESH_PROTO_MONGO,
    MESH_PROTO_MYSQL,
    MESH_PROTO_REDIS,
    MESH_PROTO_UDP,
    MESH_PROTO_COUNT
} mesh_app_proto_t;

typedef enum mesh_svc_type {
    MESH_SVC_CLUSTER_IP,
    MESH_SVC_NODE_PORT,
    MESH_SVC_LOAD_BALANCER,
    MESH_SVC_EXTERNAL_NAME
} mesh_svc_type_t;

typedef struct mesh_svc_port {
    const char *name; /* "" when absent (a Service of one port) */
    uint16_t port;
    uint16_t target_port;         /* 0 when targetPort names a container port */
    const char *target_port_name; /* NULL unless targetPort is a name */
    mesh_l4_t protocol;
    const char *app_protocol; /* NULL when absent */
    uint16_t node_port;       /* 0 when absent */
    mesh_app_proto_t mesh_protocol;
} mesh_svc_port_t;

typedef struct mesh_service {
    mesh_svc_type_t type;
    const char *cluster_ip; /* NULL when absent (not allocated yet), "None" when headless */
    const char **cluster_ips;
    size_t ncluster_ips;
    bool headless;             /* clusterIP "None" */
    const char *external_name; /* ExternalName only */
    bool has_selector;         /* a Service without one has hand-managed endpoints */
    mesh_labels_t selector;
    mesh_svc_port_t *ports;
    size_t nports;
} mesh_service_t;

/* What an endpoint or a pod IP stands for (Endpoints' and EndpointSlices' targetRef). */
typedef struct mesh_target_ref {
    const char *kind; /* NULL when there is no targetRef */
    const char *ns;
    const char *name;
    const char *uid;
} mesh_target_ref_t;

/* A port of Endpoints or of an EndpointSlice. */
typedef struct mesh_ep_port {
    const char *name; /* "" when absent */
    uint16_t port;    /* 0 when absent (an EndpointSlice port may leave it out: all ports) */
    mesh_l4_t protocol;
    const char *app_protocol; /* NULL when absent */
} mesh_ep_port_t;

typedef struct mesh_ep_address {
    const char *ip;
    const char *hostname;  /* NULL when absent */
    const char *node_name; /* NULL when absent */
    mesh_target_ref_t target;
    bool ready; /* false: listed in notReadyAddresses */
} mesh_ep_address_t;

typedef struct mesh_ep_subset {
    mesh_ep_address_t *addresses; /* addresses, then notReadyAddresses */
    size_t naddresses;
    mesh_ep_port_t *ports;
    size_t nports;
} mesh_ep_subset_t;

/* v1 Endpoints: named like its Service. */
typedef struct mesh_endpoints {
    mesh_ep_subset_t *subsets;
    size_t nsubsets;
} mesh_endpoints_t;

typedef struct mesh_slice_endpoint {
    const char **addresses;
    size_t naddresses;
    bool ready;       /* absent: true, as the API says */
    bool serving;     /* absent: true */
    bool terminating; /* absent: false */
    mesh_target_ref_t target;
    const char *node_name; /* NULL when absent */
    const char *zone;      /* NULL when absent */
    const char *hostname;  /* NULL when absent */
} mesh_slice_endpoint_t;

/* discovery.k8s.io/v1 EndpointSlice. A slice of another address type than IPv4 is kept with
 * no endpoints (ipv4 false) and a note. */
typedef struct mesh_endpoint_slice {
    const char *service_name; /* the kubernetes.io/service-name label; NULL when absent */
    const char *address_type;
    bool ipv4;
    mesh_slice_endpoint_t *endpoints;
    size_t nendpoints;
    mesh_ep_port_t *ports;
    size_t nports;
} mesh_endpoint_slice_t;

typedef struct mesh_container_port {
    const char *container; /* the container's name */
    const char *name;      /* NULL when absent */
    uint16_t container_port;
    mesh_l4_t protocol;
} mesh_container_port_t;

typedef enum mesh_pod_phase {
    MESH_POD_PENDING,
    MESH_POD_RUNNING,
    MESH_POD_SUCCEEDED,
    MESH_POD_FAILED,
    MESH_POD_UNKNOWN
} mesh_pod_phase_t;

typedef struct mesh_pod {
    const char *service_account;  /* "default" when absent */
    const char *node_name;        /* NULL when absent */
    mesh_container_port_t *ports; /* every container's ports, in order */
    size_t nports;
    const char *pod_ip; /* NULL when absent (not scheduled yet) */
    const char **pod_ips;
    size_t npod_ips;
    mesh_pod_phase_t phase; /* Pending when absent */
    bool ready;             /* the Ready condition is True */
} mesh_pod_t;

typedef enum mesh_sel_op {
    MESH_SEL_IN,
    MESH_SEL_NOT_IN,
    MESH_SEL_EXISTS,
    MESH_SEL_DOES_NOT_EXIST
} mesh_sel_op_t;

typedef struct mesh_sel_expr {
    const char *key;
    mesh_sel_op_t op;
    const char **values;
    size_t nvalues;
} mesh_sel_expr_t;

/* A label selector: every matchLabels entry and every expression must hold; empty selects
 * all. */
typedef struct mesh_selector {
    mesh_labels_t match_labels;
    mesh_sel_expr_t *exprs;
    size_t nexprs;
} mesh_selector_t;

typedef struct mesh_np_peer {
    bool has_pod_selector;
    mesh_selector_t pod_selector;
    bool has_ns_selector;
    mesh_selector_t ns_selector;
    const char *ip_block; /* the CIDR; NULL when the peer is not an ipBlock */
    const char **except;
    size_t nexcept;
} mesh_np_peer_t;

typedef struct mesh_np_port {
    mesh_l4_t protocol;
    uint16_t port;         /* 0 when absent (every port) or named */
    const char *port_name; /* NULL unless the port is a name */
    uint16_t end_port;     /* 0 when absent */
} mesh_np_port_t;

typedef struct mesh_np_rule {
    mesh_np_peer_t *peers; /* none: every peer */
    size_t npeers;
    mesh_np_port_t *ports; /* none: every port */
    size_t nports;
} mesh_np_rule_t;

typedef struct mesh_network_policy {
    mesh_selector_t pod_selector;
    bool ingress; /* policyTypes has Ingress (the default) */
    bool egress;  /* policyTypes has Egress (the default when egress rules are given) */
    mesh_np_rule_t *ingress_rules;
    size_t ningress_rules;
    mesh_np_rule_t *egress_rules;
    size_t negress_rules;
} mesh_network_policy_t;

/* A parentRef of an HTTPRoute that is a Service (GAMMA, the Gateway API's mesh profile); other
 * parents (a Gateway) are counted in ignored_parents and noted. */
typedef struct mesh_route_parent {
    const char *ns; /* the route's when absent */
    const char *name;
    uint16_t port;       /* 0 when absent: every port */
    const char *section; /* sectionName (a port name); NULL when absent */
} mesh_route_parent_t;

typedef enum mesh_path_type { MESH_PATH_PREFIX, MESH_PATH_EXACT } mesh_path_type_t;

/* A header match (type Exact, the only one read). */
typedef struct mesh_route_header {
    const char *name;
    const char *value;
} mesh_route_header_t;

typedef struct mesh_route_match {
    mesh_path_type_t path_type; /* PathPrefix when absent */
    const char *path;           /* "/" when absent */
    mesh_route_header_t *headers;
    size_t nheaders;
    const char *method; /* NULL when absent: any */
} mesh_route_match_t;

typedef struct mesh_route_backend {
    bool service;   /* group "" or core and kind Service (the default); others are unsupported */
    const char *ns; /* the route's when absent */
    const char *name;
    uint16_t port;   /* 0 when absent: the parent's port */
    uint32_t weight; /* 1 when absent; 0 allowed */
} mesh_route_backend_t;

typedef struct mesh_route_rule {
    mesh_route_match_t *matches; /* none: one match of prefix "/" */
    size_t nmatches;
    mesh_route_backend_t *backends;
    size_t nbackends;
    bool has_timeout;    /* timeouts.request given */
    uint32_t timeout_ms; /* 0: no timeout (the API's "0s") */
} mesh_route_rule_t;

/* gateway.networking.k8s.io/v1 (or v1beta1) HTTPRoute, as GAMMA reads it. */
typedef struct mesh_http_route {
    mesh_route_parent_t *parents; /* the Service parents only */
    size_t nparents;
    size_t ignored_parents; /* parentRefs of another kind (Gateway, ...) */
    mesh_route_rule_t *rules;
    size_t nrules;
} mesh_http_route_t;

/* One object, immutable once read, reference-counted (mesh_object_ref / mesh_object_unref):
 * the directory source, event batches and the index each hold their own reference. The count
 * is a plain integer: references are taken and dropped on one thread (the control plane's
 * main thread). */
typedef struct mesh_object {
    mesh_meta_t meta;
    union {
        mesh_service_t svc;          /* MESH_SERVICE */
        mesh_endpoints_t eps;        /* MESH_ENDPOINTS */
        mesh_endpoint_slice_t slice; /* MESH_ENDPOINT_SLICE */
        mesh_pod_t pod;              /* MESH_POD */
        mesh_network_policy_t np;    /* MESH_NETWORK_POLICY */
        mesh_http_route_t route;     /* MESH_HTTP_ROUTE */
    };
    uint64_t content_hash; /* of every field above but the source and resourceVersion */
    int refs;
    struct mesh_block *blocks; /* where the strings and arrays live */
} mesh_object_t;

/* A Kubernetes watch event type. */
typedef enum mesh_event_type {
    MESH_ADDED,
    MESH_MODIFIED,
    MESH_DELETED,
    MESH_BOOKMARK /* watch streams only; never in a batch */
} mesh_event_type_t;

/* One event: an object added, modified (the new object) or deleted (its last state). */
typedef struct mesh_event {
    mesh_event_type_t type;
    mesh_object_t *object; /* a reference the batch holds */
} mesh_event_t;

/* Events applied together; the index changes only through these. */
typedef struct mesh_batch {
    mesh_event_t *events;
    size_t count;
    size_t cap;
} mesh_batch_t;

/* One merged endpoint of a Service (mesh_index_endpoints): from its EndpointSlices when any
 * exist, else from its Endpoints. Strings and ports are borrowed from the objects the index
 * holds. */
typedef struct mesh_endpoint {
    const char *address;
    bool ready;
    bool serving;
    bool terminating;
    mesh_target_ref_t target; /* the pod, usually */
    const char *zone;         /* NULL when unknown (Endpoints have none) */
    const char *node_name;    /* NULL when unknown */
    const char *hostname;     /* NULL when absent */
    const mesh_ep_port_t *ports;
    size_t nports;
} mesh_endpoint_t;

#endif
