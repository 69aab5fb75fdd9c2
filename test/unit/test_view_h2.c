/* HTTP/2 in the per-sidecar view (xds/view/): between sidecars in mTLS every HTTP-capable port's
 * outbound cluster speaks HTTP/2 offering ALPN h2, and the peer's inbound TLS HTTP chain takes
 * h2 and selects it; towards the app, a port whose protocol is http2 or grpc gets an h2c
 * cluster of its own while HTTP/1.1 ports and TCP chains stay as they were. Read from the
 * decoded Cluster and Listener protobufs. */
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
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb-c.h"
#include "test/unit/view_fixture.h"
#include "xds/view/view.h"

typedef Envoy__Config__Cluster__V3__Cluster cluster_t;
typedef Envoy__Config__Listener__V3__Listener listener_t;
typedef Envoy__Config__Listener__V3__FilterChain chain_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext up_tls_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__DownstreamTlsContext down_tls_t;
typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager hcm_t;
typedef Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy tcp_proxy_t;
typedef Envoy__Extensions__Upstreams__Http__V3__HttpProtocolOptions http_options_t;

#define HCM_DESC                                                                                   \
    (&envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor)
#define HTTP_OPTIONS_KEY "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

/* The fixture, with one change: mesh (the mesh-wide mode) and, when extra, a workload
 * default/h1-1 serving port 8080 as plain HTTP (the gRPC pod secure/api-1 has 8080 as grpc). */
static view_t *build_with(view_mtls_t mesh, bool extra)
{
    static const view_port_t h1_ports[] = {{8080, "http-web", VIEW_PROTO_HTTP, 0}};
    view_workload_t wl[4];
    memcpy(wl, fx_workloads, sizeof(fx_workloads));
    wl[3] = (view_workload_t){"default", "h1-1", "198.18.0.9", "web", "h1", h1_ports, 1, NULL, 0};
    view_registry_t reg = fx_registry();
    reg.mesh.mtls = mesh;
    reg.workloads = wl;
    reg.n_workloads = extra ? 4 : 3;
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

static void free_msg(void *m)
{
    protobuf_c_message_free_unpacked(m, NULL);
}

static cluster_t *cluster(const view_t *v, const char *name)
{
    return (cluster_t *)fx_decode(v, VIEW_GROUP_CLUSTERS, "", name);
}

/* Whether c asks for HTTP/2 as Envoy writes it (typed_extension_protocol_options: one entry,
 * HttpProtocolOptions with explicit_http_config.http2_protocol_options); false when it has no
 * entry. */
static bool speaks_h2(const cluster_t *c)
{
    if (c->n_typed_extension_protocol_options == 0)
        return false;
    assert_int_equal(c->n_typed_extension_protocol_options, 1);
    assert_string_equal(c->typed_extension_protocol_options[0]->key, HTTP_OPTIONS_KEY);
    http_options_t *o =
        unpack_any(c->typed_extension_protocol_options[0]->value,
                   &envoy__extensions__upstreams__http__v3__http_protocol_options__descriptor);
    bool h2 =
        o->explicit_http_config != NULL &&
        o->explicit_http_config->protocol_config_case ==
            ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__EXPLICIT_HTTP_CONFIG__PROTOCOL_CONFIG_HTTP2_PROTOCOL_OPTIONS &&
        o->explicit_http_config->http2_protocol_options != NULL;
    free_msg(o);
    return h2;
}

/* The ALPN list of c's UpstreamTlsContext, joined by ','. */
static void upstream_alpn(const cluster_t *c, char *out, size_t len)
{
    assert_non_null(c->transport_socket);
    up_tls_t *t = unpack_any(
        c->transport_socket->typed_config,
        &envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__descriptor);
    out[0] = '\0';
    for (size_t i = 0; i < t->common_tls_context->n_alpn_protocols; i++)
        snprintf(out + strlen(out), len - strlen(out), "%s%s", i ? "," : "",
                 t->common_tls_context->alpn_protocols[i]);
    free_msg(t);
}

static void check_cluster(const view_t *v, const char *name, bool h2, const char *alpn)
{
    cluster_t *c = cluster(v, name);
    if (speaks_h2(c) != h2)
        fail_msg("%s: HTTP/2 is %s, want %s", name, h2 ? "off" : "on", h2 ? "on" : "off");
    if (alpn) {
        char got[128];
        upstream_alpn(c, got, sizeof(got));
        assert_string_equal(got, alpn);
    } else {
        assert_null(c->transport_socket);
    }
    free_msg(c);
}

/* ---- listeners ---------------------------------------------------------------------------------
 */

static const chain_t *find_chain(const listener_t *l, const char *name)
{
    for (size_t i = 0; i < l->n_filter_chains; i++)
        if (strcmp(l->filter_chains[i]->name, name) == 0)
            return l->filter_chains[i];
    fail_msg("listener %s has no chain '%s'", l->name, name);
    return NULL;
}

static void join(char *const *v, size_t n, char *out, size_t len)
{
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        snprintf(out + strlen(out), len - strlen(out), "%s%s", i ? "," : "", v[i]);
}

/* ---- outbound: sidecar to sidecar ----------------------------------------------------------- */

static void test_mtls_http_family_clusters_speak_h2_to_the_peer_sidecar(void **state)
{
    (void)state;
    view_t *v = build_with(VIEW_MTLS_STRICT, false);
    /* http (web), grpc (api): HTTP/2 with ALPN h2, which the peer's TLS server selects. */
    check_cluster(v, "outbound|80||web.default.svc.cluster.local", true, "h2");
    check_cluster(v, "outbound|8080||api.secure.svc.cluster.local", true, "h2");
    /* The TCP chains' clusters of those ports stay opaque TCP (ALPN istio, no HTTP options). */
    check_cluster(v, "outbound|80|tcp|web.default.svc.cluster.local", false, "istio");
    check_cluster(v, "outbound|8080|tcp|api.secure.svc.cluster.local", false, "istio");
    /* TCP and TLS ports are untouched. */
    check_cluster(v, "outbound|5432||db.default.svc.cluster.local", false, "istio");
    check_cluster(v, "outbound|9000||peers.default.svc.cluster.local", false, "istio");
    /* ExternalName is outside the mesh: no TLS of ours, no HTTP/2. */
    check_cluster(v, "outbound|443||ext.default.svc.cluster.local", false, NULL);
    view_free(v);
}

/* The fixture's services and a plaintext gRPC one, default/rpc (mesh off: default is not in
 * mTLS), with a workload serving it. */
static view_t *build_plain_grpc(void)
{
    static const view_port_t rpc_ports[] = {{7070, "grpc", VIEW_PROTO_GRPC, 9090}};
    static const view_endpoint_t rpc_eps[] = {{"198.18.0.30", NULL, true, "", "rpc"}};
    view_service_t svcs[6];
    memcpy(svcs, fx_services, sizeof(fx_services));
    svcs[5] = (view_service_t){.namespace_ = "default",
                               .name = "rpc",
                               .vip = "198.19.0.30",
                               .ports = rpc_ports,
                               .n_ports = 1,
                               .endpoints = rpc_eps,
                               .n_endpoints = 1};
    view_registry_t reg = fx_registry();
    reg.services = svcs;
    reg.n_services = 6;
    view_t *v = NULL;
    char err[256];
    if (view_build(&reg, NULL, &v, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    return v;
}

static void test_without_mtls_only_http2_and_grpc_clusters_speak_h2(void **state)
{
    (void)state;
    /* Mesh off; api's namespace (secure) is strict on its own, web's and rpc's (default) follow
     * the mesh. A plaintext HTTP/1.1 port's peer takes only HTTP/1 on its HTTP chain: HTTP/1.1.
     * A gRPC port's peer (its sidecar's h2c-taking chain, or the app) speaks h2c. */
    view_t *v = build_plain_grpc();
    check_cluster(v, "outbound|80||web.default.svc.cluster.local", false, NULL);
    check_cluster(v, "outbound|7070||rpc.default.svc.cluster.local", true, NULL);
    check_cluster(v, "outbound|8080||api.secure.svc.cluster.local", true, "h2");
    view_free(v);
}

static void test_outbound_http_chain_of_a_grpc_port_takes_h2c(void **state)
{
    (void)state;
    view_t *v = build_plain_grpc();
    listener_t *l = (listener_t *)fx_decode(v, VIEW_GROUP_OUTBOUND, "default", "virtualOutbound");
    char got[128];
    const chain_t *c = find_chain(l, "outbound|7070||rpc.default.svc.cluster.local-http");
    join(c->filter_chain_match->application_protocols,
         c->filter_chain_match->n_application_protocols, got, sizeof(got));
    assert_string_equal(got, "http/1.1,http/1.0,h2c");
    /* An HTTP/1.1 port leaves h2c to its TCP chain (its app may speak it). */
    c = find_chain(l, "outbound|80||web.default.svc.cluster.local-http");
    join(c->filter_chain_match->application_protocols,
         c->filter_chain_match->n_application_protocols, got, sizeof(got));
    assert_string_equal(got, "http/1.1,http/1.0");
    free_msg(l);
    view_free(v);
}

/* The chain's DownstreamTlsContext ALPN, joined by ',' ("" when it has none). */
static void downstream_alpn(const chain_t *c, char *out, size_t len)
{
    assert_non_null(c->transport_socket);
    down_tls_t *t = unpack_any(
        c->transport_socket->typed_config,
        &envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__descriptor);
    join(t->common_tls_context->alpn_protocols, t->common_tls_context->n_alpn_protocols, out, len);
    free_msg(t);
}

/* The cluster the chain's connection manager routes / to, or its tcp_proxy's. */
static void chain_cluster(const chain_t *c, char *out, size_t len)
{
    const char *name = c->filters[0]->name;
    if (strcmp(name, "envoy.filters.network.tcp_proxy") == 0) {
        tcp_proxy_t *t =
            unpack_any(c->filters[0]->typed_config,
                       &envoy__extensions__filters__network__tcp_proxy__v3__tcp_proxy__descriptor);
        snprintf(out, len, "%s", t->cluster);
        free_msg(t);
        return;
    }
    hcm_t *h = unpack_any(c->filters[0]->typed_config, HCM_DESC);
    snprintf(out, len, "%s", h->route_config->virtual_hosts[0]->routes[0]->route->cluster);
    free_msg(h);
}

static void test_inbound_tls_http_chain_takes_h2_and_selects_it(void **state)
{
    (void)state;
    view_t *v = build_with(VIEW_MTLS_STRICT, false);
    listener_t *l =
        (listener_t *)fx_decode(v, VIEW_GROUP_INBOUND, "secure/api-1", "virtualInbound");
    char got[128];
    const char *http_chains[] = {"inbound_0.0.0.0_8080-tls-http",
                                 "InboundPassthroughFilterChain-tls-http"};
    for (size_t i = 0; i < 2; i++) {
        const chain_t *c = find_chain(l, http_chains[i]);
        join(c->filter_chain_match->application_protocols,
             c->filter_chain_match->n_application_protocols, got, sizeof(got));
        assert_string_equal(got, "istio-http/1.1,http/1.1,h2");
        downstream_alpn(c, got, sizeof(got));
        assert_string_equal(got, "h2,http/1.1");
    }
    /* The TLS TCP chains match any ALPN and select none: an opaque peer (istio) stays opaque. */
    const chain_t *c = find_chain(l, "inbound_0.0.0.0_9090-tls-tcp");
    assert_int_equal(c->filter_chain_match->n_application_protocols, 0);
    downstream_alpn(c, got, sizeof(got));
    assert_string_equal(got, "");
    free_msg(l);
    view_free(v);
}

/* ---- inbound: sidecar to its app ------------------------------------------------------------ */

static void test_grpc_port_reaches_its_app_over_h2c_and_http_port_over_http1(void **state)
{
    (void)state;
    view_t *v = build_with(VIEW_MTLS_PERMISSIVE, true);
    char got[128];
    /* secure/api-1: 8080 is grpc. Its HTTP chains send to the h2c cluster, its TCP chain to the
     * port's plain one. */
    listener_t *l =
        (listener_t *)fx_decode(v, VIEW_GROUP_INBOUND, "secure/api-1", "virtualInbound");
    chain_cluster(find_chain(l, "inbound_0.0.0.0_8080-tls-http"), got, sizeof(got));
    assert_string_equal(got, "inbound|8080|h2c|");
    chain_cluster(find_chain(l, "inbound_0.0.0.0_8080-tls-tcp"), got, sizeof(got));
    assert_string_equal(got, "inbound|8080||");
    chain_cluster(find_chain(l, "inbound_0.0.0.0_9090-tls-tcp"), got, sizeof(got));
    assert_string_equal(got, "inbound|9090||");
    free_msg(l);
    /* default/h1-1 has 8080 as http (and default is permissive here): HTTP/1.1 to the app on
     * every chain, plaintext ones included. */
    l = (listener_t *)fx_decode(v, VIEW_GROUP_INBOUND, "default/h1-1", "virtualInbound");
    const char *h1_chains[] = {"inbound_0.0.0.0_8080-tls-http", "inbound_0.0.0.0_8080-raw-http",
                               "inbound_0.0.0.0_8080-raw-tcp"};
    join(
        find_chain(l, "inbound_0.0.0.0_8080-raw-http")->filter_chain_match->application_protocols,
        find_chain(l, "inbound_0.0.0.0_8080-raw-http")->filter_chain_match->n_application_protocols,
        got, sizeof(got));
    assert_string_equal(got, "http/1.1,http/1.0");
    for (size_t i = 0; i < 3; i++) {
        chain_cluster(find_chain(l, h1_chains[i]), got, sizeof(got));
        assert_string_equal(got, "inbound|8080||");
    }
    free_msg(l);
    /* Both clusters of port 8080 exist once each: every sidecar gets every cluster. h2c to the
     * original destination, from the inbound source, without TLS. */
    cluster_t *c = cluster(v, "inbound|8080|h2c|");
    assert_true(speaks_h2(c));
    assert_int_equal(c->type, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__ORIGINAL_DST);
    assert_string_equal(c->upstream_bind_config->source_address->address, "127.0.0.6");
    assert_null(c->transport_socket);
    free_msg(c);
    check_cluster(v, "inbound|8080||", false, NULL);
    check_cluster(v, "inbound|80||", false, NULL);
    const view_group_t *g = view_find_group(v, VIEW_GROUP_CLUSTERS, "");
    size_t n = 0;
    for (size_t i = 0; i < g->n; i++)
        n += strncmp(g->v[i].name, "inbound|", 8) == 0 && strstr(g->v[i].name, "|h2c|") != NULL;
    assert_int_equal(n, 1); /* 8080 only: 9090 is tcp, 80 is http */
    view_free(v);
}

static void test_http2_named_port_also_reaches_its_app_over_h2c(void **state)
{
    (void)state;
    static const view_port_t ports[] = {{7000, "http2", VIEW_PROTO_HTTP2, 0},
                                        {7001, "", VIEW_PROTO_UNKNOWN, 0}};
    view_workload_t wl = {"default", "h2-1", "198.18.0.10", "web", "h2", ports, 2, NULL, 0};
    view_registry_t reg = fx_registry();
    reg.workloads = &wl;
    reg.n_workloads = 1;
    view_t *v = NULL;
    char err[256];
    if (view_build(&reg, NULL, &v, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    listener_t *l =
        (listener_t *)fx_decode(v, VIEW_GROUP_INBOUND, "default/h2-1", "virtualInbound");
    char got[128];
    chain_cluster(find_chain(l, "inbound_0.0.0.0_7000-http"), got, sizeof(got));
    assert_string_equal(got, "inbound|7000|h2c|");
    /* Its plaintext HTTP chain takes a client's h2c too (gRPC without a sidecar in front). */
    const chain_t *c = find_chain(l, "inbound_0.0.0.0_7000-http");
    join(c->filter_chain_match->application_protocols,
         c->filter_chain_match->n_application_protocols, got, sizeof(got));
    assert_string_equal(got, "http/1.1,http/1.0,h2c");
    /* A port of unknown protocol is sniffed HTTP/1: HTTP/1.1 to the app. */
    chain_cluster(find_chain(l, "inbound_0.0.0.0_7001-http"), got, sizeof(got));
    assert_string_equal(got, "inbound|7001||");
    free_msg(l);
    assert_null(
        view_group_resource(view_find_group(v, VIEW_GROUP_CLUSTERS, ""), "inbound|7001|h2c|"));
    check_cluster(v, "inbound|7000|h2c|", true, NULL);
    view_free(v);
}

static void test_protocol_change_of_a_port_gives_another_inbound_listener(void **state)
{
    (void)state;
    /* Two workloads alike but for the protocol of one port (http vs grpc) must not share one
     * virtualInbound blob: the memo's input tells them apart. */
    static const view_port_t http_ports[] = {{8080, "http", VIEW_PROTO_HTTP, 0}};
    static const view_port_t grpc_ports[] = {{8080, "grpc", VIEW_PROTO_GRPC, 0}};
    view_workload_t wl[2] = {
        {"default", "a-1", "198.18.0.11", "web", "a", http_ports, 1, NULL, 0},
        {"default", "b-1", "198.18.0.12", "web", "b", grpc_ports, 1, NULL, 0},
    };
    view_registry_t reg = fx_registry();
    reg.workloads = wl;
    reg.n_workloads = 2;
    view_t *v = NULL;
    char err[256];
    if (view_build(&reg, NULL, &v, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    const view_resource_t *a = view_group_resource(
        view_find_group(v, VIEW_GROUP_INBOUND, "default/a-1"), "virtualInbound");
    const view_resource_t *b = view_group_resource(
        view_find_group(v, VIEW_GROUP_INBOUND, "default/b-1"), "virtualInbound");
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a->blob, b->blob);
    assert_true(a->blob->hash != b->blob->hash);
    view_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mtls_http_family_clusters_speak_h2_to_the_peer_sidecar),
        cmocka_unit_test(test_without_mtls_only_http2_and_grpc_clusters_speak_h2),
        cmocka_unit_test(test_outbound_http_chain_of_a_grpc_port_takes_h2c),
        cmocka_unit_test(test_inbound_tls_http_chain_takes_h2_and_selects_it),
        cmocka_unit_test(test_grpc_port_reaches_its_app_over_h2c_and_http_port_over_http1),
        cmocka_unit_test(test_http2_named_port_also_reaches_its_app_over_h2c),
        cmocka_unit_test(test_protocol_change_of_a_port_gives_another_inbound_listener),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
