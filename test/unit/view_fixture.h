/* The registry the view's tests share: three namespaces (the mesh's default mode, strict and
 * permissive mTLS), a ClusterIP HTTP service with endpoints in two zones and one not ready, an
 * opaque TCP service, a headless service, an ExternalName service, a gRPC service in the
 * strict namespace, and three workloads. Header-only: each test file includes it once. */
#ifndef REMORA_TEST_VIEW_FIXTURE_H
#define REMORA_TEST_VIEW_FIXTURE_H

#include <protobuf-c/protobuf-c.h>

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "xds/view/view.h"

static const view_namespace_t fx_namespaces[] = {
    {"default", VIEW_MTLS_MESH},
    {"secure", VIEW_MTLS_STRICT},
    {"mixed", VIEW_MTLS_PERMISSIVE},
};

static const view_port_t fx_web_ports[] = {{80, "http", VIEW_PROTO_HTTP, 8080}};
static const uint16_t fx_web3_ports[] = {8081}; /* this pod serves on another port */
static const view_endpoint_t fx_web_eps[] = {
    {"198.18.0.2", NULL, true, "zone-b", "web"},
    {"198.18.0.1", NULL, true, "zone-a", "web"},
    {"198.18.0.3", fx_web3_ports, true, "zone-a", "web"},
    {"198.18.0.4", NULL, false, "zone-a", "web"},
};
static const char *const fx_web_sas[] = {"web"};
static const view_port_t fx_db_ports[] = {{5432, "tcp-pg", VIEW_PROTO_TCP, 0}};
static const view_endpoint_t fx_db_eps[] = {{"198.18.0.5", NULL, true, NULL, "db"}};
static const view_port_t fx_peers_ports[] = {{9000, "tcp", VIEW_PROTO_TCP, 0}};
static const view_endpoint_t fx_peers_eps[] = {
    {"198.18.0.7", NULL, true, NULL, NULL},
    {"198.18.0.8", NULL, false, NULL, NULL},
};
static const view_port_t fx_ext_ports[] = {{443, "https", VIEW_PROTO_HTTPS, 0}};
static const view_port_t fx_api_ports[] = {{8080, "grpc", VIEW_PROTO_GRPC, 0}};
static const view_endpoint_t fx_api_eps[] = {{"198.18.1.1", NULL, true, "", "api"}};

static const view_service_t fx_services[] = {
    {.namespace_ = "default",
     .name = "web",
     .vip = "198.19.0.10",
     .ports = fx_web_ports,
     .n_ports = 1,
     .service_accounts = fx_web_sas,
     .n_service_accounts = 1,
     .endpoints = fx_web_eps,
     .n_endpoints = 4},
    {.namespace_ = "default",
     .name = "db",
     .vip = "198.19.0.11",
     .ports = fx_db_ports,
     .n_ports = 1,
     .endpoints = fx_db_eps,
     .n_endpoints = 1},
    {.namespace_ = "default",
     .name = "peers",
     .kind = VIEW_SVC_HEADLESS,
     .ports = fx_peers_ports,
     .n_ports = 1,
     .endpoints = fx_peers_eps,
     .n_endpoints = 2},
    {.namespace_ = "default",
     .name = "ext",
     .kind = VIEW_SVC_EXTERNAL_NAME,
     .external_name = "example.com",
     .ports = fx_ext_ports,
     .n_ports = 1},
    {.namespace_ = "secure",
     .name = "api",
     .vip = "198.19.0.20",
     .ports = fx_api_ports,
     .n_ports = 1,
     .endpoints = fx_api_eps,
     .n_endpoints = 1},
};

static const view_port_t fx_web_pod_ports[] = {{8080, "http", VIEW_PROTO_HTTP, 0}};
static const view_port_t fx_api_pod_ports[] = {{8080, "grpc", VIEW_PROTO_GRPC, 0},
                                               {9090, "metrics", VIEW_PROTO_TCP, 0}};
static const view_port_t fx_m_pod_ports[] = {{80, "http", VIEW_PROTO_HTTP, 0}};
static const view_label_t fx_web_labels[] = {{"app", "web"}};

static const view_workload_t fx_workloads[] = {
    {"default", "web-1", "198.18.0.1", "web", "web", fx_web_pod_ports, 1, fx_web_labels, 1},
    {"secure", "api-1", "198.18.1.1", "api", "api", fx_api_pod_ports, 2, NULL, 0},
    {"mixed", "m-1", "198.18.2.1", "m", "m", fx_m_pod_ports, 1, NULL, 0},
};

static inline view_registry_t fx_registry(void)
{
    return (view_registry_t){
        .mesh = {.trust_domain = "cluster.local",
                 .mtls = VIEW_MTLS_OFF,
                 .outbound_port = 15001,
                 .inbound_port = 15006,
                 .inbound_source = "127.0.0.6"},
        .namespaces = fx_namespaces,
        .n_namespaces = 3,
        .services = fx_services,
        .n_services = 5,
        .workloads = fx_workloads,
        .n_workloads = 3,
    };
}

/* The descriptor of a resource type URL, or NULL. */
static inline const ProtobufCMessageDescriptor *fx_desc(const char *type_url)
{
    if (strcmp(type_url, VIEW_TYPE_LISTENER) == 0)
        return &envoy__config__listener__v3__listener__descriptor;
    if (strcmp(type_url, VIEW_TYPE_CLUSTER) == 0)
        return &envoy__config__cluster__v3__cluster__descriptor;
    if (strcmp(type_url, VIEW_TYPE_ROUTES) == 0)
        return &envoy__config__route__v3__route_configuration__descriptor;
    if (strcmp(type_url, VIEW_TYPE_ENDPOINTS) == 0)
        return &envoy__config__endpoint__v3__cluster_load_assignment__descriptor;
    return NULL;
}

/* The resource decoded (new: protobuf_c_message_free_unpacked), failing the test when it is
 * missing or does not decode. */
static inline ProtobufCMessage *fx_decode(const view_t *v, view_group_kind_t kind, const char *key,
                                          const char *name)
{
    const view_group_t *g = view_find_group(v, kind, key);
    if (g == NULL)
        fail_msg("no group %d '%s'", (int)kind, key);
    const view_resource_t *r = view_group_resource(g, name);
    if (r == NULL)
        fail_msg("group %d '%s' has no '%s'", (int)kind, key, name);
    ProtobufCMessage *m =
        protobuf_c_message_unpack(fx_desc(r->type_url), NULL, r->blob->len, r->blob->bytes);
    if (m == NULL)
        fail_msg("'%s' does not decode", name);
    return m;
}

#endif
