/* The xDS client's stats under Envoy's names, driven by a real ADS state machine fed responses
 * as a management server packs them: the version text readouts and gauges follow what is
 * accepted and stay on a NACK; endpoints count under the clusters that take them, route
 * configurations under the connection manager that names them; /stats merges the text readouts
 * among the counters (quoted) and JSON shows them as strings; initial_fetch_timeout is read from
 * the bootstrap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/admin/admin_readouts.h"
#include "proxy/server/xds_stats.h"
#include "xds/ads/ads.h"
#include "xds/snapshot/snapshot_ads.h"

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"

typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager hcm_t;

/* ---- fixture: a store, the stats, an ADS client subscribed to every type -------------------- */

typedef struct fixture {
    stats_store_t *store;
    xds_stats_t *stats;
    ads_t *ads;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    f->store = stats_store_new(1);
    assert_non_null(f->store);
    assert_int_equal(xds_stats_new(f->store, stats_slots(f->store, 0), &f->stats), 0);
    ads_opts_t o = {.mode = ADS_SOTW};
    f->ads = ads_new(NULL, &o);
    assert_non_null(f->ads);
    const char *r1 = "r1", *web = "web";
    assert_true(ads_subscribe(f->ads, ADS_TYPE_CLUSTER, NULL, 0) >= 0);
    assert_true(ads_subscribe(f->ads, ADS_TYPE_LISTENER, NULL, 0) >= 0);
    assert_true(ads_subscribe(f->ads, ADS_TYPE_ROUTE, &r1, 1) >= 0);
    assert_true(ads_subscribe(f->ads, ADS_TYPE_ENDPOINT, &web, 1) >= 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    ads_free(f->ads);
    xds_stats_free(f->stats);
    stats_store_free(f->store);
    free(f);
    return 0;
}

/* The value of stat `name`, or -1 when it is not defined. */
static int64_t value(const fixture_t *f, const char *name)
{
    stats_entry_t *list;
    int n = stats_list(f->store, &list);
    assert_true(n >= 0);
    int64_t v = -1;
    for (int i = 0; i < n; i++)
        if (strcmp(list[i].name, name) == 0)
            v = list[i].value;
    stats_list_free(list);
    return v;
}

typedef struct readouts {
    char text[512];
} readouts_t;

static void collect(void *arg, const char *name, const char *value)
{
    readouts_t *r = arg;
    size_t n = strlen(r->text);
    snprintf(r->text + n, sizeof(r->text) - n, "%s=%s;", name, value);
}

static const char *readouts(const fixture_t *f, readouts_t *r)
{
    r->text[0] = '\0';
    xds_stats_text_readouts(f->stats, collect, r);
    return r->text;
}

/* ---- responses ------------------------------------------------------------------------------ */

static Google__Protobuf__Any *pack(const char *type_url, const ProtobufCMessage *m)
{
    Google__Protobuf__Any *a = calloc(1, sizeof(*a));
    google__protobuf__any__init(a);
    a->type_url = strdup(type_url);
    a->value.len = protobuf_c_message_get_packed_size(m);
    a->value.data = malloc(a->value.len + 1);
    protobuf_c_message_pack(m, a->value.data);
    return a;
}

static void any_free(Google__Protobuf__Any *a)
{
    free(a->type_url);
    free(a->value.data);
    free(a);
}

static Google__Protobuf__Any *cluster(const char *name, int64_t seconds)
{
    Envoy__Config__Cluster__V3__Cluster c = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
    Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
    c.name = (char *)name;
    d.seconds = seconds; /* negative: rejected by the field rules */
    c.connect_timeout = &d;
    return pack(ADS_TYPE_CLUSTER, &c.base);
}

static Google__Protobuf__Any *endpoints(const char *name, uint32_t weight)
{
    Envoy__Config__Endpoint__V3__ClusterLoadAssignment c =
        ENVOY__CONFIG__ENDPOINT__V3__CLUSTER_LOAD_ASSIGNMENT__INIT;
    Envoy__Config__Endpoint__V3__LocalityLbEndpoints loc =
        ENVOY__CONFIG__ENDPOINT__V3__LOCALITY_LB_ENDPOINTS__INIT;
    Envoy__Config__Endpoint__V3__LbEndpoint ep = ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__INIT;
    Google__Protobuf__UInt32Value w = GOOGLE__PROTOBUF__UINT32_VALUE__INIT;
    Envoy__Config__Endpoint__V3__LocalityLbEndpoints *locs[] = {&loc};
    Envoy__Config__Endpoint__V3__LbEndpoint *eps[] = {&ep};
    w.value = weight; /* 0: rejected */
    ep.load_balancing_weight = &w;
    loc.n_lb_endpoints = 1;
    loc.lb_endpoints = eps;
    c.cluster_name = (char *)name;
    c.n_endpoints = 1;
    c.endpoints = locs;
    return pack(ADS_TYPE_ENDPOINT, &c.base);
}

static Google__Protobuf__Any *route(const char *name)
{
    Envoy__Config__Route__V3__RouteConfiguration r =
        ENVOY__CONFIG__ROUTE__V3__ROUTE_CONFIGURATION__INIT;
    r.name = (char *)name;
    return pack(ADS_TYPE_ROUTE, &r.base);
}

/* A listener whose connection manager (stat_prefix `prefix`) takes route configuration `rds`. */
static Google__Protobuf__Any *listener(const char *name, const char *prefix, const char *rds)
{
    hcm_t h =
        ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__INIT;
    Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__Rds r =
        ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__RDS__INIT;
    r.route_config_name = (char *)rds;
    h.stat_prefix = (char *)prefix;
    h.route_specifier_case =
        ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS;
    h.rds = &r;
    Google__Protobuf__Any *hany =
        pack("type.googleapis.com/"
             "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
             &h.base);
    Envoy__Config__Listener__V3__Filter flt = ENVOY__CONFIG__LISTENER__V3__FILTER__INIT;
    flt.name = "envoy.filters.network.http_connection_manager";
    flt.config_type_case = ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG;
    flt.typed_config = hany;
    Envoy__Config__Listener__V3__Filter *flts[] = {&flt};
    Envoy__Config__Listener__V3__FilterChain chain =
        ENVOY__CONFIG__LISTENER__V3__FILTER_CHAIN__INIT;
    chain.n_filters = 1;
    chain.filters = flts;
    Envoy__Config__Listener__V3__FilterChain *chains[] = {&chain};
    Envoy__Config__Listener__V3__Listener l = ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT;
    l.name = (char *)name;
    l.n_filter_chains = 1;
    l.filter_chains = chains;
    Google__Protobuf__Any *a = pack(ADS_TYPE_LISTENER, &l.base);
    any_free(hany);
    return a;
}

/* Feeds a DiscoveryResponse of type with version and the resources given (NULL-terminated,
 * freed) to the client, then counts it with running as the running config; returns the
 * verdict. */
static ads_verdict_t respond_in(fixture_t *f, const snapshot_t *running, const char *type,
                                const char *version, va_list ap)
{
    Google__Protobuf__Any *res[8];
    size_t n = 0;
    for (Google__Protobuf__Any *a; (a = va_arg(ap, Google__Protobuf__Any *)) != NULL;)
        res[n++] = a;
    Envoy__Service__Discovery__V3__DiscoveryResponse m =
        ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_RESPONSE__INIT;
    m.version_info = (char *)version;
    m.type_url = (char *)type;
    m.nonce = (char *)version;
    m.n_resources = n;
    m.resources = res;
    size_t len = protobuf_c_message_get_packed_size(&m.base);
    uint8_t *buf = malloc(len + 1);
    protobuf_c_message_pack(&m.base, buf);
    ads_result_t r;
    char err[512];
    assert_int_equal(ads_on_response(f->ads, buf, len, 1000, &r, err, sizeof(err)), 0);
    free(buf);
    for (size_t i = 0; i < n; i++)
        any_free(res[i]);
    xds_stats_response(f->stats, f->ads, &r, running, NULL);
    ads_verdict_t v = r.verdict;
    ads_result_free(&r);
    return v;
}

static ads_verdict_t respond(fixture_t *f, const char *type, const char *version, ...)
{
    va_list ap;
    va_start(ap, version);
    ads_verdict_t v = respond_in(f, NULL, type, version, ap);
    va_end(ap);
    return v;
}

static ads_verdict_t respond_running(fixture_t *f, const snapshot_t *running, const char *type,
                                     const char *version, ...)
{
    va_list ap;
    va_start(ap, version);
    ads_verdict_t v = respond_in(f, running, type, version, ap);
    va_end(ap);
    return v;
}

/* ---- the stats ------------------------------------------------------------------------------ */

static void test_version_text_is_the_version_accepted_and_stays_on_a_nack(void **state)
{
    fixture_t *f = *state;
    readouts_t r;
    assert_string_equal(readouts(f, &r), "cluster_manager.cds.version_text=;"
                                         "listener_manager.lds.version_text=;");
    assert_int_equal(respond(f, ADS_TYPE_CLUSTER, "v1", cluster("web", 1), NULL), ADS_ACKED);
    assert_string_equal(readouts(f, &r), "cluster_manager.cds.version_text=v1;"
                                         "listener_manager.lds.version_text=;");
    int64_t v1 = value(f, "cluster_manager.cds.version");
    assert_true(v1 > 0);
    assert_int_equal(respond(f, ADS_TYPE_CLUSTER, "v2", cluster("bad", -1), NULL), ADS_NACKED);
    assert_string_equal(readouts(f, &r), "cluster_manager.cds.version_text=v1;"
                                         "listener_manager.lds.version_text=;");
    assert_int_equal(value(f, "cluster_manager.cds.version"), v1);
    assert_int_equal(value(f, "cluster_manager.cds.update_attempt"), 2);
    assert_int_equal(value(f, "cluster_manager.cds.update_success"), 1);
    assert_int_equal(value(f, "cluster_manager.cds.update_rejected"), 1);
}

static void test_control_plane_rate_limit_stats_are_zero(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(value(f, "control_plane.rate_limit_enforced"), 0);
    assert_int_equal(value(f, "control_plane.pending_requests"), 0);
    xds_stats_connected(f->stats, true);
    assert_int_equal(value(f, "control_plane.connected_state"), 1);
}

static void test_endpoints_count_under_their_cluster(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(respond(f, ADS_TYPE_ENDPOINT, "e1", endpoints("web", 1), NULL), ADS_ACKED);
    assert_int_equal(value(f, "cluster.web.update_attempt"), 1);
    assert_int_equal(value(f, "cluster.web.update_success"), 1);
    int64_t v = value(f, "cluster.web.version");
    assert_true(v > 0);
    /* The same endpoints again change nothing: no resource stat moves. */
    assert_int_equal(respond(f, ADS_TYPE_ENDPOINT, "e1", endpoints("web", 1), NULL), ADS_ACKED);
    assert_int_equal(value(f, "cluster.web.update_success"), 1);
    assert_int_equal(respond(f, ADS_TYPE_ENDPOINT, "e2", endpoints("web", 0), NULL), ADS_NACKED);
    assert_int_equal(value(f, "cluster.web.update_attempt"), 2);
    assert_int_equal(value(f, "cluster.web.update_rejected"), 1);
    assert_int_equal(value(f, "cluster.web.version"), v);
    assert_int_equal(value(f, "xds.eds.update_attempt"), 3);
}

static void test_endpoints_count_under_every_cluster_that_takes_them(void **state)
{
    fixture_t *f = *state;
    const char *svc = "svc";
    assert_true(ads_subscribe(f->ads, ADS_TYPE_ENDPOINT, &svc, 1) >= 0);
    snap_cluster_t c[3] = {{.name = "a", .stat_name = "alpha", .eds_service = "svc"},
                           {.name = "b", .stat_name = "b"},
                           {.name = "c", .stat_name = "gamma", .eds_service = "svc"}};
    snapshot_t running = {.clusters = c, .n_clusters = 3};
    assert_int_equal(
        respond_running(f, &running, ADS_TYPE_ENDPOINT, "e1", endpoints("svc", 1), NULL),
        ADS_ACKED);
    assert_int_equal(value(f, "cluster.alpha.update_success"), 1);
    assert_int_equal(value(f, "cluster.gamma.update_success"), 1);
    assert_int_equal(value(f, "cluster.svc.update_success"), -1);
    assert_int_equal(value(f, "cluster.b.update_success"), -1);
}

/* A config whose EDS clusters all take their own name's endpoints finds the one cluster by
 * name, and counts under its stat name. */
static void test_endpoints_of_own_name_clusters_count_under_the_cluster_found_by_name(void **state)
{
    fixture_t *f = *state;
    const char *svc = "web";
    assert_true(ads_subscribe(f->ads, ADS_TYPE_ENDPOINT, &svc, 1) >= 0);
    snap_cluster_t c[2] = {
        {.name = "api", .stat_name = "api", .eds_service = "api", .eds_own_name = true},
        {.name = "web", .stat_name = "w", .eds_service = "web", .eds_own_name = true}};
    snapshot_t running = {.clusters = c, .n_clusters = 2, .eds_own_names = true};
    assert_int_equal(
        respond_running(f, &running, ADS_TYPE_ENDPOINT, "e1", endpoints("web", 1), NULL),
        ADS_ACKED);
    assert_int_equal(value(f, "cluster.w.update_success"), 1);
    assert_int_equal(value(f, "cluster.web.update_success"), -1);
    assert_int_equal(value(f, "cluster.api.update_success"), -1);
}

static void test_route_configuration_counts_under_its_connection_manager(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(respond(f, ADS_TYPE_LISTENER, "l1", listener("in", "ingress", "r1"), NULL),
                     ADS_ACKED);
    assert_int_equal(respond(f, ADS_TYPE_ROUTE, "r1v1", route("r1"), NULL), ADS_ACKED);
    assert_int_equal(value(f, "http.ingress.rds.r1.update_attempt"), 1);
    assert_int_equal(value(f, "http.ingress.rds.r1.update_success"), 1);
    assert_int_equal(value(f, "http.ingress.rds.r1.config_reload"), 1);
    assert_true(value(f, "http.ingress.rds.r1.version") > 0);
    readouts_t r;
    assert_string_equal(readouts(f, &r), "cluster_manager.cds.version_text=;"
                                         "listener_manager.lds.version_text=l1;");
}

static void test_sds_and_fetch_timeouts_count_by_type(void **state)
{
    fixture_t *f = *state;
    xds_stats_fetch_timeout(f->stats, ADS_TYPE_ENDPOINT);
    xds_stats_stream_failed(f->stats, f->ads);
    assert_int_equal(value(f, "xds.eds.init_fetch_timeout"), 1);
    assert_int_equal(value(f, "cluster_manager.cds.update_failure"), 1);
    assert_int_equal(value(f, "xds.sds.update_failure"), 0); /* not subscribed */
}

/* ---- /stats with text readouts -------------------------------------------------------------- */

static void host_readouts(void *ctx, void (*fn)(void *arg, const char *name, const char *value),
                          void *arg)
{
    (void)ctx;
    fn(arg, "a.version_text", "say \"hi\"");
    fn(arg, "m.version_text", "v3");
}

static const host_ops_t readout_ops = {.text_readouts = host_readouts};

static void test_text_stats_put_readouts_among_counters_quoted(void **state)
{
    (void)state;
    stats_store_t *st = stats_store_new(1);
    assert_true(stats_define(st, STAT_COUNTER, "b", NULL, NULL, "x") >= 0);
    assert_true(stats_define(st, STAT_GAUGE, "z", NULL, NULL, "y") >= 0);
    assert_true(stats_define_histogram(st, "h", NULL, NULL, "t") >= 0);
    host_t host = {.ops = &readout_ops};
    stats_entry_t *list;
    int n = stats_list(st, &list);
    char *text = admin_stats_text(&host, list, n, NULL);
    assert_string_equal(text, "a.version_text: \"say \\\"hi\\\"\"\nb.x: 0\n"
                              "m.version_text: \"v3\"\nz.y: 0\nh.t: No recorded values\n");
    free(text);
    regex_t re;
    assert_int_equal(regcomp(&re, "^m", REG_EXTENDED | REG_NOSUB), 0);
    text = admin_stats_text(&host, list, 0, &re);
    assert_string_equal(text, "m.version_text: \"v3\"\n");
    free(text);
    regfree(&re);
    stats_list_free(list);
    stats_store_free(st);
}

static void test_json_stats_show_readouts_as_strings(void **state)
{
    (void)state;
    stats_store_t *st = stats_store_new(1);
    assert_true(stats_define(st, STAT_COUNTER, "b", NULL, NULL, "x") >= 0);
    host_t host = {.ops = &readout_ops};
    stats_entry_t *list;
    int n = stats_list(st, &list);
    char *text = admin_stats_json(&host, list, n, NULL);
    assert_string_equal(text,
                        "{\"stats\":[{\"name\":\"a.version_text\",\"value\":\"say \\\"hi\\\"\"},"
                        "{\"name\":\"b.x\",\"value\":0},"
                        "{\"name\":\"m.version_text\",\"value\":\"v3\"}]}");
    free(text);
    stats_list_free(list);
    stats_store_free(st);
}

/* ---- initial_fetch_timeout ------------------------------------------------------------------ */

static void test_initial_fetch_timeout_is_read_per_config_source(void **state)
{
    (void)state;
    Envoy__Config__Core__V3__GrpcService__EnvoyGrpc eg =
        ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__ENVOY_GRPC__INIT;
    eg.cluster_name = "xds";
    Envoy__Config__Core__V3__GrpcService g = ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__INIT;
    g.target_specifier_case = ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__TARGET_SPECIFIER_ENVOY_GRPC;
    g.envoy_grpc = &eg;
    Envoy__Config__Core__V3__GrpcService *gs[] = {&g};
    Envoy__Config__Core__V3__ApiConfigSource api = ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__INIT;
    api.api_type = ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__GRPC;
    api.n_grpc_services = 1;
    api.grpc_services = gs;
    Envoy__Config__Core__V3__AggregatedConfigSource agg =
        ENVOY__CONFIG__CORE__V3__AGGREGATED_CONFIG_SOURCE__INIT;
    Envoy__Config__Core__V3__ConfigSource lds = ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__INIT,
                                          cds = ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__INIT;
    lds.config_source_specifier_case = cds.config_source_specifier_case =
        ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS;
    lds.ads = cds.ads = &agg;
    Google__Protobuf__Duration two = GOOGLE__PROTOBUF__DURATION__INIT,
                               none = GOOGLE__PROTOBUF__DURATION__INIT;
    two.seconds = 2;
    two.nanos = 500000000;
    Envoy__Config__Bootstrap__V3__Bootstrap__DynamicResources d =
        ENVOY__CONFIG__BOOTSTRAP__V3__BOOTSTRAP__DYNAMIC_RESOURCES__INIT;
    d.lds_config = &lds;
    d.cds_config = &cds;
    d.ads_config = &api;
    snap_ads_t ads;
    char err[256];
    /* Unset: Envoy's 15 s. */
    assert_int_equal(snapshot_ads_parse(&d, &ads, err, sizeof(err)), 0);
    assert_int_equal(ads.lds_fetch_ms, 15000);
    assert_int_equal(ads.cds_fetch_ms, 15000);
    snapshot_ads_free(&ads);
    /* Given: its own per source; 0 is kept (wait without end). */
    lds.initial_fetch_timeout = &two;
    cds.initial_fetch_timeout = &none;
    assert_int_equal(snapshot_ads_parse(&d, &ads, err, sizeof(err)), 0);
    assert_int_equal(ads.lds_fetch_ms, 2500);
    assert_int_equal(ads.cds_fetch_ms, 0);
    snapshot_ads_free(&ads);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_version_text_is_the_version_accepted_and_stays_on_a_nack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_plane_rate_limit_stats_are_zero, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_endpoints_count_under_their_cluster, setup, teardown),
        cmocka_unit_test_setup_teardown(test_endpoints_count_under_every_cluster_that_takes_them,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_endpoints_of_own_name_clusters_count_under_the_cluster_found_by_name, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_route_configuration_counts_under_its_connection_manager, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sds_and_fetch_timeouts_count_by_type, setup, teardown),
        cmocka_unit_test(test_text_stats_put_readouts_among_counters_quoted),
        cmocka_unit_test(test_json_stats_show_readouts_as_strings),
        cmocka_unit_test(test_initial_fetch_timeout_is_read_per_config_source),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
