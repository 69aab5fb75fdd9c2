/* Snapshots of resource sets that name resources of each other, as ADS delivers them: EDS
 * clusters take their endpoints from load assignments, HTTP connection managers their route
 * tables over RDS, TLS contexts their certificates and trust bundles over SDS, each the way
 * Envoy resolves them; what the set lacks is awaited, not an error; the snapshot lists every
 * name it references, keeps the xDS resources for /config_dump and rebuilds. Certificates are
 * the fixtures of test/data/certs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "proxy/http/hcm.h"
#include "proxy/http/route_match.h"
#include "xds/config/config.h"
#include "xds/snapshot/resources.h"
#include "xds/snapshot/snapshot.h"
#include "test/unit/snap_opts.h"

#define CERTS "test/data/certs/"

#define CLUSTER_DESC    (&envoy__config__cluster__v3__cluster__descriptor)
#define LISTENER_DESC   (&envoy__config__listener__v3__listener__descriptor)
#define ROUTES_DESC     (&envoy__config__route__v3__route_configuration__descriptor)
#define ASSIGNMENT_DESC (&envoy__config__endpoint__v3__cluster_load_assignment__descriptor)
#define SECRET_DESC     (&envoy__extensions__transport_sockets__tls__v3__secret__descriptor)

/* A set being put together: a bootstrap, then resources as an xDS client adds them. */
typedef struct fixture {
    stats_store_t *stats;
    ProtobufCMessage *bootstrap; /* taken by the build */
    config_resources_t res;
    ProtobufCMessage *msgs[32]; /* the xDS resources, freed at the end */
    size_t n_msgs;
    snapshot_t *snap;
    char err[1024];
} fixture_t;

static void begin(fixture_t *f, const char *bootstrap_yaml)
{
    memset(f, 0, sizeof(*f));
    f->stats = stats_store_new(2);
    if (config_yaml_load(bootstrap_yaml, strlen(bootstrap_yaml), "bootstrap.yaml",
                         &envoy__config__bootstrap__v3__bootstrap__descriptor, &f->bootstrap,
                         f->err, sizeof(f->err)) < 0)
        fail_msg("%s", f->err);
    assert_int_equal(config_resources_from_bootstrap(f->bootstrap, &f->res, f->err, sizeof(f->err)),
                     0);
}

/* Adds a resource of type desc written as YAML to list, as ADS delivers it (version "7"), named
 * "<origin>[<index>]". Returns the message, the fixture's. */
static ProtobufCMessage *add(fixture_t *f, config_resource_list_t *list, const char *origin,
                             const ProtobufCMessageDescriptor *desc, const char *yaml)
{
    ProtobufCMessage *m = NULL;
    if (config_yaml_load(yaml, strlen(yaml), origin, desc, &m, f->err, sizeof(f->err)) < 0)
        fail_msg("%s", f->err);
    assert_true(f->n_msgs < sizeof(f->msgs) / sizeof(f->msgs[0]));
    f->msgs[f->n_msgs++] = m;
    assert_int_equal(config_resources_add_xds(list, m, origin, list->n, "7"), 0);
    return m;
}

static ProtobufCMessage *add_cluster(fixture_t *f, const char *yaml)
{
    return add(f, &f->res.clusters, "ads.clusters", CLUSTER_DESC, yaml);
}

static ProtobufCMessage *add_listener(fixture_t *f, const char *yaml)
{
    return add(f, &f->res.listeners, "ads.listeners", LISTENER_DESC, yaml);
}

static ProtobufCMessage *add_routes(fixture_t *f, const char *yaml)
{
    return add(f, &f->res.route_configs, "ads.route_configs", ROUTES_DESC, yaml);
}

static ProtobufCMessage *add_assignment(fixture_t *f, const char *yaml)
{
    return add(f, &f->res.endpoints, "ads.endpoints", ASSIGNMENT_DESC, yaml);
}

static ProtobufCMessage *add_secret(fixture_t *f, const char *yaml)
{
    return add(f, &f->res.secrets, "ads.secrets", SECRET_DESC, yaml);
}

static int build(fixture_t *f)
{
    void *b = f->bootstrap;
    f->bootstrap = NULL; /* taken, whatever happens */
    return snapshot_build_resources(&f->res, b, &test_snap_opts, f->stats, 2, &f->snap, f->err,
                                    sizeof(f->err));
}

static void build_ok(fixture_t *f)
{
    if (build(f) != 0)
        fail_msg("%s", f->err);
}

static void expect_error(fixture_t *f, const char *want)
{
    int rc = build(f);
    if (rc == 0 || strstr(f->err, want) == NULL)
        fail_msg("want an error containing '%s', got rc=%d err='%s'", want, rc, f->err);
}

static void release(fixture_t *f)
{
    snapshot_unref(f->snap);
    config_resources_free(&f->res);
    for (size_t i = 0; i < f->n_msgs; i++)
        protobuf_c_message_free_unpacked(f->msgs[i], NULL);
    if (f->bootstrap)
        protobuf_c_message_free_unpacked(f->bootstrap, NULL);
    stats_store_free(f->stats);
}

/* ---- EDS ------------------------------------------------------------------------------------ */

#define EDS_CLUSTER(name, service)                                                                 \
    "name: " name "\n"                                                                             \
    "type: EDS\n"                                                                                  \
    "eds_cluster_config: {eds_config: {ads: {}}, service_name: '" service "'}\n"

#define ENDPOINT(ip)                                                                               \
    "  - endpoint: {address: {socket_address: {address: " ip ", port_value: 9080}}}\n"
#define HEALTH(h) "    health_status: " h "\n"
#define LOCALITY(zone, priority)                                                                   \
    "- locality: {zone: " zone "}\n  priority: " priority "\n  lb_endpoints:\n"

/* Two localities at two priorities; endpoints of every health status. */
static const char *const reviews_assignment =
    "cluster_name: reviews\n"
    "endpoints:\n" LOCALITY("a", "0") ENDPOINT("10.0.0.1") HEALTH("HEALTHY")
        ENDPOINT("10.0.0.2") "    load_balancing_weight: 3\n" ENDPOINT("10.0.0.3")
            HEALTH("UNHEALTHY") ENDPOINT("10.0.0.4") HEALTH("DEGRADED") LOCALITY("b", "1")
                ENDPOINT("10.0.0.5") ENDPOINT("10.0.0.6") HEALTH("DRAINING") ENDPOINT("10.0.0.7")
                    HEALTH("TIMEOUT");

static void test_eds_cluster_takes_healthy_endpoints_and_weights_from_its_assignment(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "node: {id: sidecar}\n");
    add_cluster(&f, EDS_CLUSTER("reviews", ""));
    add_assignment(&f, reviews_assignment);
    build_ok(&f);
    const snap_cluster_t *c = snapshot_find_cluster(f.snap, "reviews");
    assert_int_equal(c->kind, CLUSTER_EDS);
    assert_string_equal(c->eds_service, "reviews");
    assert_false(c->awaiting_assignment);
    /* HEALTHY and UNKNOWN only, in every locality and priority, as a STATIC cluster reads them. */
    assert_int_equal(c->n_endpoints, 3);
    assert_string_equal(c->endpoints[0].label, "10.0.0.1:9080");
    assert_int_equal(c->endpoints[0].weight, 1);
    assert_string_equal(c->endpoints[1].label, "10.0.0.2:9080");
    assert_int_equal(c->endpoints[1].weight, 3);
    assert_string_equal(c->endpoints[2].label, "10.0.0.5:9080");
    release(&f);
}

static void test_static_cluster_reads_health_status_as_eds_does(void **state)
{
    (void)state;
    fixture_t f;
    char yaml[2048];
    snprintf(yaml, sizeof(yaml), "name: reviews\nload_assignment:\n  %s",
             "cluster_name: reviews\n  endpoints:\n  - lb_endpoints:\n"
             "    - endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 1}}}\n"
             "      health_status: DEGRADED\n"
             "    - endpoint: {address: {socket_address: {address: 10.0.0.2, port_value: 1}}}\n");
    begin(&f, "node: {id: sidecar}\n");
    add_cluster(&f, yaml);
    build_ok(&f);
    const snap_cluster_t *c = snapshot_find_cluster(f.snap, "reviews");
    assert_int_equal(c->n_endpoints, 1);
    assert_string_equal(c->endpoints[0].label, "10.0.0.2:1");
    release(&f);
}

static void test_eds_cluster_finds_its_assignment_by_service_name(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "node: {id: sidecar}\n");
    add_cluster(&f, EDS_CLUSTER("outbound|9080||reviews", "reviews.default.svc"));
    add_assignment(&f, "cluster_name: outbound|9080||reviews\n"
                       "endpoints:\n" LOCALITY("a", "0") ENDPOINT("10.9.9.9"));
    add_assignment(&f, "cluster_name: reviews.default.svc\n"
                       "endpoints:\n" LOCALITY("a", "0") ENDPOINT("10.1.1.1"));
    build_ok(&f);
    const snap_cluster_t *c = snapshot_find_cluster(f.snap, "outbound|9080||reviews");
    assert_string_equal(c->eds_service, "reviews.default.svc");
    assert_int_equal(c->n_endpoints, 1);
    assert_string_equal(c->endpoints[0].label, "10.1.1.1:9080");
    release(&f);
}

static void test_eds_cluster_without_its_assignment_has_no_endpoints_and_awaits_it(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "node: {id: sidecar}\n");
    add_cluster(&f, "name: ratings\ntype: EDS\n"); /* no eds_cluster_config: ADS, its own name */
    build_ok(&f);
    const snap_cluster_t *c = snapshot_find_cluster(f.snap, "ratings");
    assert_int_equal(c->n_endpoints, 0);
    assert_true(c->awaiting_assignment);
    snap_refs_t refs;
    assert_int_equal(snapshot_references(f.snap, &refs), 1);
    assert_int_equal(refs.endpoints.n, 1);
    assert_string_equal(refs.endpoints.v[0].name, "ratings");
    assert_true(refs.endpoints.v[0].missing);
    snapshot_refs_free(&refs);
    release(&f);
}

static void test_eds_assignment_given_twice_names_both(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "node: {id: sidecar}\n");
    add_cluster(&f, EDS_CLUSTER("reviews", ""));
    add_assignment(&f, "cluster_name: reviews\n");
    add_assignment(&f, "cluster_name: ratings\n");
    add_assignment(&f, "cluster_name: reviews\n");
    expect_error(&f, "load assignment 'reviews': given twice, ads.endpoints[0] and "
                     "ads.endpoints[2]");
    release(&f);
}

static void test_eds_endpoint_errors_name_the_assignment(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "node: {id: sidecar}\n");
    add_cluster(&f, EDS_CLUSTER("reviews", ""));
    add_assignment(&f, "cluster_name: reviews\nendpoints:\n" LOCALITY("a", "0")
                           ENDPOINT("reviews.svc"));
    expect_error(&f, "cluster 'reviews': load assignment 'reviews' (ads.endpoints[0]): endpoint "
                     "0.0: address: 'reviews.svc' is not an IP address");
    release(&f);
}

static void test_eds_cluster_refuses_an_inline_load_assignment(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "node: {id: sidecar}\n");
    add_cluster(&f, "name: reviews\ntype: EDS\nload_assignment: {cluster_name: reviews}\n");
    expect_error(&f, "cluster 'reviews': an EDS cluster takes its endpoints over EDS, not from "
                     "load_assignment");
    release(&f);
}

static void test_validation_covers_the_xds_lists(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "node: {id: sidecar}\n");
    Envoy__Config__Endpoint__V3__ClusterLoadAssignment *la =
        (Envoy__Config__Endpoint__V3__ClusterLoadAssignment *)add_assignment(
            &f, "cluster_name: reviews\nendpoints:\n" LOCALITY("a", "0")
                    ENDPOINT("10.0.0.1") "    load_balancing_weight: 1\n");
    la->endpoints[0]->lb_endpoints[0]->load_balancing_weight->value = 0; /* as off the wire */
    expect_error(&f, "ads.endpoints[0].endpoints[0].lb_endpoints[0].load_balancing_weight");
    release(&f);
}

/* ---- RDS ------------------------------------------------------------------------------------ */

/* A listener whose HTTP connection manager takes route configuration `name` over RDS. */
static void add_rds_listener(fixture_t *f, const char *listener, int port, const char *rds)
{
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "name: %s\n"
             "address: {socket_address: {address: 127.0.0.1, port_value: %d}}\n"
             "filter_chains:\n"
             "- filters:\n"
             "  - name: envoy.filters.network.http_connection_manager\n"
             "    typed_config:\n"
             "      '@type': type.googleapis.com/envoy.extensions.filters.network."
             "http_connection_manager.v3.HttpConnectionManager\n"
             "      stat_prefix: %s\n"
             "      rds: %s\n"
             "      http_filters:\n"
             "      - name: envoy.filters.http.router\n"
             "        typed_config:\n"
             "          '@type': type.googleapis.com/envoy.extensions.filters.http.router.v3."
             "Router\n",
             listener, port, listener, rds);
    add_listener(f, yaml);
}

static const route_table_t *routes_of(const snapshot_t *snap, size_t listener)
{
    const hcm_config_t *cfg = snap->listeners[listener].chains[0].filters[0].config;
    return cfg->routes;
}

static const char *const routes_8080 = "name: '8080'\n"
                                       "virtual_hosts:\n"
                                       "- name: reviews\n"
                                       "  domains: [reviews, 'reviews:8080']\n"
                                       "  routes:\n"
                                       "  - match: {prefix: /v2}\n"
                                       "    route: {cluster: ghost}\n"
                                       "  - match: {prefix: /}\n"
                                       "    route: {cluster: reviews}\n";

static void test_rds_takes_the_route_configuration_of_that_name(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "node: {id: sidecar}\n");
    add_cluster(&f, EDS_CLUSTER("reviews", ""));
    add_rds_listener(&f, "http", 8080, "{config_source: {ads: {}}, route_config_name: '8080'}");
    add_routes(&f, "name: '9090'\n");
    add_routes(&f, routes_8080);
    build_ok(&f);
    const route_table_t *t = routes_of(f.snap, 0);
    assert_string_equal(t->name, "8080");
    const route_vhost_t *v = NULL;
    const route_entry_t *r = route_match(t,
                                         &(route_request_t){.authority = "reviews",
                                                            .authority_len = 7,
                                                            .path = "/ratings",
                                                            .path_len = 8,
                                                            .headers = NULL},
                                         &v);
    assert_non_null(r);
    assert_string_equal(v->name, "reviews");
    assert_ptr_equal(r->clusters[0].cluster, snapshot_find_cluster(f.snap, "reviews"));
    /* validate_clusters defaults to false over RDS, as in Envoy: the route waits for its
     * cluster and answers 503 until then. */
    r = route_match(t,
                    &(route_request_t){.authority = "reviews",
                                       .authority_len = 7,
                                       .path = "/v2/x",
                                       .path_len = 5,
                                       .headers = NULL},
                    &v);
    assert_non_null(r);
    assert_string_equal(r->clusters[0].name, "ghost");
    assert_null(r->clusters[0].cluster);
    snap_refs_t refs;
    assert_int_equal(snapshot_references(f.snap, &refs), 1); /* the assignment of reviews */
    assert_int_equal(refs.route_configs.n, 1);
    assert_string_equal(refs.route_configs.v[0].name, "8080");
    assert_false(refs.route_configs.v[0].missing);
    snapshot_refs_free(&refs);
    release(&f);
}

static void test_rds_route_configuration_missing_answers_404_with_no_route(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "node: {id: sidecar}\n");
    add_rds_listener(&f, "http", 8080, "{config_source: {ads: {}}, route_config_name: '8080'}");
    build_ok(&f);
    const route_table_t *t = routes_of(f.snap, 0);
    assert_string_equal(t->name, "8080");
    assert_int_equal(t->n_vhosts, 0);
    /* No virtual host matches, which the connection manager answers 404 with flag NR. */
    const route_vhost_t *v = (const route_vhost_t *)1;
    assert_null(route_match(t,
                            &(route_request_t){.authority = "reviews",
                                               .authority_len = 7,
                                               .path = "/",
                                               .path_len = 1,
                                               .headers = NULL},
                            &v));
    assert_null(v);
    snap_refs_t refs;
    assert_int_equal(snapshot_references(f.snap, &refs), 1);
    assert_string_equal(refs.route_configs.v[0].name, "8080");
    assert_true(refs.route_configs.v[0].missing);
    snapshot_refs_free(&refs);
    release(&f);
}

static void test_rds_from_another_source_than_ads_is_refused(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "node: {id: sidecar}\n");
    add_rds_listener(&f, "http", 8080,
                     "{config_source: {path_config_source: {path: /etc/rds.yaml}}, "
                     "route_config_name: '8080'}");
    expect_error(&f, "listener 'http': filter chain 0: filter "
                     "'envoy.filters.network.http_connection_manager': rds: config_source: "
                     "path_config_source is not supported");
    release(&f);
}

static void test_rds_route_configuration_errors_name_it(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "node: {id: sidecar}\n");
    add_rds_listener(&f, "http", 8080, "{config_source: {ads: {}}, route_config_name: '8080'}");
    add_routes(&f, "name: '8080'\nvirtual_hosts:\n- name: a\n  domains: ['*']\n"
                   "- name: b\n  domains: ['*']\n");
    expect_error(&f, "rds: route configuration '8080' (ads.route_configs[0]): virtual_host 'b': "
                     "only one virtual host may have the '*' domain");
    release(&f);
}

static void test_route_configuration_given_twice_names_both(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "node: {id: sidecar}\n");
    add_routes(&f, "name: '8080'\n");
    add_routes(&f, "name: '8080'\n");
    expect_error(&f, "route configuration '8080': given twice, ads.route_configs[0] and "
                     "ads.route_configs[1]");
    release(&f);
}

/* ---- SDS ------------------------------------------------------------------------------------ */

#define SDS(name) "{name: " name ", sds_config: {ads: {}}}"

#define CERT_SECRET(name, cert, key)                                                               \
    "name: " name "\n"                                                                             \
    "tls_certificate:\n"                                                                           \
    "  certificate_chain: {filename: " CERTS cert "}\n"                                            \
    "  private_key: {filename: " CERTS key "}\n"

#define CA_SECRET(name, ca)                                                                        \
    "name: " name "\n"                                                                             \
    "validation_context:\n"                                                                        \
    "  trusted_ca: {filename: " CERTS ca "}\n"

/* A cluster whose UpstreamTlsContext has `common` as its common_tls_context (indented by 8). */
static void add_tls_cluster(fixture_t *f, const char *name, const char *common)
{
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "name: %s\n"
             "transport_socket:\n"
             "  name: envoy.transport_sockets.tls\n"
             "  typed_config:\n"
             "    '@type': type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
             "UpstreamTlsContext\n"
             "    common_tls_context:\n%s",
             name, common);
    add_cluster(f, yaml);
}

/* A listener with one chain terminating TLS: its DownstreamTlsContext's common_tls_context is
 * `common` (indented by 8), and it requires a client certificate. */
static void add_tls_listener(fixture_t *f, const char *common)
{
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "name: inbound\n"
             "address: {socket_address: {address: 127.0.0.1, port_value: 15006}}\n"
             "filter_chains:\n"
             "- transport_socket:\n"
             "    name: envoy.transport_sockets.tls\n"
             "    typed_config:\n"
             "      '@type': type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
             "DownstreamTlsContext\n"
             "      require_client_certificate: true\n"
             "      common_tls_context:\n%s"
             "  filters:\n"
             "  - name: envoy.filters.network.tcp_proxy\n"
             "    typed_config:\n"
             "      '@type': type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3."
             "TcpProxy\n"
             "      stat_prefix: app\n"
             "      cluster: app\n",
             common);
    add_listener(f, yaml);
}

static const char *const sds_both = "        tls_certificate_sds_secret_configs: [" SDS(
    "default") "]\n"
               "        validation_context_sds_secret_config: " SDS("ROOTCA") "\n";

static void test_sds_secrets_give_certificate_and_trust_bundle(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "node: {id: sidecar}\n");
    add_tls_cluster(&f, "app", sds_both);
    add_tls_listener(&f, sds_both);
    add_secret(&f, CERT_SECRET("default", "server.pem", "server.key"));
    add_secret(&f, CA_SECRET("ROOTCA", "root-a.pem"));
    build_ok(&f);
    const tls_context_config_t *up = snapshot_find_cluster(f.snap, "app")->tls;
    const tls_context_config_t *down = f.snap->listeners[0].chains[0].tls;
    for (int i = 0; i < 2; i++) {
        const tls_context_config_t *t = i ? down : up;
        assert_false(t->awaiting_secret);
        assert_non_null(t->engine); /* certificate, key and trust bundle checked by the engine */
        assert_string_equal(t->cert_chain.filename, CERTS "server.pem");
        assert_string_equal(t->private_key.filename, CERTS "server.key");
        assert_string_equal(t->trusted_ca.filename, CERTS "root-a.pem");
    }
    assert_true(down->require_client_certificate);
    snap_refs_t refs;
    assert_int_equal(snapshot_references(f.snap, &refs), 0);
    assert_int_equal(refs.secrets.n, 2); /* each named twice, listed once, sorted */
    assert_string_equal(refs.secrets.v[0].name, "ROOTCA");
    assert_string_equal(refs.secrets.v[1].name, "default");
    snapshot_refs_free(&refs);
    release(&f);
}

static void test_sds_combined_validation_context_merges_the_secret_into_the_default(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "node: {id: sidecar}\n");
    add_tls_cluster(&f, "app",
                    "        combined_validation_context:\n"
                    "          default_validation_context:\n"
                    "            match_typed_subject_alt_names:\n"
                    "            - {san_type: URI, matcher: {exact: "
                    "'spiffe://cluster.local/ns/default/sa/server'}}\n"
                    "          validation_context_sds_secret_config: " SDS("ROOTCA") "\n");
    add_tls_cluster(&f, "bare",
                    "        combined_validation_context:\n"
                    "          validation_context_sds_secret_config: " SDS("ROOTCA") "\n");
    /* The secret brings the trust bundle and one more SAN matcher; lists are joined. */
    add_secret(&f, CA_SECRET("ROOTCA", "root-a.pem") "  match_typed_subject_alt_names:\n"
                                                     "  - {san_type: DNS, matcher: {prefix: "
                                                     "server.}}\n");
    build_ok(&f);
    const tls_context_config_t *t = snapshot_find_cluster(f.snap, "app")->tls;
    assert_non_null(t->engine);
    assert_string_equal(t->trusted_ca.filename, CERTS "root-a.pem");
    assert_int_equal(t->n_san_matchers, 2);
    assert_int_equal(t->san_matchers[0].type, TLS_CONFIG_SAN_URI);
    assert_string_equal(t->san_matchers[0].value, "spiffe://cluster.local/ns/default/sa/server");
    assert_int_equal(t->san_matchers[1].type, TLS_CONFIG_SAN_DNS);
    assert_string_equal(t->san_matchers[1].value, "server.");
    /* Without a default, the secret's context alone. */
    t = snapshot_find_cluster(f.snap, "bare")->tls;
    assert_non_null(t->engine);
    assert_int_equal(t->n_san_matchers, 1);
    release(&f);
}

static void test_sds_secret_missing_leaves_the_context_without_engine(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "node: {id: sidecar}\n");
    add_tls_cluster(&f, "app", sds_both);
    add_tls_listener(&f, sds_both);
    add_secret(&f, CERT_SECRET("default", "client.pem", "client.key"));
    build_ok(&f);
    const tls_context_config_t *up = snapshot_find_cluster(f.snap, "app")->tls;
    const tls_context_config_t *down = f.snap->listeners[0].chains[0].tls;
    /* Not usable until ROOTCA arrives: no engine, so connections fail (upstream_connect.c,
     * listener.c), as on Envoy's context whose secrets are not ready. */
    for (int i = 0; i < 2; i++) {
        const tls_context_config_t *t = i ? down : up;
        assert_non_null(t);
        assert_true(t->awaiting_secret);
        assert_null(t->engine);
        assert_null(t->engine_no_alpn);
    }
    snap_refs_t refs;
    assert_int_equal(snapshot_references(f.snap, &refs), 1);
    assert_string_equal(refs.secrets.v[0].name, "ROOTCA");
    assert_true(refs.secrets.v[0].missing);
    assert_string_equal(refs.secrets.v[1].name, "default");
    assert_false(refs.secrets.v[1].missing);
    snapshot_refs_free(&refs);
    release(&f);
}

static void test_sds_from_another_source_than_ads_is_refused(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "node: {id: sidecar}\n");
    add_tls_cluster(&f, "app",
                    "        validation_context_sds_secret_config:\n"
                    "          name: ROOTCA\n"
                    "          sds_config: {api_config_source: {api_type: GRPC}}\n");
    expect_error(&f, "cluster 'app': transport_socket: "
                     "common_tls_context.validation_context_sds_secret_config: sds_config: "
                     "api_config_source is not supported (only ads");
    release(&f);
}

static void test_sds_secret_of_another_type_is_refused(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "node: {id: sidecar}\n");
    add_tls_cluster(&f, "app", sds_both);
    add_secret(&f, CERT_SECRET("default", "client.pem", "client.key"));
    add_secret(&f, CERT_SECRET("ROOTCA", "client.pem", "client.key"));
    expect_error(&f, "common_tls_context.validation_context_sds_secret_config: secret 'ROOTCA' "
                     "(ads.secrets[1]): holds tls_certificate where validation_context is wanted");
    release(&f);
}

static void test_sds_secret_errors_name_the_secret(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "node: {id: sidecar}\n");
    add_tls_cluster(&f, "app", sds_both);
    add_secret(&f, CERT_SECRET("default", "client.pem", "missing.key"));
    add_secret(&f, CA_SECRET("ROOTCA", "root-a.pem"));
    expect_error(&f, "cluster 'app': transport_socket: "
                     "common_tls_context.tls_certificate_sds_secret_configs[0]: secret 'default' "
                     "(ads.secrets[0]): tls_certificate.private_key: cannot read "
                     "'" CERTS "missing.key'");
    release(&f);
}

/* The check an xDS client runs on each arriving resource: a secret with a bad PEM is refused on
 * its own, though the listener that names it still waits for its other secret (and so would
 * make no engine to find the bad PEM with); a good one passes. */
static void test_check_refuses_a_bad_secret_while_its_context_waits_for_another(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "node: {id: sidecar}\n");
    build_ok(&f);
    const char *bad_cert = "name: default\n"
                           "tls_certificate:\n"
                           "  certificate_chain: {inline_string: \"-----BEGIN CERTIFICATE-----\\n"
                           "bm90IGEgY2VydA==\\n-----END CERTIFICATE-----\\n\"}\n"
                           "  private_key: {filename: " CERTS "server.key}\n";
    const char *bad_ca = "name: ROOTCA\n"
                         "validation_context: {trusted_ca: {inline_string: \"no PEM here\"}}\n";
    const char *good = CERT_SECRET("default", "server.pem", "server.key");
    const char *secrets[] = {bad_cert, bad_ca, good};
    const char *want[] = {"ads.secrets[0]: cert_chain (inline PEM)",
                          "ads.secrets[0]: trust_bundle (inline PEM)", NULL};
    for (size_t i = 0; i < 3; i++) {
        fixture_t d;
        begin(&d, "node: {id: sidecar}\n");
        add_tls_listener(&d, sds_both);
        add_secret(&d, secrets[i]);
        char err[1024] = "";
        int rc = snapshot_check_dynamic(f.snap, &d.res, d.stats, err, sizeof(err));
        if (want[i] == NULL)
            assert_int_equal(rc, 0);
        else if (rc == 0 || strstr(err, want[i]) == NULL)
            fail_msg("secret %zu: want an error containing '%s', got rc=%d err='%s'", i, want[i],
                     rc, err);
        release(&d);
    }
    release(&f);
}

/* A bootstrap whose ADS cluster xds has an UpstreamTlsContext with `common` as its
 * common_tls_context (indented by 10) and expects the control plane's SPIFFE ID. */
static void begin_ads_tls(fixture_t *f, const char *common)
{
    char yaml[4096];
    snprintf(yaml, sizeof(yaml),
             "node: {id: sidecar}\n"
             "dynamic_resources:\n"
             "  ads_config:\n"
             "    api_type: GRPC\n"
             "    transport_api_version: V3\n"
             "    grpc_services: [{envoy_grpc: {cluster_name: xds}}]\n"
             "static_resources:\n"
             "  clusters:\n"
             "  - name: xds\n"
             "    typed_extension_protocol_options:\n"
             "      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n"
             "        '@type': type.googleapis.com/envoy.extensions.upstreams.http.v3."
             "HttpProtocolOptions\n"
             "        explicit_http_config: {http2_protocol_options: {}}\n"
             "    load_assignment: {cluster_name: xds, endpoints: [{lb_endpoints: [{endpoint: "
             "{address: {socket_address: {address: 127.0.0.1, port_value: 15012}}}}]}]}\n"
             "    transport_socket:\n"
             "      name: envoy.transport_sockets.tls\n"
             "      typed_config:\n"
             "        '@type': type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
             "UpstreamTlsContext\n"
             "        sni: cp.remora-system.svc\n"
             "        common_tls_context:\n%s",
             common);
    begin(f, yaml);
}

#define ADS_VALIDATION                                                                             \
    "          validation_context:\n"                                                              \
    "            trusted_ca: {filename: " CERTS "root-a.pem}\n"                                    \
    "            match_typed_subject_alt_names: [{san_type: URI, matcher: {exact: "                \
    "'spiffe://cluster.local/ns/remora-system/sa/cp'}}]\n"

/* What the gRPC client verifies its control plane with: the ADS cluster's CA, SAN matchers
 * and SNI; and what it needs: ALPN h2, and secrets it can have before the stream is up. */
static void test_ads_cluster_tls_gives_the_control_plane_identity(void **state)
{
    (void)state;
    fixture_t f;
    begin_ads_tls(&f, "          alpn_protocols: [h2]\n" ADS_VALIDATION);
    build_ok(&f);
    const tls_context_config_t *t = snapshot_find_cluster(f.snap, "xds")->tls;
    assert_non_null(t->engine);
    assert_string_equal(t->sni, "cp.remora-system.svc");
    assert_int_equal(t->n_peer_ids, 1);
    assert_string_equal(t->peer_ids[0].value, "spiffe://cluster.local/ns/remora-system/sa/cp");
    release(&f);
}

static void test_ads_cluster_tls_without_h2_is_refused(void **state)
{
    (void)state;
    fixture_t f;
    begin_ads_tls(&f, "          alpn_protocols: [http/1.1]\n" ADS_VALIDATION);
    expect_error(&f, "cluster 'xds': transport_socket: common_tls_context.alpn_protocols must "
                     "offer \"h2\"");
    release(&f);
}

static void test_ads_cluster_tls_with_sds_secrets_is_refused(void **state)
{
    (void)state;
    fixture_t f;
    begin_ads_tls(&f, "          alpn_protocols: [h2]\n"
                      "          validation_context_sds_secret_config: " SDS("ROOTCA") "\n");
    expect_error(&f, "cluster 'xds': transport_socket: the cluster of dynamic_resources."
                     "ads_config cannot take its secrets over SDS");
    release(&f);
}

static void test_secret_given_twice_names_both(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "node: {id: sidecar}\n");
    add_secret(&f, CA_SECRET("ROOTCA", "root-a.pem"));
    add_secret(&f, CA_SECRET("ROOTCA", "root-b.pem"));
    expect_error(&f, "secret 'ROOTCA': given twice, ads.secrets[0] and ads.secrets[1]");
    release(&f);
}

/* ---- references, /config_dump, rebuilds ------------------------------------------------------ */

static void test_references_list_each_name_once_sorted_with_what_is_missing(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "node: {id: sidecar}\n");
    add_cluster(&f, EDS_CLUSTER("reviews-v1", "reviews"));
    add_cluster(&f, EDS_CLUSTER("reviews-v2", "reviews"));
    add_cluster(&f, EDS_CLUSTER("details", ""));
    add_tls_cluster(&f, "app", sds_both);
    add_rds_listener(&f, "a", 8080, "{config_source: {ads: {}}, route_config_name: '9080'}");
    add_rds_listener(&f, "b", 8081, "{config_source: {ads: {}}, route_config_name: '8080'}");
    add_rds_listener(&f, "c", 8082, "{config_source: {ads: {}}, route_config_name: '9080'}");
    add_assignment(&f, "cluster_name: details\n");
    add_routes(&f, "name: '9080'\n");
    add_secret(&f, CERT_SECRET("default", "client.pem", "client.key"));
    build_ok(&f);
    snap_refs_t refs;
    assert_int_equal(snapshot_references(f.snap, &refs), 3); /* reviews, 8080, ROOTCA */
    assert_int_equal(refs.endpoints.n, 2);
    assert_string_equal(refs.endpoints.v[0].name, "details");
    assert_false(refs.endpoints.v[0].missing);
    assert_string_equal(refs.endpoints.v[1].name, "reviews");
    assert_true(refs.endpoints.v[1].missing);
    assert_int_equal(refs.route_configs.n, 2);
    assert_string_equal(refs.route_configs.v[0].name, "8080");
    assert_true(refs.route_configs.v[0].missing);
    assert_string_equal(refs.route_configs.v[1].name, "9080");
    assert_false(refs.route_configs.v[1].missing);
    assert_int_equal(refs.secrets.n, 2);
    snapshot_refs_free(&refs);
    assert_int_equal(refs.secrets.n, 0);
    release(&f);
}

static json_t *dump_of(const snapshot_t *snap)
{
    char *s = snapshot_config_dump(snap);
    assert_non_null(s);
    json_error_t je;
    json_t *root = json_loads(s, 0, &je);
    free(s);
    assert_non_null(root);
    return root;
}

/* The config of the dump whose @type ends in `type`, or NULL. */
static json_t *dump_config(json_t *root, const char *type)
{
    json_t *configs = json_object_get(root, "configs"), *c;
    size_t i;
    json_array_foreach(configs, i, c)
    {
        const char *t = json_string_value(json_object_get(c, "@type"));
        if (t && strlen(t) > strlen(type) && strcmp(t + strlen(t) - strlen(type), type) == 0)
            return c;
    }
    return NULL;
}

static void test_config_dump_shows_xds_resources_in_envoy_dynamic_shapes(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "node: {id: sidecar}\nstatic_resources:\n  clusters:\n  - name: local\n");
    add_cluster(&f, EDS_CLUSTER("reviews", ""));
    add_rds_listener(&f, "http", 8080, "{config_source: {ads: {}}, route_config_name: '8080'}");
    add_routes(&f, routes_8080);
    add_assignment(&f, reviews_assignment);
    add_secret(&f, CERT_SECRET("default", "client.pem", "client.key"));
    build_ok(&f);
    json_t *root = dump_of(f.snap);
    assert_int_equal(json_array_size(json_object_get(root, "configs")), 6);
    json_t *cs = dump_config(root, ".ClustersConfigDump");
    assert_int_equal(json_array_size(json_object_get(cs, "static_clusters")), 1);
    json_t *dc = json_array_get(json_object_get(cs, "dynamic_active_clusters"), 0);
    assert_string_equal(json_string_value(json_object_get(dc, "version_info")), "7");
    json_t *c = json_object_get(dc, "cluster");
    assert_string_equal(json_string_value(json_object_get(c, "@type")),
                        "type.googleapis.com/envoy.config.cluster.v3.Cluster");
    assert_string_equal(json_string_value(json_object_get(c, "name")), "reviews");
    json_t *dl = json_array_get(
        json_object_get(dump_config(root, ".ListenersConfigDump"), "dynamic_listeners"), 0);
    assert_string_equal(json_string_value(json_object_get(dl, "name")), "http");
    json_t *active = json_object_get(dl, "active_state");
    assert_string_equal(json_string_value(json_object_get(active, "version_info")), "7");
    assert_non_null(json_object_get(active, "listener"));
    json_t *dr = json_array_get(
        json_object_get(dump_config(root, ".RoutesConfigDump"), "dynamic_route_configs"), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(dr, "route_config"), "name")), "8080");
    json_t *de = json_array_get(
        json_object_get(dump_config(root, ".EndpointsConfigDump"), "dynamic_endpoint_configs"), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(de, "endpoint_config"), "cluster_name")),
        "reviews");
    json_t *ds = json_array_get(
        json_object_get(dump_config(root, ".SecretsConfigDump"), "dynamic_active_secrets"), 0);
    assert_string_equal(json_string_value(json_object_get(ds, "name")), "default");
    json_t *key = json_object_get(
        json_object_get(json_object_get(json_object_get(ds, "secret"), "tls_certificate"),
                        "private_key"),
        "filename");
    assert_string_equal(json_string_value(key), "[redacted]");
    json_decref(root);
    release(&f);
}

static void test_config_dump_of_a_static_config_has_no_dynamic_parts(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "node: {id: sidecar}\nstatic_resources:\n  clusters:\n  - name: local\n");
    build_ok(&f);
    assert_null(f.snap->dynamic);
    json_t *root = dump_of(f.snap);
    assert_int_equal(json_array_size(json_object_get(root, "configs")), 3);
    json_t *cs = dump_config(root, ".ClustersConfigDump");
    assert_int_equal(json_object_size(cs), 2); /* @type and static_clusters */
    assert_int_equal(json_object_size(dump_config(root, ".ListenersConfigDump")), 2);
    json_decref(root);
    release(&f);
}

static void test_rebuild_builds_again_from_the_xds_resources_kept(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f, "node: {id: sidecar}\n");
    add_cluster(&f, EDS_CLUSTER("reviews", ""));
    add_tls_cluster(&f, "app", sds_both);
    add_assignment(&f, reviews_assignment);
    add_secret(&f, CERT_SECRET("default", "client.pem", "client.key"));
    build_ok(&f);
    /* The xDS client's messages may change or go once the snapshot is built. */
    config_resources_free(&f.res);
    for (size_t i = 0; i < f.n_msgs; i++)
        protobuf_c_message_free_unpacked(f.msgs[i], NULL);
    f.n_msgs = 0;
    snapshot_t *next = NULL;
    if (snapshot_rebuild(f.snap, NULL, f.stats, &next, f.err, sizeof(f.err)) != 0)
        fail_msg("%s", f.err);
    const snap_cluster_t *c = snapshot_find_cluster(next, "reviews");
    assert_int_equal(c->n_endpoints, 3);
    assert_true(snapshot_find_cluster(next, "app")->tls->awaiting_secret);
    snap_refs_t refs;
    assert_int_equal(snapshot_references(next, &refs), 1); /* ROOTCA, still */
    snapshot_refs_free(&refs);
    json_t *root = dump_of(next);
    assert_int_equal(json_array_size(json_object_get(root, "configs")), 5);
    json_decref(root);
    snapshot_unref(next);
    release(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eds_cluster_takes_healthy_endpoints_and_weights_from_its_assignment),
        cmocka_unit_test(test_static_cluster_reads_health_status_as_eds_does),
        cmocka_unit_test(test_eds_cluster_finds_its_assignment_by_service_name),
        cmocka_unit_test(test_eds_cluster_without_its_assignment_has_no_endpoints_and_awaits_it),
        cmocka_unit_test(test_eds_assignment_given_twice_names_both),
        cmocka_unit_test(test_eds_endpoint_errors_name_the_assignment),
        cmocka_unit_test(test_eds_cluster_refuses_an_inline_load_assignment),
        cmocka_unit_test(test_validation_covers_the_xds_lists),
        cmocka_unit_test(test_rds_takes_the_route_configuration_of_that_name),
        cmocka_unit_test(test_rds_route_configuration_missing_answers_404_with_no_route),
        cmocka_unit_test(test_rds_from_another_source_than_ads_is_refused),
        cmocka_unit_test(test_rds_route_configuration_errors_name_it),
        cmocka_unit_test(test_route_configuration_given_twice_names_both),
        cmocka_unit_test(test_sds_secrets_give_certificate_and_trust_bundle),
        cmocka_unit_test(test_sds_combined_validation_context_merges_the_secret_into_the_default),
        cmocka_unit_test(test_sds_secret_missing_leaves_the_context_without_engine),
        cmocka_unit_test(test_sds_from_another_source_than_ads_is_refused),
        cmocka_unit_test(test_sds_secret_of_another_type_is_refused),
        cmocka_unit_test(test_sds_secret_errors_name_the_secret),
        cmocka_unit_test(test_check_refuses_a_bad_secret_while_its_context_waits_for_another),
        cmocka_unit_test(test_ads_cluster_tls_gives_the_control_plane_identity),
        cmocka_unit_test(test_ads_cluster_tls_without_h2_is_refused),
        cmocka_unit_test(test_ads_cluster_tls_with_sds_secrets_is_refused),
        cmocka_unit_test(test_secret_given_twice_names_both),
        cmocka_unit_test(test_references_list_each_name_once_sorted_with_what_is_missing),
        cmocka_unit_test(test_config_dump_shows_xds_resources_in_envoy_dynamic_shapes),
        cmocka_unit_test(test_config_dump_of_a_static_config_has_no_dynamic_parts),
        cmocka_unit_test(test_rebuild_builds_again_from_the_xds_resources_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
