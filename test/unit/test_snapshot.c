/* Snapshot building from Envoy bootstraps: filter chain selection the Envoy way, load
 * balancing over endpoints, and clear errors for configs the data plane would not honour. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test/unit/wire.h"

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb-c.h"
#include "proxy/upstream/lb.h"
#include "xds/config/config.h"
#include "xds/snapshot/resources.h"
#include "proxy/listener/chain_match.h"
#include "xds/snapshot/snapshot.h"
#include "test/unit/snap_opts.h"

#define TCP_PROXY(cluster)                                                                         \
    "      - name: envoy.filters.network.tcp_proxy\n"                                              \
    "        typed_config:\n"                                                                      \
    "          '@type': "                                                                          \
    "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n"                 \
    "          stat_prefix: " cluster "\n"                                                         \
    "          cluster: " cluster "\n"

static const char *const base_clusters =
    "  clusters:\n"
    "  - name: a\n"
    "    connect_timeout: 0.25s\n"
    "    load_assignment:\n"
    "      cluster_name: a\n"
    "      endpoints:\n"
    "      - lb_endpoints:\n"
    "        - endpoint: {address: {socket_address: {address: 198.18.0.3, port_value: 8080}}}\n"
    "        - endpoint: {address: {socket_address: {address: 198.18.0.4, port_value: 8080}}}\n"
    "          load_balancing_weight: 3\n"
    "        - endpoint: {address: {socket_address: {address: 198.18.0.5, port_value: 8080}}}\n"
    "          health_status: UNHEALTHY\n"
    "  - name: b\n"
    "    load_assignment:\n"
    "      endpoints:\n"
    "      - lb_endpoints:\n"
    "        - endpoint: {address: {socket_address: {address: 198.18.0.6, port_value: 80}}}\n"
    "  - name: passthrough\n"
    "    type: ORIGINAL_DST\n"
    "    lb_policy: CLUSTER_PROVIDED\n";

static const char *const outbound_listener =
    "  listeners:\n"
    "  - name: outbound\n"
    "    address: {socket_address: {address: 0.0.0.0, port_value: 15001}}\n"
    "    listener_filters:\n"
    "    - name: envoy.filters.listener.original_dst\n"
    "      typed_config:\n"
    "        '@type': "
    "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst\n"
    "    filter_chains:\n"
    "    - name: port80-any\n"
    "      filter_chain_match: {destination_port: 80}\n"
    "      filters:\n" TCP_PROXY(
        "a") "    - name: port80-vip\n"
             "      filter_chain_match:\n"
             "        destination_port: 80\n"
             "        prefix_ranges: [{address_prefix: 198.19.0.10, prefix_len: 32}]\n"
             "      filters:\n" TCP_PROXY(
                 "b") "    - name: vip-range\n"
                      "      filter_chain_match:\n"
                      "        prefix_ranges: [{address_prefix: 198.19.0.0, prefix_len: 16}]\n"
                      "      filters:\n" TCP_PROXY("a") "    default_filter_chain:\n"
                                                        "      name: passthrough\n"
                                                        "      filters:\n" TCP_PROXY("passthrough");

typedef struct fixture {
    stats_store_t *stats;
    snapshot_t *snap;
    char err[1024];
} fixture_t;

static int build(fixture_t *f, const char *yaml)
{
    ProtobufCMessage *msg = NULL;
    f->stats = stats_store_new(2);
    int rc = config_yaml_load(yaml, strlen(yaml), "test.yaml",
                              &envoy__config__bootstrap__v3__bootstrap__descriptor, &msg, f->err,
                              sizeof(f->err));
    if (rc < 0)
        return rc;
    /* Linked to runtime state as the server links it, so its clusters can pick endpoints. */
    cluster_states_t *states = NULL;
    assert_int_equal(cluster_states_new(2, &states), 0);
    snap_build_opts_t opts = test_snap_opts;
    opts.cluster_runtime = &cluster_runtime;
    opts.cluster_states = states;
    rc = snapshot_build(msg, &opts, f->stats, 2, &f->snap, f->err, sizeof(f->err));
    cluster_states_unref(states);
    return rc;
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 32);
    memcpy(s, "static_resources:\n", 18);
    memcpy(s + 18, a, la);
    memcpy(s + 18 + la, b, lb + 1);
    return s;
}

static void release(fixture_t *f)
{
    snapshot_unref(f->snap);
    stats_store_free(f->stats);
}

static struct sockaddr_storage addr(const char *ip, int port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, ip, &s4->sin_addr);
    return ss;
}

static const char *match(const snapshot_t *snap, const char *ip, int port)
{
    struct sockaddr_storage ss = addr(ip, port);
    const snap_chain_t *c = chain_select_plain(&snap->listeners[0], (struct sockaddr *)&ss, NULL);
    return c ? c->name : "(none)";
}

static void test_snapshot_prefers_port_and_longest_prefix(void **state)
{
    (void)state;
    fixture_t f = {0};
    char *yaml = join(outbound_listener, base_clusters);
    assert_int_equal(build(&f, yaml), 0);
    assert_true(f.snap->listeners[0].use_original_dst);
    assert_string_equal(match(f.snap, "198.19.0.10", 80), "port80-vip");
    assert_string_equal(match(f.snap, "198.19.0.11", 80), "port80-any");
    assert_string_equal(match(f.snap, "198.19.0.11", 81), "vip-range");
    assert_string_equal(match(f.snap, "198.18.0.9", 443), "passthrough");
    free(yaml);
    release(&f);
}

static void test_snapshot_skips_unhealthy_endpoints_and_keeps_weights(void **state)
{
    (void)state;
    fixture_t f = {0};
    char *yaml = join(outbound_listener, base_clusters);
    assert_int_equal(build(&f, yaml), 0);
    const snap_cluster_t *a = snapshot_find_cluster(f.snap, "a");
    assert_non_null(a);
    assert_int_equal(a->n_endpoints, 2);
    assert_int_equal(a->connect_timeout_ms, 250);
    assert_int_equal(a->endpoints[1].weight, 3);
    assert_string_equal(a->endpoints[0].label, "198.18.0.3:8080");
    free(yaml);
    release(&f);
}

static void test_cluster_round_robin_follows_weights(void **state)
{
    (void)state;
    fixture_t f = {0};
    char *yaml = join(outbound_listener, base_clusters);
    assert_int_equal(build(&f, yaml), 0);
    const snap_cluster_t *a = snapshot_find_cluster(f.snap, "a");
    int counts[2] = {0};
    for (int i = 0; i < 400; i++) {
        struct sockaddr_storage out;
        int idx;
        assert_int_equal(cluster_pick(a, 0, NULL, &out, &idx), 0);
        counts[idx]++;
        cluster_lb_release(a, 0, idx);
    }
    assert_int_equal(counts[0], 100);
    assert_int_equal(counts[1], 300);
    free(yaml);
    release(&f);
}

static void test_cluster_original_dst_uses_the_connection_destination(void **state)
{
    (void)state;
    fixture_t f = {0};
    char *yaml = join(outbound_listener, base_clusters);
    assert_int_equal(build(&f, yaml), 0);
    const snap_cluster_t *p = snapshot_find_cluster(f.snap, "passthrough");
    struct sockaddr_storage dst = addr("198.18.0.7", 9000), out;
    int idx;
    assert_int_equal(cluster_pick(p, 1, (struct sockaddr *)&dst, &out, &idx), 0);
    assert_memory_equal(&out, &dst, sizeof(struct sockaddr_in));
    free(yaml);
    release(&f);
}

static void expect_error(const char *listeners, const char *clusters, const char *want)
{
    fixture_t f = {0};
    char *yaml = join(listeners, clusters);
    int rc = build(&f, yaml);
    if (rc == 0 || strstr(f.err, want) == NULL)
        fail_msg("want error containing '%s', got rc=%d err='%s'", want, rc, f.err);
    free(yaml);
    release(&f);
}

static void test_snapshot_rejects_duplicate_chain_match(void **state)
{
    (void)state;
    const char *l =
        "  listeners:\n"
        "  - name: l\n"
        "    address: {socket_address: {address: 127.0.0.1, port_value: 1}}\n"
        "    filter_chains:\n"
        "    - filter_chain_match: {destination_port: 80}\n"
        "      filters:\n" TCP_PROXY("a") "    - filter_chain_match: {destination_port: 80}\n"
                                          "      filters:\n" TCP_PROXY("b");
    expect_error(l, base_clusters, "listener 'l': filter chain 1: has the same filter_chain_match");
}

static void test_snapshot_rejects_unknown_network_filter(void **state)
{
    (void)state;
    const char *l = "  listeners:\n"
                    "  - name: l\n"
                    "    address: {socket_address: {address: 127.0.0.1, port_value: 1}}\n"
                    "    filter_chains:\n"
                    "    - filters:\n"
                    "      - name: envoy.filters.network.redis_proxy\n";
    expect_error(l, base_clusters, "filter 'envoy.filters.network.redis_proxy': unsupported");
}

static void test_snapshot_rejects_original_dst_cluster_with_round_robin(void **state)
{
    (void)state;
    expect_error("", "  clusters:\n  - name: p\n    type: ORIGINAL_DST\n",
                 "cluster 'p': ORIGINAL_DST clusters take lb_policy CLUSTER_PROVIDED");
}

static void test_snapshot_rejects_eds_cluster_from_another_source_than_ads(void **state)
{
    (void)state;
    expect_error("",
                 "  clusters:\n  - name: d\n    type: EDS\n    eds_cluster_config:\n"
                 "      eds_config: {path_config_source: {path: /etc/eds.yaml}}\n",
                 "cluster 'd': eds_cluster_config.eds_config: path_config_source is not supported");
}

static void test_snapshot_rejects_hostname_endpoint(void **state)
{
    (void)state;
    expect_error("",
                 "  clusters:\n  - name: h\n    load_assignment:\n      endpoints:\n"
                 "      - lb_endpoints:\n"
                 "        - endpoint: {address: {socket_address: {address: db.local, "
                 "port_value: 5432}}}\n",
                 "cluster 'h': endpoint 0.0: address: 'db.local' is not an IP address");
}

static void test_snapshot_rejects_listener_without_chains(void **state)
{
    (void)state;
    expect_error("  listeners:\n  - name: e\n"
                 "    address: {socket_address: {address: 127.0.0.1, port_value: 1}}\n",
                 "", "listener 'e': needs filter_chains or a default_filter_chain");
}

static void test_snapshot_tcp_proxy_to_missing_cluster_is_allowed(void **state)
{
    (void)state;
    fixture_t f = {0};
    const char *l = "  listeners:\n"
                    "  - name: l\n"
                    "    address: {socket_address: {address: 127.0.0.1, port_value: 1}}\n"
                    "    filter_chains:\n"
                    "    - filters:\n" TCP_PROXY("later");
    char *yaml = join(l, "");
    assert_int_equal(build(&f, yaml), 0);
    free(yaml);
    release(&f);
}

static void test_snapshot_reads_default_priority_circuit_breakers(void **state)
{
    (void)state;
    fixture_t f = {0};
    char *yaml = join("", "  clusters:\n  - name: cb\n    circuit_breakers:\n      thresholds:\n"
                          "      - {max_requests: 7, max_connections: 3}\n"
                          "      - {priority: HIGH, max_requests: 99}\n"
                          "  - name: plain\n");
    assert_int_equal(build(&f, yaml), 0);
    const snap_cluster_t *cb = snapshot_find_cluster(f.snap, "cb");
    assert_int_equal(cb->max_requests, 7);
    assert_int_equal(cb->max_connections, 3);
    const snap_cluster_t *plain = snapshot_find_cluster(f.snap, "plain");
    assert_int_equal(plain->max_requests, 1024); /* Envoy's default */
    free(yaml);
    release(&f);
}

static void test_snapshot_rejects_per_host_circuit_breakers(void **state)
{
    (void)state;
    expect_error("",
                 "  clusters:\n  - name: ph\n    circuit_breakers:\n"
                 "      per_host_thresholds: [{max_connections: 1}]\n",
                 "cluster 'ph': circuit_breakers.per_host_thresholds is not supported");
}

/* A listener on ADDR:PORT with one tcp_proxy chain; NAME_LINE is "    name: x\n" or "". */
#define LISTENER(name_line, ip, port)                                                              \
    "  - " name_line "address: {socket_address: {address: '" ip "', port_value: " port "}}\n"      \
    "    filter_chains:\n"                                                                         \
    "    - filters:\n" TCP_PROXY("a")

static void test_snapshot_names_unnamed_listeners_after_their_address(void **state)
{
    (void)state;
    fixture_t f = {0};
    char *yaml = join("  listeners:\n" LISTENER("", "127.0.0.1", "8080") LISTENER("", "::1", "8080")
                          LISTENER("name: named\n    ", "127.0.0.1", "8081"),
                      base_clusters);
    assert_int_equal(build(&f, yaml), 0);
    assert_string_equal(f.snap->listeners[0].name, "127.0.0.1_8080");
    assert_string_equal(f.snap->listeners[0].stat_name, "127.0.0.1_8080");
    assert_true(f.snap->listeners[0].name_generated);
    assert_string_equal(f.snap->listeners[1].name, "[__1]_8080");
    assert_string_equal(f.snap->listeners[2].name, "named");
    assert_false(f.snap->listeners[2].name_generated);
    char *dump = snapshot_config_dump(f.snap);
    assert_non_null(strstr(dump, "\"name\": \"127.0.0.1_8080\""));
    free(dump);
    free(yaml);
    release(&f);
}

static void test_snapshot_rejects_unnamed_listener_named_like_another(void **state)
{
    (void)state;
    expect_error("  listeners:\n" LISTENER("name: 127.0.0.1_8080\n    ", "127.0.0.1", "9000")
                     LISTENER("", "127.0.0.1", "8080"),
                 base_clusters,
                 "listener '127.0.0.1_8080': static_resources.listeners[0] and [1] get the same "
                 "name (the second has no name and is named after its address)");
}

static void test_snapshot_rejects_two_unnamed_listeners_on_one_address(void **state)
{
    (void)state;
    expect_error("  listeners:\n" LISTENER("", "127.0.0.1", "8080")
                     LISTENER("", "127.0.0.1", "8080"),
                 base_clusters,
                 "listener '127.0.0.1_8080': static_resources.listeners[0] and [1] get the same "
                 "name (each has no name and is named after its address)");
}

static void test_snapshot_rejects_duplicate_listener_names(void **state)
{
    (void)state;
    expect_error("  listeners:\n" LISTENER("name: l\n    ", "127.0.0.1", "8080")
                     LISTENER("name: l\n    ", "127.0.0.1", "8081"),
                 base_clusters, "listener 'l': defined twice");
}

/* Builds the given listeners and base_clusters with a layered_runtime of one static layer. */
static int build_with_runtime(fixture_t *f, const char *listeners, const char *static_layer)
{
    char *yaml = join(listeners, base_clusters);
    char *text = malloc(strlen(yaml) + strlen(static_layer) + 128);
    sprintf(text, "%slayered_runtime:\n  layers:\n  - name: static_layer_0\n    static_layer:\n%s",
            yaml, static_layer);
    int rc = build(f, text);
    free(text);
    free(yaml);
    return rc;
}

static void test_snapshot_reads_connection_limits_from_runtime(void **state)
{
    (void)state;
    fixture_t f = {0};
    assert_int_equal(build_with_runtime(
                         &f,
                         "  listeners:\n" LISTENER("name: in\n    ", "127.0.0.1", "8081")
                             LISTENER("", "127.0.0.1", "8080")
                                 LISTENER("name: free\n    ignore_global_conn_limit: true\n    ",
                                          "127.0.0.1", "8082"),
                         "      envoy.resource_limits.listener.in.connection_limit: 2\n"
                         "      envoy.resource_limits.listener.127.0.0.1_8080.connection_limit: 5\n"
                         "      overload: {global_downstream_max_connections: 100}\n"),
                     0);
    assert_int_equal(f.snap->listeners[0].cx_limit, 2);
    assert_int_equal(f.snap->listeners[1].cx_limit, 5);
    assert_true(f.snap->listeners[2].cx_limit == RUNTIME_NO_LIMIT);
    assert_false(f.snap->listeners[0].ignore_global_cx_limit);
    assert_true(f.snap->listeners[2].ignore_global_cx_limit);
    assert_int_equal(f.snap->global_cx_limit, 100);
    char buf[64];
    assert_int_equal(runtime_unused_keys(&f.snap->runtime, buf, sizeof(buf)), 0);
    release(&f);
}

static void test_snapshot_leaves_runtime_keys_for_unknown_listeners_unused(void **state)
{
    (void)state;
    fixture_t f = {0};
    assert_int_equal(build_with_runtime(&f, "  listeners:\n" LISTENER("", "0.0.0.0", "8080"),
                                        "      envoy:\n"
                                        "        resource_limits:\n"
                                        "          listener:\n"
                                        "            example_listener_name:\n"
                                        "              connection_limit: 10000\n"),
                     0);
    assert_true(f.snap->listeners[0].cx_limit == RUNTIME_NO_LIMIT);
    assert_true(f.snap->global_cx_limit == RUNTIME_NO_LIMIT);
    char buf[128];
    assert_int_equal(runtime_unused_keys(&f.snap->runtime, buf, sizeof(buf)), 1);
    assert_string_equal(buf,
                        "envoy.resource_limits.listener.example_listener_name.connection_limit");
    release(&f);
}

static void test_snapshot_rejects_connection_limit_that_is_not_a_number(void **state)
{
    (void)state;
    fixture_t f = {0};
    assert_int_equal(
        build_with_runtime(&f, "  listeners:\n" LISTENER("name: in\n    ", "127.0.0.1", "8081"),
                           "      envoy.resource_limits.listener.in.connection_limit: many\n"),
        -EINVAL);
    assert_string_equal(f.err, "layered_runtime: layer 'static_layer_0': key "
                               "'envoy.resource_limits.listener.in.connection_limit': 'many' is "
                               "not a number of connections (a whole number, 0 or more)");
    release(&f);
}

static void test_snapshot_rejects_disk_runtime_layer(void **state)
{
    (void)state;
    fixture_t f = {0};
    char *yaml = join("", "");
    char text[256];
    snprintf(text, sizeof(text),
             "%slayered_runtime: {layers: [{name: disk0, disk_layer: {symlink_root: /srv}}]}\n",
             yaml);
    assert_int_equal(build(&f, text), -EINVAL);
    assert_string_equal(f.err, "layered_runtime: layer 'disk0': disk_layer is not supported");
    free(yaml);
    release(&f);
}

/* ---- messages built in C, as a binary (xDS) source would give them -------------------------- */

static void test_snapshot_refuses_negative_duration_of_a_binary_bootstrap(void **state)
{
    (void)state;
    Envoy__Config__Cluster__V3__Cluster c = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
    Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
    c.name = "web";
    d.seconds = -5;
    c.connect_timeout = &d;
    Envoy__Config__Cluster__V3__Cluster *clusters[] = {&c};
    Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources sr =
        ENVOY__CONFIG__BOOTSTRAP__V3__BOOTSTRAP__STATIC_RESOURCES__INIT;
    sr.n_clusters = 1;
    sr.clusters = clusters;
    Envoy__Config__Bootstrap__V3__Bootstrap b = ENVOY__CONFIG__BOOTSTRAP__V3__BOOTSTRAP__INIT;
    b.static_resources = &sr;
    fixture_t f = {.stats = stats_store_new(2)};
    assert_int_equal(snapshot_build(over_the_wire(&b.base), &test_snap_opts, f.stats, 2, &f.snap,
                                    f.err, sizeof(f.err)),
                     -EINVAL);
    assert_null(f.snap);
    assert_string_equal(f.err, "static_resources.clusters[0].connect_timeout: duration must not "
                               "be negative");
    release(&f);
}

static void test_snapshot_refuses_negative_duration_inside_a_filter_config(void **state)
{
    (void)state;
    Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy tp =
        ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__INIT;
    Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
    tp.stat_prefix = "in";
    tp.cluster_specifier_case =
        ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_CLUSTER;
    tp.cluster = "web";
    d.seconds = -1; /* cast to milliseconds, an idle timeout of half a billion years */
    tp.idle_timeout = &d;
    uint8_t packed[128];
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
    any.value.len = protobuf_c_message_pack(&tp.base, packed);
    any.value.data = packed;
    Envoy__Config__Listener__V3__Filter flt = ENVOY__CONFIG__LISTENER__V3__FILTER__INIT;
    flt.name = "envoy.filters.network.tcp_proxy";
    flt.config_type_case = ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG;
    flt.typed_config = &any;
    Envoy__Config__Listener__V3__Filter *filters[] = {&flt};
    Envoy__Config__Listener__V3__FilterChain fc = ENVOY__CONFIG__LISTENER__V3__FILTER_CHAIN__INIT;
    fc.n_filters = 1;
    fc.filters = filters;
    Envoy__Config__Listener__V3__FilterChain *chains[] = {&fc};
    Envoy__Config__Core__V3__SocketAddress sa = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__INIT;
    sa.address = "127.0.0.1";
    sa.port_specifier_case = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE;
    sa.port_value = 8080;
    Envoy__Config__Core__V3__Address a = ENVOY__CONFIG__CORE__V3__ADDRESS__INIT;
    a.address_case = ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS;
    a.socket_address = &sa;
    Envoy__Config__Listener__V3__Listener l = ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT;
    l.name = "in";
    l.address = &a;
    l.n_filter_chains = 1;
    l.filter_chains = chains;
    Envoy__Config__Listener__V3__Listener *listeners[] = {&l};
    Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources sr =
        ENVOY__CONFIG__BOOTSTRAP__V3__BOOTSTRAP__STATIC_RESOURCES__INIT;
    sr.n_listeners = 1;
    sr.listeners = listeners;
    Envoy__Config__Bootstrap__V3__Bootstrap b = ENVOY__CONFIG__BOOTSTRAP__V3__BOOTSTRAP__INIT;
    b.static_resources = &sr;
    fixture_t f = {.stats = stats_store_new(2)};
    assert_int_equal(snapshot_build(over_the_wire(&b.base), &test_snap_opts, f.stats, 2, &f.snap,
                                    f.err, sizeof(f.err)),
                     -EINVAL);
    assert_string_equal(f.err, "static_resources.listeners[0].filter_chains[0].filters[0]."
                               "typed_config.idle_timeout: duration must not be negative");
    release(&f);
    d.seconds = 60;
    any.value.len = protobuf_c_message_pack(&tp.base, packed);
    f.stats = stats_store_new(2);
    assert_int_equal(snapshot_build(over_the_wire(&b.base), &test_snap_opts, f.stats, 2, &f.snap,
                                    f.err, sizeof(f.err)),
                     0);
    assert_string_equal(f.snap->listeners[0].name, "in");
    release(&f);
}

static void test_snapshot_builds_from_a_resource_set(void **state)
{
    (void)state;
    char *yaml = join(base_clusters, "");
    ProtobufCMessage *msg = NULL;
    char err[256];
    assert_int_equal(config_yaml_load(yaml, strlen(yaml), "test.yaml",
                                      &envoy__config__bootstrap__v3__bootstrap__descriptor, &msg,
                                      err, sizeof(err)),
                     0);
    free(yaml);
    config_resources_t res;
    assert_int_equal(config_resources_from_bootstrap(msg, &res, err, sizeof(err)), 0);
    assert_int_equal(res.clusters.n, 3);
    assert_int_equal(res.listeners.n, 0);
    assert_string_equal(res.clusters.v[2].origin, "static_resources.clusters");
    assert_int_equal(res.clusters.v[2].index, 2);
    fixture_t f = {.stats = stats_store_new(2)};
    assert_int_equal(snapshot_build_resources(&res, msg, &test_snap_opts, f.stats, 2, &f.snap,
                                              f.err, sizeof(f.err)),
                     0);
    assert_int_equal(f.snap->n_clusters, 3);
    assert_string_equal(f.snap->clusters[2].name, "passthrough");
    assert_ptr_equal(f.snap->bootstrap, msg); /* kept for /config_dump */
    config_resources_free(&res);
    release(&f);
}

static void test_snapshot_keeps_resources_no_one_names(void **state)
{
    (void)state;
    ProtobufCMessage *msg = NULL;
    char err[256];
    const char *yaml = "node: {id: a}\n";
    assert_int_equal(config_yaml_load(yaml, strlen(yaml), "test.yaml",
                                      &envoy__config__bootstrap__v3__bootstrap__descriptor, &msg,
                                      err, sizeof(err)),
                     0);
    config_resources_t res;
    assert_int_equal(config_resources_from_bootstrap(msg, &res, err, sizeof(err)), 0);
    Envoy__Config__Route__V3__RouteConfiguration rc =
        ENVOY__CONFIG__ROUTE__V3__ROUTE_CONFIGURATION__INIT;
    rc.name = "routes";
    assert_int_equal(config_resources_add(&res.route_configs, &rc.base, "rds", 0), 0);
    fixture_t f = {.stats = stats_store_new(2)};
    assert_int_equal(snapshot_build_resources(&res, msg, &test_snap_opts, f.stats, 2, &f.snap,
                                              f.err, sizeof(f.err)),
                     0);
    snap_refs_t refs;
    assert_int_equal(snapshot_references(f.snap, &refs), 0);
    assert_int_equal(refs.route_configs.n, 0); /* in the set, named by nothing: kept quietly */
    snapshot_refs_free(&refs);
    config_resources_free(&res);
    release(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_prefers_port_and_longest_prefix),
        cmocka_unit_test(test_snapshot_skips_unhealthy_endpoints_and_keeps_weights),
        cmocka_unit_test(test_cluster_round_robin_follows_weights),
        cmocka_unit_test(test_cluster_original_dst_uses_the_connection_destination),
        cmocka_unit_test(test_snapshot_rejects_duplicate_chain_match),
        cmocka_unit_test(test_snapshot_rejects_unknown_network_filter),
        cmocka_unit_test(test_snapshot_rejects_original_dst_cluster_with_round_robin),
        cmocka_unit_test(test_snapshot_rejects_eds_cluster_from_another_source_than_ads),
        cmocka_unit_test(test_snapshot_rejects_hostname_endpoint),
        cmocka_unit_test(test_snapshot_rejects_listener_without_chains),
        cmocka_unit_test(test_snapshot_tcp_proxy_to_missing_cluster_is_allowed),
        cmocka_unit_test(test_snapshot_reads_default_priority_circuit_breakers),
        cmocka_unit_test(test_snapshot_rejects_per_host_circuit_breakers),
        cmocka_unit_test(test_snapshot_names_unnamed_listeners_after_their_address),
        cmocka_unit_test(test_snapshot_rejects_unnamed_listener_named_like_another),
        cmocka_unit_test(test_snapshot_rejects_two_unnamed_listeners_on_one_address),
        cmocka_unit_test(test_snapshot_rejects_duplicate_listener_names),
        cmocka_unit_test(test_snapshot_reads_connection_limits_from_runtime),
        cmocka_unit_test(test_snapshot_leaves_runtime_keys_for_unknown_listeners_unused),
        cmocka_unit_test(test_snapshot_rejects_connection_limit_that_is_not_a_number),
        cmocka_unit_test(test_snapshot_rejects_disk_runtime_layer),
        cmocka_unit_test(test_snapshot_refuses_negative_duration_of_a_binary_bootstrap),
        cmocka_unit_test(test_snapshot_refuses_negative_duration_inside_a_filter_config),
        cmocka_unit_test(test_snapshot_builds_from_a_resource_set),
        cmocka_unit_test(test_snapshot_keeps_resources_no_one_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
