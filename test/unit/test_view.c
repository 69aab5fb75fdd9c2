/* The per-sidecar view (xds/view/): the resources a registry becomes, decoded and read field by
 * field: cluster names and kinds, mTLS settings, localities, listener chains and their matches,
 * route domains, proxyless gRPC API listeners, the groups a node gets. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"
#include "test/unit/view_fixture.h"
#include "xds/view/view.h"

typedef Envoy__Config__Cluster__V3__Cluster cluster_t;
typedef Envoy__Config__Endpoint__V3__ClusterLoadAssignment cla_t;
typedef Envoy__Config__Listener__V3__Listener listener_t;
typedef Envoy__Config__Listener__V3__FilterChain chain_t;
typedef Envoy__Config__Route__V3__RouteConfiguration routes_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext up_tls_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__DownstreamTlsContext down_tls_t;
typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager hcm_t;
typedef Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy tcp_proxy_t;

#define HCM_DESC                                                                                   \
    (&envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor)

static view_t *build(void)
{
    view_registry_t reg = fx_registry();
    view_t *v = NULL;
    char err[256];
    if (view_build(&reg, NULL, &v, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    return v;
}

static void *unpack_any(const Google__Protobuf__Any *a, const ProtobufCMessageDescriptor *d)
{
    assert_non_null(a);
    char url[200];
    snprintf(url, sizeof(url), "type.googleapis.com/%s", d->name);
    assert_string_equal(a->type_url, url);
    void *m = protobuf_c_message_unpack(d, NULL, a->value.len, a->value.data);
    assert_non_null(m);
    return m;
}

static cluster_t *cluster(const view_t *v, const char *name)
{
    return (cluster_t *)fx_decode(v, VIEW_GROUP_CLUSTERS, "", name);
}

static up_tls_t *upstream_tls(const cluster_t *c)
{
    assert_non_null(c->transport_socket);
    return unpack_any(
        c->transport_socket->typed_config,
        &envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__descriptor);
}

static void free_msg(void *m)
{
    protobuf_c_message_free_unpacked(m, NULL);
}

/* ---- CDS ------------------------------------------------------------------------------------ */

static void test_clusterip_service_port_is_an_eds_cluster_named_as_istio_does(void **state)
{
    (void)state;
    view_t *v = build();
    cluster_t *c = cluster(v, "outbound|80||web.default.svc.cluster.local");
    assert_int_equal(c->type, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS);
    assert_int_equal(c->lb_policy, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN);
    assert_string_equal(c->eds_cluster_config->service_name, c->name);
    assert_int_equal(c->eds_cluster_config->eds_config->config_source_specifier_case,
                     ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS);
    assert_int_equal(c->connect_timeout->seconds, 10);
    assert_null(c->transport_socket); /* default is not in mTLS */
    /* Without mTLS the TCP chain shares the HTTP port's cluster. */
    assert_null(view_group_resource(view_find_group(v, VIEW_GROUP_CLUSTERS, ""),
                                    "outbound|80|tcp|web.default.svc.cluster.local"));
    free_msg(c);
    view_free(v);
}

static void test_strict_namespace_clusters_originate_istio_mtls_over_sds(void **state)
{
    (void)state;
    view_t *v = build();
    cluster_t *c = cluster(v, "outbound|8080||api.secure.svc.cluster.local");
    up_tls_t *t = upstream_tls(c);
    assert_string_equal(t->sni, "outbound_.8080_._.api.secure.svc.cluster.local");
    const Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext *ctx =
        t->common_tls_context;
    assert_int_equal(ctx->n_alpn_protocols, 1);
    assert_string_equal(ctx->alpn_protocols[0], "h2"); /* HTTP/2 between sidecars */
    assert_int_equal(ctx->n_tls_certificate_sds_secret_configs, 1);
    assert_string_equal(ctx->tls_certificate_sds_secret_configs[0]->name, "default");
    assert_non_null(ctx->tls_certificate_sds_secret_configs[0]->sds_config->ads);
    const Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext__CombinedCertificateValidationContext
        *cv = ctx->combined_validation_context;
    assert_non_null(cv);
    assert_string_equal(cv->validation_context_sds_secret_config->name, "ROOTCA");
    /* The endpoints' service account is the server identity expected. */
    assert_int_equal(cv->default_validation_context->n_match_typed_subject_alt_names, 1);
    assert_string_equal(
        cv->default_validation_context->match_typed_subject_alt_names[0]->matcher->exact,
        "spiffe://cluster.local/ns/secure/sa/api");
    free_msg(t);
    free_msg(c);
    /* The TCP chain's cluster offers ALPN istio, so the server takes it as opaque TCP. */
    c = cluster(v, "outbound|8080|tcp|api.secure.svc.cluster.local");
    t = upstream_tls(c);
    assert_string_equal(t->common_tls_context->alpn_protocols[0], "istio");
    assert_string_equal(t->sni, "outbound_.8080_._.api.secure.svc.cluster.local");
    free_msg(t);
    free_msg(c);
    view_free(v);
}

static void test_mesh_wide_strict_puts_every_in_mesh_service_in_mtls(void **state)
{
    (void)state;
    view_registry_t reg = fx_registry();
    reg.mesh.mtls = VIEW_MTLS_STRICT;
    view_t *v = NULL;
    char err[256];
    assert_int_equal(view_build(&reg, NULL, &v, err, sizeof(err)), 0);
    cluster_t *c = cluster(v, "outbound|80||web.default.svc.cluster.local");
    up_tls_t *t = upstream_tls(c);
    /* The service lists web and so do its endpoints: one SAN. */
    assert_int_equal(t->common_tls_context->combined_validation_context->default_validation_context
                         ->n_match_typed_subject_alt_names,
                     1);
    free_msg(t);
    free_msg(c);
    c = cluster(v, "outbound|5432||db.default.svc.cluster.local"); /* TCP only: ALPN istio */
    t = upstream_tls(c);
    assert_string_equal(t->common_tls_context->alpn_protocols[0], "istio");
    free_msg(t);
    free_msg(c);
    c = cluster(v, "outbound|443||ext.default.svc.cluster.local"); /* outside the mesh */
    assert_null(c->transport_socket);
    free_msg(c);
    view_free(v);
}

static void test_headless_service_is_an_original_dst_cluster(void **state)
{
    (void)state;
    view_t *v = build();
    cluster_t *c = cluster(v, "outbound|9000||peers.default.svc.cluster.local");
    assert_int_equal(c->type, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__ORIGINAL_DST);
    assert_int_equal(c->lb_policy,
                     ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__CLUSTER_PROVIDED);
    assert_null(c->eds_cluster_config);
    free_msg(c);
    view_free(v);
}

static void test_external_name_service_is_a_strict_dns_cluster_on_its_name(void **state)
{
    (void)state;
    view_t *v = build();
    cluster_t *c = cluster(v, "outbound|443||ext.default.svc.cluster.local");
    assert_int_equal(c->type, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STRICT_DNS);
    const Envoy__Config__Core__V3__SocketAddress *sa =
        c->load_assignment->endpoints[0]->lb_endpoints[0]->endpoint->address->socket_address;
    assert_string_equal(sa->address, "example.com");
    assert_int_equal(sa->port_value, 443);
    free_msg(c);
    /* No EDS for it. */
    assert_null(view_group_resource(view_find_group(v, VIEW_GROUP_ENDPOINTS, ""),
                                    "outbound|443||ext.default.svc.cluster.local"));
    view_free(v);
}

static void test_inbound_and_passthrough_clusters_connect_from_the_inbound_source(void **state)
{
    (void)state;
    view_t *v = build();
    const char *names[] = {"inbound|8080||", "inbound|9090||", "inbound|80||",
                           "InboundPassthroughClusterIpv4"};
    for (size_t i = 0; i < 4; i++) {
        cluster_t *c = cluster(v, names[i]);
        assert_int_equal(c->type,
                         ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__ORIGINAL_DST);
        assert_string_equal(c->upstream_bind_config->source_address->address, "127.0.0.6");
        free_msg(c);
    }
    cluster_t *c = cluster(v, "PassthroughCluster");
    assert_null(c->upstream_bind_config);
    free_msg(c);
    /* inbound|8080|| once, though two workloads have the port. */
    const view_group_t *g = view_find_group(v, VIEW_GROUP_CLUSTERS, "");
    size_t n = 0;
    for (size_t i = 0; i < g->n; i++)
        n += strcmp(g->v[i].name, "inbound|8080||") == 0;
    assert_int_equal(n, 1);
    view_free(v);
}

/* ---- EDS ------------------------------------------------------------------------------------ */

static void test_assignment_has_ready_endpoints_by_locality_with_weights(void **state)
{
    (void)state;
    view_t *v = build();
    cla_t *a = (cla_t *)fx_decode(v, VIEW_GROUP_ENDPOINTS, "",
                                  "outbound|80||web.default.svc.cluster.local");
    assert_int_equal(a->n_endpoints, 2);
    assert_string_equal(a->endpoints[0]->locality->zone, "zone-a");
    assert_int_equal(a->endpoints[0]->load_balancing_weight->value, 2);
    assert_int_equal(a->endpoints[0]->n_lb_endpoints, 2); /* .4 is not ready */
    const Envoy__Config__Core__V3__SocketAddress *s0 =
        a->endpoints[0]->lb_endpoints[0]->endpoint->address->socket_address;
    const Envoy__Config__Core__V3__SocketAddress *s1 =
        a->endpoints[0]->lb_endpoints[1]->endpoint->address->socket_address;
    assert_string_equal(s0->address, "198.18.0.1");
    assert_int_equal(s0->port_value, 8080); /* the service's target port */
    assert_string_equal(s1->address, "198.18.0.3");
    assert_int_equal(s1->port_value, 8081); /* its own resolved port */
    assert_string_equal(a->endpoints[1]->locality->zone, "zone-b");
    assert_int_equal(a->endpoints[1]->load_balancing_weight->value, 1);
    free_msg(a);
    /* A locality without a zone is still given, with a weight (grpc-js-xds needs both). */
    a = (cla_t *)fx_decode(v, VIEW_GROUP_ENDPOINTS, "",
                           "outbound|8080||api.secure.svc.cluster.local");
    assert_int_equal(a->n_endpoints, 1);
    assert_non_null(a->endpoints[0]->locality);
    assert_int_equal(a->endpoints[0]->load_balancing_weight->value, 1);
    free_msg(a);
    view_free(v);
}

/* ---- LDS ------------------------------------------------------------------------------------ */

static const chain_t *find_chain(const listener_t *l, const char *name)
{
    for (size_t i = 0; i < l->n_filter_chains; i++)
        if (strcmp(l->filter_chains[i]->name, name) == 0)
            return l->filter_chains[i];
    fail_msg("listener %s has no chain '%s'", l->name, name);
    return NULL;
}

static void test_outbound_listener_has_http_and_tcp_chains_per_vip_and_port(void **state)
{
    (void)state;
    view_t *v = build();
    listener_t *l = (listener_t *)fx_decode(v, VIEW_GROUP_OUTBOUND, "default", "virtualOutbound");
    assert_int_equal(l->address->socket_address->port_value, 15001);
    assert_int_equal(l->n_listener_filters, 2);
    assert_string_equal(l->listener_filters[0]->name, "envoy.filters.listener.original_dst");
    assert_string_equal(l->listener_filters[1]->name, "envoy.filters.listener.http_inspector");
    const chain_t *c = find_chain(l, "outbound|80||web.default.svc.cluster.local-http");
    assert_int_equal(c->filter_chain_match->destination_port->value, 80);
    assert_string_equal(c->filter_chain_match->prefix_ranges[0]->address_prefix, "198.19.0.10");
    assert_int_equal(c->filter_chain_match->prefix_ranges[0]->prefix_len->value, 32);
    assert_int_equal(c->filter_chain_match->n_application_protocols, 2);
    hcm_t *h = unpack_any(c->filters[0]->typed_config, HCM_DESC);
    assert_string_equal(h->rds->route_config_name, "80");
    assert_non_null(h->rds->config_source->ads);
    assert_string_equal(h->http_filters[0]->name, "envoy.filters.http.router");
    free_msg(h);
    c = find_chain(l, "outbound|80||web.default.svc.cluster.local");
    assert_int_equal(c->filter_chain_match->n_application_protocols, 0);
    tcp_proxy_t *t =
        unpack_any(c->filters[0]->typed_config,
                   &envoy__extensions__filters__network__tcp_proxy__v3__tcp_proxy__descriptor);
    assert_string_equal(t->cluster, "outbound|80||web.default.svc.cluster.local");
    free_msg(t);
    /* A TCP port has its TCP chain only; a headless service matches its ready endpoints. */
    find_chain(l, "outbound|5432||db.default.svc.cluster.local");
    c = find_chain(l, "outbound|9000||peers.default.svc.cluster.local");
    assert_int_equal(c->filter_chain_match->n_prefix_ranges, 1);
    assert_string_equal(c->filter_chain_match->prefix_ranges[0]->address_prefix, "198.18.0.7");
    /* web: HTTP and TCP; db and peers: TCP; api: HTTP and its mTLS TCP chain. */
    assert_int_equal(l->n_filter_chains, 6);
    find_chain(l, "outbound|8080|tcp|api.secure.svc.cluster.local");
    assert_string_equal(l->default_filter_chain->name, "PassthroughFilterChain");
    free_msg(l);
    view_free(v);
}

static void test_outbound_listener_bytes_are_shared_by_every_namespace(void **state)
{
    (void)state;
    view_t *v = build();
    const view_group_t *a = view_find_group(v, VIEW_GROUP_OUTBOUND, "default");
    const view_group_t *b = view_find_group(v, VIEW_GROUP_OUTBOUND, "mixed");
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_equal(a->v[0].blob, b->v[0].blob);
    assert_true(a->hash == b->hash);
    view_free(v);
}

static void test_inbound_listener_without_mtls_has_plaintext_chains_per_port(void **state)
{
    (void)state;
    view_t *v = build();
    listener_t *l =
        (listener_t *)fx_decode(v, VIEW_GROUP_INBOUND, "default/web-1", "virtualInbound");
    assert_int_equal(l->address->socket_address->port_value, 15006);
    assert_int_equal(l->n_listener_filters, 2); /* no tls_inspector */
    assert_int_equal(l->n_filter_chains, 2);
    const chain_t *c = find_chain(l, "inbound_0.0.0.0_8080-http");
    assert_int_equal(c->filter_chain_match->destination_port->value, 8080);
    assert_null(c->transport_socket);
    hcm_t *h = unpack_any(c->filters[0]->typed_config, HCM_DESC);
    assert_string_equal(h->route_config->virtual_hosts[0]->routes[0]->route->cluster,
                        "inbound|8080||");
    assert_true(h->use_remote_address->value);
    assert_int_equal(h->forward_client_cert_details, 0); /* no client certificate to forward */
    free_msg(h);
    find_chain(l, "inbound_0.0.0.0_8080-tcp");
    assert_string_equal(l->default_filter_chain->name, "InboundPassthroughFilterChain");
    free_msg(l);
    view_free(v);
}

static void test_strict_inbound_listener_takes_only_mtls_from_the_trust_domain(void **state)
{
    (void)state;
    view_t *v = build();
    listener_t *l =
        (listener_t *)fx_decode(v, VIEW_GROUP_INBOUND, "secure/api-1", "virtualInbound");
    assert_string_equal(l->listener_filters[1]->name, "envoy.filters.listener.tls_inspector");
    assert_null(l->default_filter_chain); /* plaintext is reset */
    for (size_t i = 0; i < l->n_filter_chains; i++) {
        const chain_t *c = l->filter_chains[i];
        assert_string_equal(c->filter_chain_match->transport_protocol, "tls");
        down_tls_t *t = unpack_any(
            c->transport_socket->typed_config,
            &envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__descriptor);
        assert_true(t->require_client_certificate->value);
        assert_string_equal(
            t->common_tls_context->combined_validation_context->default_validation_context
                ->match_typed_subject_alt_names[0]
                ->matcher->prefix,
            "spiffe://cluster.local/");
        free_msg(t);
    }
    /* 8080 (gRPC: HTTP and TCP), 9090 (TCP), undeclared ports (HTTP and TCP). */
    assert_int_equal(l->n_filter_chains, 5);
    const chain_t *c = find_chain(l, "inbound_0.0.0.0_8080-tls-http");
    assert_string_equal(c->filter_chain_match->application_protocols[0], "istio-http/1.1");
    hcm_t *h = unpack_any(c->filters[0]->typed_config, HCM_DESC);
    assert_int_equal(
        h->forward_client_cert_details,
        ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__FORWARD_CLIENT_CERT_DETAILS__APPEND_FORWARD);
    assert_true(h->set_current_client_cert_details->uri);
    free_msg(h);
    c = find_chain(l, "inbound_0.0.0.0_9090-tls-tcp");
    assert_int_equal(c->filter_chain_match->n_application_protocols, 0);
    find_chain(l, "InboundPassthroughFilterChain-tls-tcp");
    free_msg(l);
    view_free(v);
}

static void test_permissive_inbound_listener_takes_mtls_and_plaintext(void **state)
{
    (void)state;
    view_t *v = build();
    listener_t *l = (listener_t *)fx_decode(v, VIEW_GROUP_INBOUND, "mixed/m-1", "virtualInbound");
    assert_string_equal(
        find_chain(l, "inbound_0.0.0.0_80-tls-http")->filter_chain_match->transport_protocol,
        "tls");
    const chain_t *c = find_chain(l, "inbound_0.0.0.0_80-raw-http");
    assert_string_equal(c->filter_chain_match->transport_protocol, "raw_buffer");
    assert_null(c->transport_socket);
    find_chain(l, "inbound_0.0.0.0_80-raw-tcp");
    assert_non_null(l->default_filter_chain);
    free_msg(l);
    view_free(v);
}

/* ---- RDS ------------------------------------------------------------------------------------ */

static const Envoy__Config__Route__V3__VirtualHost *find_vhost(const routes_t *r, const char *name)
{
    for (size_t i = 0; i < r->n_virtual_hosts; i++)
        if (strcmp(r->virtual_hosts[i]->name, name) == 0)
            return r->virtual_hosts[i];
    fail_msg("route configuration %s has no virtual host '%s'", r->name, name);
    return NULL;
}

static bool has_domain(const Envoy__Config__Route__V3__VirtualHost *vh, const char *d)
{
    for (size_t i = 0; i < vh->n_domains; i++)
        if (strcmp(vh->domains[i], d) == 0)
            return true;
    return false;
}

static void test_route_configuration_per_port_names_services_as_clients_do(void **state)
{
    (void)state;
    view_t *v = build();
    routes_t *r = (routes_t *)fx_decode(v, VIEW_GROUP_ROUTES, "default", "80");
    const Envoy__Config__Route__V3__VirtualHost *vh =
        find_vhost(r, "web.default.svc.cluster.local:80");
    const char *want[] = {"web.default.svc.cluster.local",
                          "web.default.svc.cluster.local:80",
                          "web.default.svc",
                          "web.default.svc:80",
                          "web.default",
                          "web.default:80",
                          "web",
                          "web:80",
                          "198.19.0.10",
                          "198.19.0.10:80"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_true(has_domain(vh, want[i]));
    assert_int_equal(vh->n_domains, 10);
    assert_string_equal(vh->routes[0]->match->prefix, "/");
    assert_string_equal(vh->routes[0]->route->cluster,
                        "outbound|80||web.default.svc.cluster.local");
    assert_true(has_domain(find_vhost(r, "allow_any"), "*"));
    free_msg(r);
    /* From another namespace the short name is someone else's. */
    r = (routes_t *)fx_decode(v, VIEW_GROUP_ROUTES, "secure", "80");
    vh = find_vhost(r, "web.default.svc.cluster.local:80");
    assert_false(has_domain(vh, "web"));
    assert_true(has_domain(vh, "web.default"));
    free_msg(r);
    /* Opaque TCP ports have no route configuration; gRPC ports do. */
    const view_group_t *g = view_find_group(v, VIEW_GROUP_ROUTES, "default");
    assert_null(view_group_resource(g, "5432"));
    assert_non_null(view_group_resource(g, "8080"));
    view_free(v);
}

/* ---- proxyless gRPC ------------------------------------------------------------------------- */

static void test_proxyless_client_gets_api_listeners_with_rds(void **state)
{
    (void)state;
    view_t *v = build();
    const char *name = "api.secure.svc.cluster.local:8080";
    listener_t *l = (listener_t *)fx_decode(v, VIEW_GROUP_GRPC_LISTENERS, "", name);
    assert_null(l->address);
    assert_non_null(l->api_listener);
    hcm_t *h = unpack_any(l->api_listener->api_listener, HCM_DESC);
    assert_string_equal(h->rds->route_config_name, name);
    assert_non_null(h->rds->config_source->ads);
    assert_int_equal(h->n_http_filters, 1);
    assert_string_equal(h->http_filters[0]->name, "envoy.filters.http.router");
    free_msg(h);
    free_msg(l);
    routes_t *r = (routes_t *)fx_decode(v, VIEW_GROUP_GRPC_ROUTES, "", name);
    const Envoy__Config__Route__V3__VirtualHost *vh = find_vhost(r, name);
    assert_true(has_domain(vh, name));
    assert_false(has_domain(vh, "api")); /* no namespace to read a short name in */
    assert_string_equal(vh->routes[0]->route->cluster,
                        "outbound|8080||api.secure.svc.cluster.local");
    free_msg(r);
    view_free(v);
}

/* grpc-js-xds NACKed the sidecars' clusters of these: "Unsupported type ORIGINAL_DST",
 * "unsupported lb_policy: CLUSTER_PROVIDED", "Unsupported type STRICT_DNS". */
static void
test_proxyless_client_gets_eds_and_logical_dns_clusters_of_headless_and_external_name(void **state)
{
    (void)state;
    view_t *v = build();
    const char *peers = "outbound|9000|grpc|peers.default.svc.cluster.local";
    const char *ext = "outbound|443|grpc|ext.default.svc.cluster.local";
    cluster_t *c = (cluster_t *)fx_decode(v, VIEW_GROUP_GRPC_CLUSTERS, "", peers);
    assert_int_equal(c->type, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS);
    assert_int_equal(c->lb_policy, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN);
    assert_string_equal(c->eds_cluster_config->service_name, peers);
    assert_non_null(c->eds_cluster_config->eds_config->ads);
    assert_null(c->transport_socket);
    free_msg(c);
    /* Its assignment: the ready endpoint only, its locality weighted. */
    cla_t *a = (cla_t *)fx_decode(v, VIEW_GROUP_ENDPOINTS, "", peers);
    assert_int_equal(a->n_endpoints, 1);
    assert_int_equal(a->endpoints[0]->n_lb_endpoints, 1);
    assert_string_equal(
        a->endpoints[0]->lb_endpoints[0]->endpoint->address->socket_address->address, "198.18.0.7");
    assert_int_equal(
        a->endpoints[0]->lb_endpoints[0]->endpoint->address->socket_address->port_value, 9000);
    assert_int_equal(a->endpoints[0]->load_balancing_weight->value, 1);
    free_msg(a);
    c = (cluster_t *)fx_decode(v, VIEW_GROUP_GRPC_CLUSTERS, "", ext);
    assert_int_equal(c->type, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__LOGICAL_DNS);
    assert_int_equal(c->lb_policy, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN);
    assert_int_equal(c->load_assignment->n_endpoints, 1);
    assert_int_equal(c->load_assignment->endpoints[0]->n_lb_endpoints, 1);
    const Envoy__Config__Core__V3__SocketAddress *sa =
        c->load_assignment->endpoints[0]->lb_endpoints[0]->endpoint->address->socket_address;
    assert_string_equal(sa->address, "example.com");
    assert_int_equal(sa->port_value, 443);
    free_msg(c);
    /* The clients' routes name them; the sidecars' clusters and routes are as before. */
    routes_t *r = (routes_t *)fx_decode(v, VIEW_GROUP_GRPC_ROUTES, "",
                                        "peers.default.svc.cluster.local:9000");
    assert_string_equal(r->virtual_hosts[0]->routes[0]->route->cluster, peers);
    free_msg(r);
    r = (routes_t *)fx_decode(v, VIEW_GROUP_GRPC_ROUTES, "", "ext.default.svc.cluster.local:443");
    assert_string_equal(r->virtual_hosts[0]->routes[0]->route->cluster, ext);
    free_msg(r);
    const view_group_t *g = view_find_group(v, VIEW_GROUP_GRPC_CLUSTERS, "");
    assert_int_equal(g->n, 2); /* nothing of ClusterIP services */
    assert_null(view_group_resource(view_find_group(v, VIEW_GROUP_CLUSTERS, ""), peers));
    assert_null(view_group_resource(view_find_group(v, VIEW_GROUP_CLUSTERS, ""), ext));
    assert_non_null(view_group_resource(view_find_group(v, VIEW_GROUP_CLUSTERS, ""),
                                        "outbound|9000||peers.default.svc.cluster.local"));
    view_free(v);
}

/* Without headless and ExternalName services the gRPC clients' cluster group is empty, and the
 * build after one appears looks into it: an empty group has no array, which neither qsort nor
 * bsearch may be given (UBSan says so in the ASan build). */
static void test_empty_group_is_sealed_and_looked_into(void **state)
{
    (void)state;
    view_registry_t reg = fx_registry();
    reg.n_services = 2; /* web and db: ClusterIP only */
    view_t *a = NULL, *b = NULL;
    char err[256];
    assert_int_equal(view_build(&reg, NULL, &a, err, sizeof(err)), 0);
    const view_group_t *g = view_find_group(a, VIEW_GROUP_GRPC_CLUSTERS, "");
    assert_non_null(g);
    assert_int_equal(g->n, 0);
    assert_null(view_group_resource(g, "outbound|9000|grpc|peers.default.svc.cluster.local"));
    reg.n_services = 5;
    assert_int_equal(view_build(&reg, a, &b, err, sizeof(err)), 0);
    assert_int_equal(view_find_group(b, VIEW_GROUP_GRPC_CLUSTERS, "")->n, 2);
    view_free(a);
    view_free(b);
}

/* ---- nodes ---------------------------------------------------------------------------------- */

static void test_node_id_in_istio_and_short_forms(void **state)
{
    (void)state;
    view_node_t n;
    assert_int_equal(
        view_node_parse_id("sidecar~198.18.0.1~web-1.default~default.svc.cluster.local", &n), 0);
    assert_string_equal(n.pod, "web-1");
    assert_string_equal(n.namespace_, "default");
    assert_int_equal(view_node_parse_id("sidecar~web-1.default", &n), 0);
    assert_string_equal(n.pod, "web-1");
    assert_int_equal(view_node_parse_id("a.b.secure", &n), 0);
    assert_string_equal(n.pod, "a.b");
    assert_string_equal(n.namespace_, "secure");
    assert_int_equal(view_node_parse_id("nodot", &n), -EINVAL);
    assert_int_equal(view_node_parse_id("pod.", &n), -EINVAL);
    assert_int_equal(view_node_parse_id("a~b~c", &n), -EINVAL);
    assert_int_equal(view_node_parse_id("", &n), -EINVAL);
}

static void test_sidecar_gets_shared_namespace_and_workload_groups(void **state)
{
    (void)state;
    view_t *v = build();
    view_node_t n;
    view_node_groups_t g;
    assert_int_equal(view_node_parse_id("web-1.default", &n), 0);
    assert_int_equal(view_node_groups(v, &n, &g), 0);
    assert_int_equal(g.n, 5);
    assert_true(g.has_workload);
    assert_int_equal(g.v[0]->kind, VIEW_GROUP_CLUSTERS);
    assert_int_equal(g.v[1]->kind, VIEW_GROUP_ENDPOINTS);
    assert_int_equal(g.v[2]->kind, VIEW_GROUP_OUTBOUND);
    assert_int_equal(g.v[3]->kind, VIEW_GROUP_INBOUND);
    assert_string_equal(g.v[3]->key, "default/web-1");
    assert_int_equal(g.v[4]->kind, VIEW_GROUP_ROUTES);
    assert_string_equal(g.v[4]->key, "default");
    /* A pod the registry does not have yet: the namespace's groups, no inbound listener. */
    assert_int_equal(view_node_parse_id("new-pod.default", &n), 0);
    assert_int_equal(view_node_groups(v, &n, &g), 0);
    assert_int_equal(g.n, 4);
    assert_false(g.has_workload);
    /* A namespace nobody knows. */
    assert_int_equal(view_node_parse_id("x.nowhere", &n), 0);
    assert_int_equal(view_node_groups(v, &n, &g), -ENOENT);
    assert_int_equal(g.n, 0);
    /* A proxyless client. */
    assert_int_equal(view_node_parse_id("client.default", &n), 0);
    n.proxyless = true;
    assert_int_equal(view_node_groups(v, &n, &g), 0);
    assert_int_equal(g.n, 5);
    assert_int_equal(g.v[0]->kind, VIEW_GROUP_CLUSTERS);
    assert_int_equal(g.v[1]->kind, VIEW_GROUP_GRPC_CLUSTERS);
    assert_int_equal(g.v[2]->kind, VIEW_GROUP_ENDPOINTS);
    assert_int_equal(g.v[3]->kind, VIEW_GROUP_GRPC_LISTENERS);
    assert_int_equal(g.v[4]->kind, VIEW_GROUP_GRPC_ROUTES);
    view_free(v);
}

/* ---- bad registries ------------------------------------------------------------------------- */

static void test_registry_the_view_cannot_express_is_refused_with_where(void **state)
{
    (void)state;
    char err[256];
    view_t *v = NULL;
    view_service_t svc = fx_services[0];
    svc.vip = NULL;
    view_registry_t reg = fx_registry();
    reg.services = &svc;
    reg.n_services = 1;
    assert_int_equal(view_build(&reg, NULL, &v, err, sizeof(err)), -EINVAL);
    assert_null(v);
    assert_string_equal(err, "service default/web: a ClusterIP service needs a vip");
    view_service_t twice[2] = {fx_services[0], fx_services[0]};
    reg.services = twice;
    reg.n_services = 2;
    assert_int_equal(view_build(&reg, NULL, &v, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "service default/web: given twice");
    view_workload_t wl[2] = {fx_workloads[0], fx_workloads[0]};
    reg = fx_registry();
    reg.workloads = wl;
    reg.n_workloads = 2;
    assert_int_equal(view_build(&reg, NULL, &v, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "workload default/web-1: given twice");
    reg = fx_registry();
    reg.mesh.trust_domain = "";
    assert_int_equal(view_build(&reg, NULL, &v, err, sizeof(err)), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clusterip_service_port_is_an_eds_cluster_named_as_istio_does),
        cmocka_unit_test(test_strict_namespace_clusters_originate_istio_mtls_over_sds),
        cmocka_unit_test(test_mesh_wide_strict_puts_every_in_mesh_service_in_mtls),
        cmocka_unit_test(test_headless_service_is_an_original_dst_cluster),
        cmocka_unit_test(test_external_name_service_is_a_strict_dns_cluster_on_its_name),
        cmocka_unit_test(test_inbound_and_passthrough_clusters_connect_from_the_inbound_source),
        cmocka_unit_test(test_assignment_has_ready_endpoints_by_locality_with_weights),
        cmocka_unit_test(test_outbound_listener_has_http_and_tcp_chains_per_vip_and_port),
        cmocka_unit_test(test_outbound_listener_bytes_are_shared_by_every_namespace),
        cmocka_unit_test(test_inbound_listener_without_mtls_has_plaintext_chains_per_port),
        cmocka_unit_test(test_strict_inbound_listener_takes_only_mtls_from_the_trust_domain),
        cmocka_unit_test(test_permissive_inbound_listener_takes_mtls_and_plaintext),
        cmocka_unit_test(test_route_configuration_per_port_names_services_as_clients_do),
        cmocka_unit_test(test_proxyless_client_gets_api_listeners_with_rds),
        cmocka_unit_test(
            test_proxyless_client_gets_eds_and_logical_dns_clusters_of_headless_and_external_name),
        cmocka_unit_test(test_empty_group_is_sealed_and_looked_into),
        cmocka_unit_test(test_node_id_in_istio_and_short_forms),
        cmocka_unit_test(test_sidecar_gets_shared_namespace_and_workload_groups),
        cmocka_unit_test(test_registry_the_view_cannot_express_is_refused_with_where),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
