/* Specification of the generic YAML config loader: Envoy-shaped bootstraps decode into the
 * protobuf-c messages, and every user mistake is an error naming source, line and field path. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "xds/config/config.h"

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/core/v3/base.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb-c.h"
#include "google/protobuf/duration.pb-c.h"

#define SIDECAR "test/fuzz/corpus/config/envoy_sidecar.yaml"

typedef Envoy__Config__Bootstrap__V3__Bootstrap bootstrap_t;

static char err[1024];

/* Loads text as a Bootstrap named bootstrap.yaml; NULL on error with err set. */
static bootstrap_t *load(const char *text)
{
    ProtobufCMessage *msg = (ProtobufCMessage *)0x1;
    int rc = config_yaml_load(text, strlen(text), "bootstrap.yaml",
                              &envoy__config__bootstrap__v3__bootstrap__descriptor, &msg, err,
                              sizeof(err));
    if (rc < 0) {
        assert_null(msg);
        return NULL;
    }
    assert_non_null(msg);
    return (bootstrap_t *)msg;
}

static bootstrap_t *load_sidecar(void)
{
    ProtobufCMessage *msg = NULL;
    int rc = config_yaml_load_file(SIDECAR, &envoy__config__bootstrap__v3__bootstrap__descriptor,
                                   &msg, err, sizeof(err));
    if (rc != 0)
        fail_msg("%s", err);
    return (bootstrap_t *)msg;
}

static void expect_error(const char *text, const char *want)
{
    bootstrap_t *b = load(text);
    if (b) {
        protobuf_c_message_free_unpacked(&b->base, NULL);
        fail_msg("loaded, but expected error: %s", want);
    }
    assert_string_equal(err, want);
}

static void expect_error_prefix(const char *text, const char *want)
{
    bootstrap_t *b = load(text);
    if (b) {
        protobuf_c_message_free_unpacked(&b->base, NULL);
        fail_msg("loaded, but expected error: %s", want);
    }
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("error '%s' does not start with '%s'", err, want);
}

static void free_msg(void *msg)
{
    protobuf_c_message_free_unpacked(msg, NULL);
}

/* ---- the example bootstrap ---------------------------------------------------------------- */

static void test_config_yaml_loads_sidecar_listeners_and_ports(void **state)
{
    (void)state;
    bootstrap_t *b = load_sidecar();
    assert_string_equal(b->admin->address->socket_address->address, "127.0.0.1");
    assert_int_equal(b->admin->address->socket_address->port_value, 15000);
    assert_int_equal(b->static_resources->n_listeners, 2);
    Envoy__Config__Listener__V3__Listener *out = b->static_resources->listeners[0];
    assert_string_equal(out->name, "virtualOutbound");
    assert_int_equal(out->address->socket_address->port_value, 15001);
    assert_int_equal(out->traffic_direction, ENVOY__CONFIG__CORE__V3__TRAFFIC_DIRECTION__OUTBOUND);
    assert_string_equal(out->listener_filters[0]->name, "envoy.filters.listener.original_dst");
    assert_int_equal(b->static_resources->listeners[1]->address->socket_address->port_value, 15006);
    assert_int_equal(b->static_resources->n_clusters, 3);
    free_msg(b);
}

static void test_config_yaml_decodes_enums_by_name(void **state)
{
    (void)state;
    bootstrap_t *b = load_sidecar();
    Envoy__Config__Cluster__V3__Cluster **c = b->static_resources->clusters;
    assert_int_equal(c[0]->type, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STATIC);
    assert_int_equal(c[1]->type, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__ORIGINAL_DST);
    assert_int_equal(c[1]->lb_policy,
                     ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__CLUSTER_PROVIDED);
    assert_int_equal(b->static_resources->listeners[1]->traffic_direction,
                     ENVOY__CONFIG__CORE__V3__TRAFFIC_DIRECTION__INBOUND);
    free_msg(b);
}

static void test_config_yaml_decodes_durations(void **state)
{
    (void)state;
    bootstrap_t *b = load_sidecar();
    Google__Protobuf__Duration *ct = b->static_resources->clusters[0]->connect_timeout;
    assert_int_equal(ct->seconds, 0);
    assert_int_equal(ct->nanos, 250000000);
    Google__Protobuf__Duration *lft = b->static_resources->listeners[0]->listener_filters_timeout;
    assert_int_equal(lft->seconds, 0);
    assert_int_equal(lft->nanos, 100000000);
    free_msg(b);
}

static void test_config_yaml_sets_oneof_cases(void **state)
{
    (void)state;
    bootstrap_t *b = load_sidecar();
    Envoy__Config__Core__V3__Address *a = b->static_resources->listeners[0]->address;
    assert_int_equal(a->address_case, ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS);
    assert_int_equal(a->socket_address->port_specifier_case,
                     ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE);
    Envoy__Config__Cluster__V3__Cluster *c = b->static_resources->clusters[0];
    assert_int_equal(c->cluster_discovery_type_case,
                     ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE);
    Envoy__Config__Endpoint__V3__LbEndpoint *e = c->load_assignment->endpoints[0]->lb_endpoints[1];
    assert_int_equal(e->host_identifier_case,
                     ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER_ENDPOINT);
    assert_string_equal(e->endpoint->address->socket_address->address, "198.18.0.12");
    assert_int_equal(e->load_balancing_weight->value, 2);
    free_msg(b);
}

static void test_config_yaml_reads_wrappers_as_plain_values(void **state)
{
    (void)state;
    bootstrap_t *b = load_sidecar();
    Envoy__Config__Listener__V3__Listener *l = b->static_resources->listeners[0];
    assert_non_null(l->use_original_dst);
    assert_true(l->use_original_dst->value);
    Envoy__Config__Listener__V3__FilterChainMatch *m = l->filter_chains[0]->filter_chain_match;
    assert_int_equal(m->destination_port->value, 80);
    assert_string_equal(m->prefix_ranges[0]->address_prefix, "198.19.0.10");
    assert_int_equal(m->prefix_ranges[0]->prefix_len->value, 32);
    assert_null(b->static_resources->listeners[1]->use_original_dst);
    free_msg(b);
}

static void test_config_yaml_packs_typed_config_as_any(void **state)
{
    (void)state;
    bootstrap_t *b = load_sidecar();
    Envoy__Config__Listener__V3__Filter *f =
        b->static_resources->listeners[0]->filter_chains[0]->filters[0];
    assert_int_equal(f->config_type_case,
                     ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG);
    assert_string_equal(
        f->typed_config->type_url,
        "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy");
    ProtobufCMessage *m = NULL;
    assert_int_equal(config_any_unpack(
                         f->typed_config,
                         &envoy__extensions__filters__network__tcp_proxy__v3__tcp_proxy__descriptor,
                         &m, err, sizeof(err)),
                     0);
    Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy *tp = (void *)m;
    assert_int_equal(
        tp->cluster_specifier_case,
        ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_CLUSTER);
    assert_string_equal(tp->cluster, "outbound|80||svc-a.default.svc.cluster.local");
    assert_int_equal(tp->idle_timeout->seconds, 3600);
    free_msg(m);
    free_msg(b);
}

static void test_config_yaml_any_unpack_checks_type(void **state)
{
    (void)state;
    bootstrap_t *b = load_sidecar();
    Google__Protobuf__Any *any =
        b->static_resources->listeners[0]->listener_filters[0]->typed_config;
    ProtobufCMessage *m = (ProtobufCMessage *)0x1;
    assert_int_equal(config_any_unpack(any, &envoy__config__cluster__v3__cluster__descriptor, &m,
                                       err, sizeof(err)),
                     -EINVAL);
    assert_null(m);
    assert_non_null(strstr(err, "OriginalDst"));
    free_msg(b);
}

static void test_config_yaml_parses_struct_metadata(void **state)
{
    (void)state;
    bootstrap_t *b = load_sidecar();
    Google__Protobuf__Struct *md = b->node->metadata;
    assert_int_equal(md->n_fields, 4);
    assert_string_equal(md->fields[0]->key, "NAMESPACE");
    assert_string_equal(md->fields[0]->value->string_value, "default");
    assert_int_equal(md->fields[1]->value->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE);
    assert_string_equal(md->fields[2]->value->string_value, "1.20"); /* quoted stays a string */
    assert_int_equal(md->fields[3]->value->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE);
    assert_true(md->fields[3]->value->number_value == 3.0);
    free_msg(b);
}

/* Envoy's examples carry a layered_runtime: a static layer is a Struct of nested keys. */
static void test_config_yaml_loads_layered_runtime_layers(void **state)
{
    (void)state;
    bootstrap_t *b = load("layered_runtime:\n"
                          "  layers:\n"
                          "  - name: static_layer_0\n"
                          "    static_layer:\n"
                          "      envoy:\n"
                          "        resource_limits:\n"
                          "          listener:\n"
                          "            example_listener_name:\n"
                          "              connection_limit: 10000\n"
                          "  - name: admin_layer_0\n"
                          "    admin_layer: {}\n");
    assert_non_null(b);
    Envoy__Config__Bootstrap__V3__LayeredRuntime *rt = b->layered_runtime;
    assert_int_equal(rt->n_layers, 2);
    assert_string_equal(rt->layers[0]->name, "static_layer_0");
    assert_int_equal(rt->layers[0]->layer_specifier_case,
                     ENVOY__CONFIG__BOOTSTRAP__V3__RUNTIME_LAYER__LAYER_SPECIFIER_STATIC_LAYER);
    Google__Protobuf__Struct *st = rt->layers[0]->static_layer;
    assert_int_equal(st->n_fields, 1);
    assert_string_equal(st->fields[0]->key, "envoy");
    assert_int_equal(st->fields[0]->value->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE);
    assert_int_equal(rt->layers[1]->layer_specifier_case,
                     ENVOY__CONFIG__BOOTSTRAP__V3__RUNTIME_LAYER__LAYER_SPECIFIER_ADMIN_LAYER);
    free_msg(b);
}

/* ---- key spellings and value forms ---------------------------------------------------------- */

static void test_config_yaml_accepts_camel_case_keys(void **state)
{
    (void)state;
    bootstrap_t *b = load("staticResources:\n"
                          "  clusters:\n"
                          "  - name: c\n"
                          "    connectTimeout: 1.5s\n"
                          "    lbPolicy: LEAST_REQUEST\n"
                          "    perConnectionBufferLimitBytes: 32768\n");
    assert_non_null(b);
    Envoy__Config__Cluster__V3__Cluster *c = b->static_resources->clusters[0];
    assert_int_equal(c->connect_timeout->seconds, 1);
    assert_int_equal(c->connect_timeout->nanos, 500000000);
    assert_int_equal(c->lb_policy, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__LEAST_REQUEST);
    assert_int_equal(c->per_connection_buffer_limit_bytes->value, 32768);
    free_msg(b);
}

static void test_config_yaml_accepts_enum_by_number_and_ints_as_strings(void **state)
{
    (void)state;
    bootstrap_t *b = load("admin: {address: {socket_address: {protocol: 1, port_value: '8080'}}}\n"
                          "stats_flush_interval: {seconds: '5', nanos: 7}\n");
    assert_non_null(b);
    assert_int_equal(b->admin->address->socket_address->protocol,
                     ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PROTOCOL__UDP);
    assert_int_equal(b->admin->address->socket_address->port_value, 8080);
    assert_int_equal(b->stats_flush_interval->seconds, 5);
    assert_int_equal(b->stats_flush_interval->nanos, 7);
    free_msg(b);
}

static void test_config_yaml_null_leaves_field_unset(void **state)
{
    (void)state;
    bootstrap_t *b = load("node:\nadmin: {access_log_path: ~}\n");
    assert_non_null(b);
    assert_null(b->node);
    assert_string_equal(b->admin->access_log_path, "");
    free_msg(b);
}

static void test_config_yaml_empty_mapping_sets_oneof_message(void **state)
{
    (void)state;
    bootstrap_t *b = load("dynamic_resources:\n"
                          "  lds_config: {ads: {}, resource_api_version: V3}\n"
                          "  ads_config:\n"
                          "    api_type: GRPC\n"
                          "    transport_api_version: V3\n"
                          "    grpc_services: [{envoy_grpc: {cluster_name: xds-grpc}}]\n");
    assert_non_null(b);
    Envoy__Config__Bootstrap__V3__Bootstrap__DynamicResources *d = b->dynamic_resources;
    assert_int_equal(d->lds_config->config_source_specifier_case,
                     ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS);
    assert_non_null(d->lds_config->ads);
    assert_int_equal(d->ads_config->api_type,
                     ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__GRPC);
    assert_string_equal(d->ads_config->grpc_services[0]->envoy_grpc->cluster_name, "xds-grpc");
    free_msg(b);
}

static void test_config_yaml_decodes_base64_bytes(void **state)
{
    (void)state;
    const char *text = "inline_bytes: aGVsbG8=\n";
    ProtobufCMessage *m = NULL;
    assert_int_equal(config_yaml_load(text, strlen(text), "ds.yaml",
                                      &envoy__config__core__v3__data_source__descriptor, &m, err,
                                      sizeof(err)),
                     0);
    Envoy__Config__Core__V3__DataSource *ds = (void *)m;
    assert_int_equal(ds->specifier_case,
                     ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES);
    assert_int_equal(ds->inline_bytes.len, 5);
    assert_memory_equal(ds->inline_bytes.data, "hello", 5);
    free_msg(m);
}

/* ---- errors: each names source, line and field path ----------------------------------------- */

static void test_config_yaml_rejects_unknown_field_with_line(void **state)
{
    (void)state;
    expect_error("static_resources:\n"
                 "  listeners:\n"
                 "  - name: l\n"
                 "    adress: {}\n",
                 "bootstrap.yaml:4: static_resources.listeners[0].adress: unknown field "
                 "(Listener has no field 'adress')");
}

static void test_config_yaml_rejects_mapping_where_string_is_due(void **state)
{
    (void)state;
    expect_error("node:\n  id:\n    x: 1\n",
                 "bootstrap.yaml:3: node.id: expected a string, got a mapping");
}

static void test_config_yaml_rejects_string_where_int_is_due(void **state)
{
    (void)state;
    expect_error("admin:\n  address:\n    socket_address: {address: 1.2.3.4, port_value: http}\n",
                 "bootstrap.yaml:3: admin.address.socket_address.port_value: expected a uint32, "
                 "got 'http'");
}

static void test_config_yaml_rejects_out_of_range_int(void **state)
{
    (void)state;
    expect_error("stats_flush_interval: {seconds: 1, nanos: 3000000000}\n",
                 "bootstrap.yaml:1: stats_flush_interval.nanos: expected an int32, got "
                 "'3000000000'");
}

static void test_config_yaml_rejects_scalar_where_list_is_due(void **state)
{
    (void)state;
    expect_error("static_resources:\n  clusters: c1\n",
                 "bootstrap.yaml:2: static_resources.clusters: expected a sequence, got 'c1'");
}

static void test_config_yaml_rejects_oneof_conflict(void **state)
{
    (void)state;
    expect_error("admin:\n"
                 "  address:\n"
                 "    socket_address:\n"
                 "      port_value: 80\n"
                 "      named_port: http\n",
                 "bootstrap.yaml:5: admin.address.socket_address.named_port: 'port_value' is "
                 "already set and only one of them may be (oneof conflict)");
}

static void test_config_yaml_rejects_duplicate_key(void **state)
{
    (void)state;
    expect_error("node:\n  id: a\n  id: b\n",
                 "bootstrap.yaml:3: node.id: field given twice (first on line 2)");
}

static void test_config_yaml_rejects_port_above_65535(void **state)
{
    (void)state;
    expect_error("admin:\n  address:\n    socket_address:\n      port_value: 65536\n",
                 "bootstrap.yaml:4: admin.address.socket_address.port_value: 65536 is out of "
                 "range [0, 65535]");
}

static void test_config_yaml_rejects_ipv4_prefix_len_above_32(void **state)
{
    (void)state;
    expect_error("static_resources:\n"
                 "  listeners:\n"
                 "  - name: l\n"
                 "    filter_chains:\n"
                 "    - filter_chain_match:\n"
                 "        prefix_ranges: [{address_prefix: 10.0.0.0, prefix_len: 33}]\n",
                 "bootstrap.yaml:6: static_resources.listeners[0].filter_chains[0]."
                 "filter_chain_match.prefix_ranges[0].prefix_len: 33 is out of range [0, 32]");
    bootstrap_t *b = load("static_resources:\n"
                          "  listeners:\n"
                          "  - name: l\n"
                          "    filter_chains:\n"
                          "    - filter_chain_match:\n"
                          "        prefix_ranges: [{address_prefix: 'fd00::', prefix_len: 64}]\n");
    assert_non_null(b);
    free_msg(b);
}

static void test_config_yaml_rejects_bad_duration(void **state)
{
    (void)state;
    expect_error("static_resources:\n  clusters:\n  - name: c\n    connect_timeout: 250ms\n",
                 "bootstrap.yaml:4: static_resources.clusters[0].connect_timeout: invalid "
                 "Duration '250ms' (expected e.g. \"1.5s\")");
}

static void test_config_yaml_rejects_negative_duration(void **state)
{
    (void)state;
    expect_error("stats_flush_interval: -1s\n",
                 "bootstrap.yaml:1: stats_flush_interval: duration must not be negative");
}

static void test_config_yaml_rejects_duration_out_of_range_in_mapping_form(void **state)
{
    (void)state;
    expect_error("stats_flush_interval: {seconds: 1, nanos: 2000000000}\n",
                 "bootstrap.yaml:1: stats_flush_interval: duration is out of range (at most "
                 "315576000000s, nanos below 1e9)");
}

static void test_config_yaml_rejects_zero_connect_timeout(void **state)
{
    (void)state;
    expect_error("static_resources:\n  clusters:\n  - name: c\n    connect_timeout: 0s\n",
                 "bootstrap.yaml:4: static_resources.clusters[0].connect_timeout: must be greater "
                 "than 0s");
}

static void test_config_yaml_rejects_empty_cluster_name(void **state)
{
    (void)state;
    expect_error("static_resources:\n  clusters:\n  - type: STATIC\n",
                 "bootstrap.yaml:3: static_resources.clusters[0].name: must be a non-empty string");
}

static void test_config_yaml_rejects_unknown_enum_value(void **state)
{
    (void)state;
    expect_error("static_resources:\n  clusters:\n  - name: c\n    lb_policy: FASTEST\n",
                 "bootstrap.yaml:4: static_resources.clusters[0].lb_policy: unknown value "
                 "'FASTEST' for enum LbPolicy (expected one of ROUND_ROBIN, LEAST_REQUEST, "
                 "RING_HASH, RANDOM, MAGLEV, CLUSTER_PROVIDED, LOAD_BALANCING_POLICY_CONFIG)");
}

static void test_config_yaml_rejects_unknown_type_url(void **state)
{
    (void)state;
    expect_error(
        "static_resources:\n"
        "  listeners:\n"
        "  - name: l\n"
        "    listener_filters:\n"
        "    - name: f\n"
        "      typed_config:\n"
        "        \"@type\": type.googleapis.com/envoy.extensions.Nope\n",
        "bootstrap.yaml:7: static_resources.listeners[0].listener_filters[0].typed_config: "
        "unknown type 'type.googleapis.com/envoy.extensions.Nope' in @type");
}

static void test_config_yaml_rejects_any_without_type(void **state)
{
    (void)state;
    expect_error(
        "static_resources:\n"
        "  listeners:\n"
        "  - name: l\n"
        "    listener_filters:\n"
        "    - name: f\n"
        "      typed_config: {cluster: x}\n",
        "bootstrap.yaml:6: static_resources.listeners[0].listener_filters[0].typed_config: "
        "Any needs an '@type' key naming the packed type");
}

static void test_config_yaml_rejects_unknown_field_inside_any(void **state)
{
    (void)state;
    expect_error("static_resources:\n"
                 "  listeners:\n"
                 "  - name: l\n"
                 "    listener_filters:\n"
                 "    - name: f\n"
                 "      typed_config:\n"
                 "        '@type': type.googleapis.com/"
                 "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n"
                 "        clustr: x\n",
                 "bootstrap.yaml:8: static_resources.listeners[0].listener_filters[0].typed_config."
                 "clustr: unknown field (TcpProxy has no field 'clustr')");
}

/* ---- documents and hostile input ------------------------------------------------------------ */

static void test_config_yaml_rejects_empty_document(void **state)
{
    (void)state;
    expect_error("# nothing here\n",
                 "bootstrap.yaml:1: empty document (expected a Bootstrap mapping)");
}

static void test_config_yaml_rejects_multiple_documents(void **state)
{
    (void)state;
    expect_error("node: {id: a}\n---\nnode: {id: b}\n",
                 "bootstrap.yaml:3: a second YAML document (only one is allowed)");
}

static void test_config_yaml_rejects_non_mapping_top_level(void **state)
{
    (void)state;
    expect_error("- node\n", "bootstrap.yaml:1: expected a mapping for Bootstrap, got a sequence");
}

static void test_config_yaml_rejects_syntax_error_with_line(void **state)
{
    (void)state;
    expect_error_prefix("node:\n  id: a\n  cluster: [b\n", "bootstrap.yaml:4: invalid YAML: ");
}

static void test_config_yaml_rejects_invalid_utf8_with_line(void **state)
{
    (void)state;
    expect_error("node:\n  id: \"\xff\xfe\"\n",
                 "bootstrap.yaml:2: invalid YAML: invalid leading UTF-8 octet");
}

static void test_config_yaml_rejects_alias_bomb(void **state)
{
    (void)state;
    /* Ten levels of ten aliases each: 10^10 nodes if expanded. */
    char text[4096];
    size_t n = (size_t)snprintf(text, sizeof(text), "node:\n  metadata:\n    a0: &a0 [x, x, x]\n");
    for (int i = 1; i <= 10; i++) {
        n += (size_t)snprintf(text + n, sizeof(text) - n, "    a%d: &a%d [", i, i);
        for (int k = 0; k < 10; k++)
            n += (size_t)snprintf(text + n, sizeof(text) - n, "%s*a%d", k ? ", " : "", i - 1);
        n += (size_t)snprintf(text + n, sizeof(text) - n, "]\n");
    }
    bootstrap_t *b = load(text);
    assert_null(b);
    assert_non_null(strstr(err, "document expands to more than 200000 nodes"));
    assert_int_equal(strncmp(err, "bootstrap.yaml:", 15), 0);
}

static void test_config_yaml_rejects_cyclic_alias(void **state)
{
    (void)state;
    bootstrap_t *b = load("node:\n  metadata:\n    loop: &a [*a]\n");
    assert_null(b);
    assert_int_equal(strncmp(err, "bootstrap.yaml:", 15), 0);
}

static void test_config_yaml_rejects_deep_nesting_with_path(void **state)
{
    (void)state;
    char text[1024] = "node:\n  metadata:\n    x: ";
    size_t n = strlen(text);
    for (int i = 0; i < 100; i++)
        text[n++] = '[';
    for (int i = 0; i < 100; i++)
        text[n++] = ']';
    text[n++] = '\n';
    text[n] = '\0';
    bootstrap_t *b = load(text);
    assert_null(b);
    assert_non_null(strstr(err, "bootstrap.yaml:3: node.metadata.x[0][0]"));
    assert_non_null(strstr(err, ": nesting deeper than 64 levels"));
}

static void test_config_yaml_rejects_absurd_nesting_quickly(void **state)
{
    (void)state;
    size_t depth = 1000000;
    char *text = malloc(depth + 16);
    memcpy(text, "node: ", 6);
    memset(text + 6, '[', depth);
    text[6 + depth] = '\0';
    bootstrap_t *b = load(text);
    free(text);
    assert_null(b);
    assert_string_equal(err, "bootstrap.yaml:1: nesting deeper than 64 levels");
}

static void test_config_yaml_load_file_reports_missing_file(void **state)
{
    (void)state;
    ProtobufCMessage *m = NULL;
    assert_int_equal(config_yaml_load_file("/nonexistent/remora.yaml",
                                           &envoy__config__bootstrap__v3__bootstrap__descriptor, &m,
                                           err, sizeof(err)),
                     -ENOENT);
    assert_null(m);
    assert_non_null(strstr(err, "/nonexistent/remora.yaml"));
}

/* ---- determinism and wire compatibility ----------------------------------------------------- */

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(*len ? *len : 1);
    assert_int_equal(protobuf_c_message_pack(m, buf), *len);
    return buf;
}

static void test_config_yaml_round_trips_through_wire_format(void **state)
{
    (void)state;
    bootstrap_t *b = load_sidecar();
    size_t len1, len2;
    uint8_t *wire1 = pack(&b->base, &len1);
    ProtobufCMessage *back = protobuf_c_message_unpack(
        &envoy__config__bootstrap__v3__bootstrap__descriptor, NULL, len1, wire1);
    assert_non_null(back);
    uint8_t *wire2 = pack(back, &len2);
    assert_int_equal(len1, len2);
    assert_memory_equal(wire1, wire2, len1);
    free(wire1);
    free(wire2);
    free_msg(back);
    free_msg(b);
}

static void test_config_yaml_loads_same_file_identically_twice(void **state)
{
    (void)state;
    bootstrap_t *a = load_sidecar(), *b = load_sidecar();
    size_t la, lb;
    uint8_t *wa = pack(&a->base, &la), *wb = pack(&b->base, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(wa, wb, la);
    free(wa);
    free(wb);
    free_msg(a);
    free_msg(b);
}

static void test_config_yaml_type_lookup_by_url_and_name(void **state)
{
    (void)state;
    assert_ptr_equal(config_type_lookup("type.googleapis.com/envoy.config.cluster.v3.Cluster"),
                     &envoy__config__cluster__v3__cluster__descriptor);
    assert_ptr_equal(config_type_lookup("envoy.config.listener.v3.Listener"),
                     &envoy__config__listener__v3__listener__descriptor);
    assert_null(config_type_lookup("type.googleapis.com/envoy.config.cluster.v3.Clusterx"));
    assert_null(config_type_lookup(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_yaml_loads_sidecar_listeners_and_ports),
        cmocka_unit_test(test_config_yaml_decodes_enums_by_name),
        cmocka_unit_test(test_config_yaml_decodes_durations),
        cmocka_unit_test(test_config_yaml_sets_oneof_cases),
        cmocka_unit_test(test_config_yaml_reads_wrappers_as_plain_values),
        cmocka_unit_test(test_config_yaml_packs_typed_config_as_any),
        cmocka_unit_test(test_config_yaml_any_unpack_checks_type),
        cmocka_unit_test(test_config_yaml_parses_struct_metadata),
        cmocka_unit_test(test_config_yaml_loads_layered_runtime_layers),
        cmocka_unit_test(test_config_yaml_accepts_camel_case_keys),
        cmocka_unit_test(test_config_yaml_accepts_enum_by_number_and_ints_as_strings),
        cmocka_unit_test(test_config_yaml_null_leaves_field_unset),
        cmocka_unit_test(test_config_yaml_empty_mapping_sets_oneof_message),
        cmocka_unit_test(test_config_yaml_decodes_base64_bytes),
        cmocka_unit_test(test_config_yaml_rejects_unknown_field_with_line),
        cmocka_unit_test(test_config_yaml_rejects_mapping_where_string_is_due),
        cmocka_unit_test(test_config_yaml_rejects_string_where_int_is_due),
        cmocka_unit_test(test_config_yaml_rejects_out_of_range_int),
        cmocka_unit_test(test_config_yaml_rejects_scalar_where_list_is_due),
        cmocka_unit_test(test_config_yaml_rejects_oneof_conflict),
        cmocka_unit_test(test_config_yaml_rejects_duplicate_key),
        cmocka_unit_test(test_config_yaml_rejects_port_above_65535),
        cmocka_unit_test(test_config_yaml_rejects_ipv4_prefix_len_above_32),
        cmocka_unit_test(test_config_yaml_rejects_bad_duration),
        cmocka_unit_test(test_config_yaml_rejects_negative_duration),
        cmocka_unit_test(test_config_yaml_rejects_duration_out_of_range_in_mapping_form),
        cmocka_unit_test(test_config_yaml_rejects_zero_connect_timeout),
        cmocka_unit_test(test_config_yaml_rejects_empty_cluster_name),
        cmocka_unit_test(test_config_yaml_rejects_unknown_enum_value),
        cmocka_unit_test(test_config_yaml_rejects_unknown_type_url),
        cmocka_unit_test(test_config_yaml_rejects_any_without_type),
        cmocka_unit_test(test_config_yaml_rejects_unknown_field_inside_any),
        cmocka_unit_test(test_config_yaml_rejects_empty_document),
        cmocka_unit_test(test_config_yaml_rejects_multiple_documents),
        cmocka_unit_test(test_config_yaml_rejects_non_mapping_top_level),
        cmocka_unit_test(test_config_yaml_rejects_syntax_error_with_line),
        cmocka_unit_test(test_config_yaml_rejects_invalid_utf8_with_line),
        cmocka_unit_test(test_config_yaml_rejects_alias_bomb),
        cmocka_unit_test(test_config_yaml_rejects_cyclic_alias),
        cmocka_unit_test(test_config_yaml_rejects_deep_nesting_with_path),
        cmocka_unit_test(test_config_yaml_rejects_absurd_nesting_quickly),
        cmocka_unit_test(test_config_yaml_load_file_reports_missing_file),
        cmocka_unit_test(test_config_yaml_round_trips_through_wire_format),
        cmocka_unit_test(test_config_yaml_loads_same_file_identically_twice),
        cmocka_unit_test(test_config_yaml_type_lookup_by_url_and_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
