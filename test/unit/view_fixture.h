/* The registry the view's tests share: three namespaces (the mesh's default mode, strict and
 * permissive mTLS), a ClusterIP HTTP service with endpoints in two zones and one not ready, an
 * opaque TCP service, a headless service, an ExternalName service, a gRPC service in the
 * strict namespace, and three workloads; and the same with routes attached to the HTTP service
 * (fx_routed). Header-only: each test file includes it once. */
#ifndef REMORA_TEST_VIEW_FIXTURE_H
#define REMORA_TEST_VIEW_FIXTURE_H

#include <string.h>

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

/* The fixture with routes on service default/web (as HTTPRoutes "split" and "broken" attached
 * to it make them): backends web-v1 and web-v2 (port 80) by weight, one backend that does not
 * exist. split[] is the first rule's backends, mutable: a test changes the weights. */
static const view_port_t fx_v_ports[] = {{80, "http", VIEW_PROTO_HTTP, 8080}};
static const view_endpoint_t fx_v1_eps[] = {{"198.18.0.21", NULL, true, "", "web"}};
static const view_endpoint_t fx_v2_eps[] = {{"198.18.0.22", NULL, true, "", "web"}};
static const view_header_match_t fx_canary[] = {{"x-canary", "yes"}};
static const view_route_match_t fx_split_matches[] = {
    {VIEW_PATH_PREFIX, "/api", NULL, 0, NULL},
    {VIEW_PATH_EXACT, "/api/v2", fx_canary, 1, "POST"},
};
static const view_route_match_t fx_gone_matches[] = {{VIEW_PATH_PREFIX, "/gone", NULL, 0, NULL}};
static const view_backend_t fx_rest[] = {{"default", "web-v2", 80, 1, false},
                                         {"default", "web-v1", 0, 0, false}};
static const view_backend_t fx_gone[] = {{"default", "gone", 0, 1, false},
                                         {"default", "web-v1", 0, 1, true}};

typedef struct fx_routed {
    view_service_t svcs[7];
    view_http_rule_t rules[3];
    view_backend_t split[2];
    view_registry_t reg;
} fx_routed_t;

static inline void fx_routed(fx_routed_t *f)
{
    memset(f, 0, sizeof(*f));
    memcpy(f->svcs, fx_services, sizeof(fx_services));
    f->split[0] = (view_backend_t){"default", "web-v1", 0, 90, false};
    f->split[1] = (view_backend_t){"default", "web-v2", 0, 10, false};
    f->rules[0] = (view_http_rule_t){.matches = fx_split_matches,
                                     .n_matches = 2,
                                     .backends = f->split,
                                     .n_backends = 2,
                                     .has_timeout = true,
                                     .timeout_ms = 5000,
                                     .route_ns = "default",
                                     .route_name = "split"};
    f->rules[1] = (view_http_rule_t){.backends = fx_rest,
                                     .n_backends = 2,
                                     .route_ns = "default",
                                     .route_name = "split",
                                     .rule_index = 1};
    f->rules[2] = (view_http_rule_t){.port = 80,
                                     .matches = fx_gone_matches,
                                     .n_matches = 1,
                                     .backends = fx_gone,
                                     .n_backends = 2,
                                     .route_ns = "default",
                                     .route_name = "broken"};
    f->svcs[0].http_rules = f->rules;
    f->svcs[0].n_http_rules = 3;
    f->svcs[5] = (view_service_t){.namespace_ = "default",
                                  .name = "web-v1",
                                  .vip = "198.19.0.31",
                                  .ports = fx_v_ports,
                                  .n_ports = 1,
                                  .endpoints = fx_v1_eps,
                                  .n_endpoints = 1};
    f->svcs[6] = (view_service_t){.namespace_ = "default",
                                  .name = "web-v2",
                                  .vip = "198.19.0.32",
                                  .ports = fx_v_ports,
                                  .n_ports = 1,
                                  .endpoints = fx_v2_eps,
                                  .n_endpoints = 1};
    f->reg = fx_registry();
    f->reg.services = f->svcs;
    f->reg.n_services = 7;
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
