/* The service registry the per-sidecar view is computed from: what the mesh knows of its
 * namespaces, services, endpoints and workloads, free of Kubernetes (an adapter fills it from
 * the Kubernetes objects, as Istio's service registry stands between its controller and its
 * config generation). Types only; every string and array is borrowed by whoever reads the
 * registry and must outlive the call. */
#ifndef REMORA_XDS_VIEW_TYPES_H
#define REMORA_XDS_VIEW_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Mutual TLS between sidecars. VIEW_MTLS_MESH (0) in a namespace means the mesh's mode. */
typedef enum view_mtls {
    VIEW_MTLS_MESH = 0,
    VIEW_MTLS_OFF,
    VIEW_MTLS_PERMISSIVE,
    VIEW_MTLS_STRICT,
} view_mtls_t;

/* A port's protocol: appProtocol, or Istio's port-name prefix (http-, grpc-, tcp-...), as the
 * adapter read it. http, http2, grpc and unknown get an HTTP chain (the sidecar sniffs
 * unknown); the others are opaque TCP. */
typedef enum view_protocol {
    VIEW_PROTO_UNKNOWN = 0,
    VIEW_PROTO_HTTP,
    VIEW_PROTO_HTTP2,
    VIEW_PROTO_GRPC,
    VIEW_PROTO_HTTPS,
    VIEW_PROTO_TLS,
    VIEW_PROTO_TCP,
} view_protocol_t;

/* NodePort and LoadBalancer Services are CLUSTER_IP for the mesh. */
typedef enum view_service_kind {
    VIEW_SVC_CLUSTER_IP = 0, /* a VIP; endpoints over EDS */
    VIEW_SVC_HEADLESS,       /* no VIP; clients connect to endpoint addresses (ORIGINAL_DST) */
    VIEW_SVC_EXTERNAL_NAME,  /* a DNS name outside the mesh (STRICT_DNS) */
} view_service_kind_t;

typedef struct view_mesh {
    const char *trust_domain; /* "cluster.local": SPIFFE IDs and host names */
    view_mtls_t mtls;         /* the mesh-wide mode (VIEW_MTLS_MESH reads as OFF) */
    uint16_t outbound_port;   /* 15001 */
    uint16_t inbound_port;    /* 15006 */
    const char
        *inbound_source; /* "127.0.0.6": where the inbound sidecar connects to the app from */
    uint32_t connect_timeout_ms; /* of every cluster; 0: 10 s (Istio's) */
} view_mesh_t;

typedef struct view_namespace {
    const char *name;
    view_mtls_t mtls; /* VIEW_MTLS_MESH: the mesh's mode */
} view_namespace_t;

typedef struct view_port {
    uint16_t port;    /* the service port (a workload's container port) */
    const char *name; /* may be NULL */
    view_protocol_t protocol;
    uint16_t target_port; /* services: the endpoints' port when they give none; 0: port */
} view_port_t;

typedef struct view_endpoint {
    const char *address; /* an IPv4 or IPv6 address */
    /* One per service port, in the service's order: the target port resolved for this endpoint
     * (named target ports resolved by the adapter); NULL or 0: the service port's target_port. */
    const uint16_t *ports;
    bool ready;                  /* only ready endpoints are served */
    const char *zone;            /* locality; NULL or "" allowed */
    const char *service_account; /* the pod's; NULL: unknown */
} view_endpoint_t;

/* A route's match: a path (prefix or exact), exact header values, a method (a `:method`
 * header). */
typedef enum view_path_match { VIEW_PATH_PREFIX = 0, VIEW_PATH_EXACT } view_path_match_t;

typedef struct view_header_match {
    const char *name, *value; /* exact */
} view_header_match_t;

typedef struct view_route_match {
    view_path_match_t path_type;
    const char *path; /* NULL: "/" */
    const view_header_match_t *headers;
    size_t n_headers;
    const char *method; /* NULL: any */
} view_route_match_t;

/* Where a rule sends its share of requests: a port of a service of the registry. */
typedef struct view_backend {
    const char *namespace_, *name;
    uint16_t port;   /* 0: the port of the virtual host the rule is on */
    uint32_t weight; /* 0: none */
    bool invalid;    /* a backend the mesh cannot send to (not a Service): counts as missing */
} view_backend_t;

/* One rule of a route attached to a service (an HTTPRoute whose parent is the service): on
 * its virtual host of port `port` (0: of every HTTP-capable port), requests that match one of
 * matches go to backends by weight. The rules of a service replace its default route. */
typedef struct view_http_rule {
    uint16_t port;
    const view_route_match_t *matches; /* none: every request (prefix "/") */
    size_t n_matches;
    const view_backend_t *backends;
    size_t n_backends;
    bool has_timeout;
    uint32_t timeout_ms;               /* when has_timeout: 0 disables the timeout */
    const char *route_ns, *route_name; /* the route it comes from: the Envoy routes' names */
    uint32_t rule_index;
} view_http_rule_t;

typedef struct view_service {
    const char *namespace_;
    const char *name;
    const char *host; /* NULL: "<name>.<namespace>.svc.<trust_domain>" */
    view_service_kind_t kind;
    const char *vip;           /* CLUSTER_IP */
    const char *external_name; /* EXTERNAL_NAME */
    const view_port_t *ports;
    size_t n_ports;
    /* The service accounts of its endpoints, as far as the adapter knows them (the endpoints'
     * own are added): the SPIFFE IDs a client expects of the server. */
    const char *const *service_accounts;
    size_t n_service_accounts;
    const view_endpoint_t *endpoints;
    size_t n_endpoints;
    /* The rules of the routes attached to it, in the routes' order (their precedence among
     * equal matches: the first route, then its first rule). */
    const view_http_rule_t *http_rules;
    size_t n_http_rules;
} view_service_t;

typedef struct view_label {
    const char *key, *value;
} view_label_t;

/* A pod. Its sidecar's node id is "<name>.<namespace_>". */
typedef struct view_workload {
    const char *namespace_;
    const char *name;
    const char *ip;
    const char *service_account;
    const char *workload_name; /* the Deployment-style name, for metrics */
    const view_port_t *ports;  /* container ports (target_port unused) */
    size_t n_ports;
    const view_label_t *labels;
    size_t n_labels;
} view_workload_t;

typedef struct view_registry {
    view_mesh_t mesh;
    const view_namespace_t *namespaces; /* only those with a setting of their own are needed */
    size_t n_namespaces;
    const view_service_t *services;
    size_t n_services;
    const view_workload_t *workloads;
    size_t n_workloads;
} view_registry_t;

#endif
