/* Specification of config_to_json: the proto3 JSON shape /config_dump prints, checked on the
 * example sidecar bootstrap and on hand-built messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "xds/config/config.h"

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "envoy/config/core/v3/base.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"

#define SIDECAR "test/fuzz/corpus/config/envoy_sidecar.yaml"

static ProtobufCMessage *boot;
static json_t *doc;

static int setup(void **state)
{
    (void)state;
    char err[512];
    if (config_yaml_load_file(SIDECAR, &envoy__config__bootstrap__v3__bootstrap__descriptor, &boot,
                              err, sizeof(err)) != 0)
        fail_msg("%s", err);
    doc = config_to_json(boot);
    return doc ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    json_decref(doc);
    protobuf_c_message_free_unpacked(boot, NULL);
    return 0;
}

/* Follows a path like "static_resources.listeners.0.name" through objects and arrays. */
static json_t *at(const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *j = doc;
    for (char *save, *tok = strtok_r(buf, ".", &save); tok && j; tok = strtok_r(NULL, ".", &save))
        j = json_is_array(j) ? json_array_get(j, strtoul(tok, NULL, 10)) : json_object_get(j, tok);
    if (j == NULL)
        fail_msg("no JSON value at %s", path);
    return j;
}

/* Loads yaml as a desc message and renders it compactly; the caller frees the string. */
static char *render_yaml(const ProtobufCMessageDescriptor *desc, const char *yaml)
{
    ProtobufCMessage *msg = NULL;
    char err[256];
    if (config_yaml_load(yaml, strlen(yaml), "test.yaml", desc, &msg, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    json_t *j = config_to_json(msg);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    protobuf_c_message_free_unpacked(msg, NULL);
    return s;
}

static void test_config_json_uses_proto_field_names(void **state)
{
    (void)state;
    assert_string_equal(json_string_value(at("static_resources.listeners.0.name")),
                        "virtualOutbound");
    assert_int_equal(json_integer_value(at("admin.address.socket_address.port_value")), 15000);
}

static void test_config_json_writes_enums_by_name(void **state)
{
    (void)state;
    assert_string_equal(json_string_value(at("static_resources.clusters.1.type")), "ORIGINAL_DST");
    assert_string_equal(json_string_value(at("static_resources.clusters.1.lb_policy")),
                        "CLUSTER_PROVIDED");
    assert_string_equal(json_string_value(at("static_resources.listeners.1.traffic_direction")),
                        "INBOUND");
}

static void test_config_json_writes_durations_as_strings(void **state)
{
    (void)state;
    assert_string_equal(json_string_value(at("static_resources.clusters.0.connect_timeout")),
                        "0.25s");
    assert_string_equal(
        json_string_value(at("static_resources.listeners.0.listener_filters_timeout")), "0.1s");
}

static void test_config_json_writes_wrappers_as_plain_values(void **state)
{
    (void)state;
    assert_true(json_is_true(at("static_resources.listeners.0.use_original_dst")));
    json_t *m = at("static_resources.listeners.0.filter_chains.0.filter_chain_match");
    assert_int_equal(json_integer_value(json_object_get(m, "destination_port")), 80);
    json_t *range = json_array_get(json_object_get(m, "prefix_ranges"), 0);
    assert_int_equal(json_integer_value(json_object_get(range, "prefix_len")), 32);
}

static void test_config_json_expands_any_with_type_first(void **state)
{
    (void)state;
    json_t *tc = at("static_resources.listeners.0.filter_chains.0.filters.0.typed_config");
    void *it = json_object_iter(tc);
    assert_string_equal(json_object_iter_key(it), "@type");
    assert_string_equal(
        json_string_value(json_object_iter_value(it)),
        "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy");
    assert_string_equal(json_string_value(json_object_get(tc, "cluster")),
                        "outbound|80||svc-a.default.svc.cluster.local");
    assert_string_equal(json_string_value(json_object_get(tc, "idle_timeout")), "3600s");
    json_t *od = at("static_resources.listeners.0.listener_filters.0.typed_config");
    assert_int_equal(json_object_size(od), 1); /* OriginalDst is empty: only "@type" */
}

static void test_config_json_omits_defaults_and_absent_messages(void **state)
{
    (void)state;
    json_t *c0 = at("static_resources.clusters.0");
    assert_null(json_object_get(c0, "lb_policy"));     /* ROUND_ROBIN is 0 */
    assert_null(json_object_get(c0, "alt_stat_name")); /* empty string */
    assert_null(json_object_get(c0, "transport_socket"));
    assert_string_equal(json_string_value(json_object_get(c0, "type")), "STATIC"); /* oneof */
    assert_null(json_object_get(doc, "dynamic_resources"));
}

static void test_config_json_writes_struct_natively(void **state)
{
    (void)state;
    assert_string_equal(json_string_value(at("node.metadata.NAMESPACE")), "default");
    assert_string_equal(json_string_value(at("node.metadata.LABELS.app")), "client");
    assert_true(json_number_value(at("node.metadata.CONFIG_REVISION")) == 3.0);
}

static void test_config_json_writes_runtime_layers_natively(void **state)
{
    (void)state;
    static const char yaml[] = "layered_runtime:\n"
                               "  layers:\n"
                               "  - name: static\n"
                               "    static_layer: {a: {b: 2}, c: on}\n"
                               "  - {name: admin, admin_layer: {}}\n";
    char *s = render_yaml(&envoy__config__bootstrap__v3__bootstrap__descriptor, yaml);
    assert_string_equal(s,
                        "{\"layered_runtime\":{\"layers\":["
                        "{\"name\":\"static\",\"static_layer\":{\"a\":{\"b\":2.0},\"c\":\"on\"}},"
                        "{\"name\":\"admin\",\"admin_layer\":{}}]}}");
    free(s);
}

static void test_config_json_unknown_any_type_keeps_base64_value(void **state)
{
    (void)state;
    uint8_t bytes[] = {0x0a, 0x01, 'x'};
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = "type.googleapis.com/example.Unknown";
    any.value.data = bytes;
    any.value.len = sizeof(bytes);
    Envoy__Config__Core__V3__TransportSocket ts = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__INIT;
    ts.name = "t";
    ts.config_type_case = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG;
    ts.typed_config = &any;
    json_t *j = config_to_json(&ts.base);
    char *s = json_dumps(j, JSON_COMPACT);
    assert_string_equal(
        s, "{\"name\":\"t\",\"typed_config\":{\"@type\":\"type.googleapis.com/example.Unknown\","
           "\"value\":\"CgF4\"}}");
    free(s);
    json_decref(j);
}

static void test_config_json_replaces_invalid_utf8(void **state)
{
    (void)state;
    Envoy__Config__Core__V3__Locality loc = ENVOY__CONFIG__CORE__V3__LOCALITY__INIT;
    loc.region = "a\xff"
                 "b";
    json_t *j = config_to_json(&loc.base);
    assert_string_equal(json_string_value(json_object_get(j, "region")), "a\xef\xbf\xbd"
                                                                         "b");
    json_decref(j);
}

/* Envoy's sensitive fields render as Envoy redacts them: strings "[redacted]", bytes the base64
 * of "[redacted]", in every DataSource form, while the rest of the message shows as usual. */
static void test_config_json_redacts_sensitive_fields(void **state)
{
    (void)state;
    static const char yaml[] = "common_tls_context:\n"
                               "  tls_certificates:\n"
                               "  - certificate_chain: {filename: /certs/chain.pem}\n"
                               "    private_key: {filename: /certs/key.pem}\n"
                               "    password: {inline_bytes: c2VjcmV0}\n"
                               "session_ticket_keys:\n"
                               "  keys: [{inline_string: ticket-key}]\n";
    char *s = render_yaml(
        &envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__descriptor, yaml);
    assert_string_equal(s,
                        "{\"common_tls_context\":{\"tls_certificates\":[{"
                        "\"certificate_chain\":{\"filename\":\"/certs/chain.pem\"},"
                        "\"private_key\":{\"filename\":\"[redacted]\"},"
                        "\"password\":{\"inline_bytes\":\"W3JlZGFjdGVkXQ==\"}}]},"
                        "\"session_ticket_keys\":{\"keys\":[{\"inline_string\":\"[redacted]\"}]}}");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_json_uses_proto_field_names),
        cmocka_unit_test(test_config_json_writes_enums_by_name),
        cmocka_unit_test(test_config_json_writes_durations_as_strings),
        cmocka_unit_test(test_config_json_writes_wrappers_as_plain_values),
        cmocka_unit_test(test_config_json_expands_any_with_type_first),
        cmocka_unit_test(test_config_json_omits_defaults_and_absent_messages),
        cmocka_unit_test(test_config_json_writes_struct_natively),
        cmocka_unit_test(test_config_json_writes_runtime_layers_natively),
        cmocka_unit_test(test_config_json_unknown_any_type_keeps_base64_value),
        cmocka_unit_test(test_config_json_replaces_invalid_utf8),
        cmocka_unit_test(test_config_json_redacts_sensitive_fields),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
