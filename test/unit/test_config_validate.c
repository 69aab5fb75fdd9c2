/* Specification of the field validation every config source goes through (config_validate):
 * messages built in C and sent through the wire format, as an xDS server's would arrive, meet
 * the rules the YAML loader enforces, with errors that name the field path. */
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

#include "xds/config/config.h"

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb-c.h"
#include "google/protobuf/duration.pb-c.h"

#define SIDECAR "test/fuzz/corpus/config/envoy_sidecar.yaml"

typedef Envoy__Config__Bootstrap__V3__Bootstrap bootstrap_t;
typedef Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources resources_t;
typedef Envoy__Config__Cluster__V3__Cluster cluster_t;

static char err[512];

/* Validates a Bootstrap holding the one cluster c, after the wire; returns the result. */
static int validate_cluster(cluster_t *c)
{
    bootstrap_t b = ENVOY__CONFIG__BOOTSTRAP__V3__BOOTSTRAP__INIT;
    resources_t sr = ENVOY__CONFIG__BOOTSTRAP__V3__BOOTSTRAP__STATIC_RESOURCES__INIT;
    cluster_t *clusters[] = {c};
    sr.n_clusters = 1;
    sr.clusters = clusters;
    b.static_resources = &sr;
    ProtobufCMessage *msg = over_the_wire(&b.base);
    err[0] = '\0';
    int rc = config_validate(msg, NULL, err, sizeof(err));
    protobuf_c_message_free_unpacked(msg, NULL);
    return rc;
}

static void test_validate_refuses_negative_duration_naming_the_field(void **state)
{
    (void)state;
    cluster_t c = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
    Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
    c.name = "web";
    d.seconds = -1;
    c.connect_timeout = &d;
    assert_int_equal(validate_cluster(&c), -EINVAL);
    assert_string_equal(err, "static_resources.clusters[0].connect_timeout: duration must not be "
                             "negative");
}

static void test_validate_refuses_negative_nanos(void **state)
{
    (void)state;
    cluster_t c = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
    Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
    c.name = "web";
    d.nanos = -5;
    c.dns_jitter = &d;
    assert_int_equal(validate_cluster(&c), -EINVAL);
    assert_string_equal(err,
                        "static_resources.clusters[0].dns_jitter: duration must not be negative");
}

static void test_validate_refuses_duration_past_its_range(void **state)
{
    (void)state;
    cluster_t c = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
    Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
    c.name = "web";
    d.seconds = INT64_MAX / 1000; /* would overflow a conversion to milliseconds */
    c.dns_refresh_rate = &d;
    assert_int_equal(validate_cluster(&c), -EINVAL);
    assert_string_equal(err, "static_resources.clusters[0].dns_refresh_rate: duration is out of "
                             "range (at most 315576000000s, nanos below 1e9)");
    d.seconds = 1;
    d.nanos = 1000000000;
    assert_int_equal(validate_cluster(&c), -EINVAL);
}

static void test_validate_refuses_zero_connect_timeout(void **state)
{
    (void)state;
    cluster_t c = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
    Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
    c.name = "web";
    c.connect_timeout = &d;
    assert_int_equal(validate_cluster(&c), -EINVAL);
    assert_string_equal(err,
                        "static_resources.clusters[0].connect_timeout: must be greater than 0s");
}

static void test_validate_refuses_cluster_without_name(void **state)
{
    (void)state;
    cluster_t c = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
    assert_int_equal(validate_cluster(&c), -EINVAL);
    assert_string_equal(err, "static_resources.clusters[0].name: must be a non-empty string");
}

static void test_validate_refuses_enum_value_no_enum_defines(void **state)
{
    (void)state;
    cluster_t c = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
    c.name = "web";
    c.lb_policy = (Envoy__Config__Cluster__V3__Cluster__LbPolicy)99;
    assert_int_equal(validate_cluster(&c), -EINVAL);
    assert_string_equal(err, "static_resources.clusters[0].lb_policy: unknown value 99 for enum "
                             "LbPolicy");
}

static void test_validate_refuses_port_over_65535(void **state)
{
    (void)state;
    bootstrap_t b = ENVOY__CONFIG__BOOTSTRAP__V3__BOOTSTRAP__INIT;
    Envoy__Config__Bootstrap__V3__Admin admin = ENVOY__CONFIG__BOOTSTRAP__V3__ADMIN__INIT;
    Envoy__Config__Core__V3__Address a = ENVOY__CONFIG__CORE__V3__ADDRESS__INIT;
    Envoy__Config__Core__V3__SocketAddress sa = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__INIT;
    sa.address = "127.0.0.1";
    sa.port_specifier_case = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE;
    sa.port_value = 70000;
    a.address_case = ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS;
    a.socket_address = &sa;
    admin.address = &a;
    b.admin = &admin;
    ProtobufCMessage *msg = over_the_wire(&b.base);
    assert_int_equal(config_validate(msg, NULL, err, sizeof(err)), -EINVAL);
    assert_string_equal(
        err, "admin.address.socket_address.port_value: 70000 is out of range [0, 65535]");
    protobuf_c_message_free_unpacked(msg, NULL);
}

static void test_validate_reads_only_the_selected_member_of_a_oneof(void **state)
{
    (void)state;
    /* named_port shares its storage with port_value: a pointer must not be read as a port. */
    Envoy__Config__Core__V3__SocketAddress sa = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__INIT;
    sa.address = "127.0.0.1";
    sa.port_specifier_case = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_NAMED_PORT;
    sa.named_port = "http";
    ProtobufCMessage *msg = over_the_wire(&sa.base);
    assert_int_equal(config_validate(msg, "address", err, sizeof(err)), 0);
    protobuf_c_message_free_unpacked(msg, NULL);
}

/* Validates tp packed into an Any of type_url, as a filter's typed_config. */
static int validate_packed(const Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy *tp,
                           const char *type_url)
{
    uint8_t packed[256];
    assert_true(protobuf_c_message_get_packed_size(&tp->base) <= sizeof(packed));
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = (char *)type_url;
    any.value.len = protobuf_c_message_pack(&tp->base, packed);
    any.value.data = packed;
    ProtobufCMessage *msg = over_the_wire(&any.base);
    err[0] = '\0';
    int rc = config_validate(msg, "filters[0].typed_config", err, sizeof(err));
    protobuf_c_message_free_unpacked(msg, NULL);
    return rc;
}

static void test_validate_looks_inside_typed_config(void **state)
{
    (void)state;
    Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy tp =
        ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__INIT;
    Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
    tp.stat_prefix = "in";
    d.seconds = -3600;
    tp.idle_timeout = &d;
    const char *url = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
    assert_int_equal(validate_packed(&tp, url), -EINVAL);
    assert_string_equal(err, "filters[0].typed_config.idle_timeout: duration must not be negative");
    d.seconds = 3600;
    assert_int_equal(validate_packed(&tp, url), 0);
}

static void test_validate_leaves_any_of_unknown_type_to_its_reader(void **state)
{
    (void)state;
    Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy tp =
        ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__INIT;
    Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
    d.seconds = -1;
    tp.idle_timeout = &d;
    assert_int_equal(validate_packed(&tp, "type.googleapis.com/example.NotRegistered"), 0);
}

static void test_validate_refuses_any_that_does_not_decode(void **state)
{
    (void)state;
    uint8_t junk[] = {0xff, 0xff, 0xff};
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
    any.value.len = sizeof(junk);
    any.value.data = junk;
    assert_int_equal(config_validate(&any.base, "typed_config", err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "typed_config: the Any's value is not a valid "
                             "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy");
}

static void test_validate_accepts_the_envoy_sidecar_config(void **state)
{
    (void)state;
    ProtobufCMessage *msg = NULL;
    if (config_yaml_load_file(SIDECAR, &envoy__config__bootstrap__v3__bootstrap__descriptor, &msg,
                              err, sizeof(err)) != 0)
        fail_msg("%s", err);
    ProtobufCMessage *copy = over_the_wire(msg);
    assert_int_equal(config_validate(copy, NULL, err, sizeof(err)), 0);
    protobuf_c_message_free_unpacked(copy, NULL);
    protobuf_c_message_free_unpacked(msg, NULL);
}

static void test_duration_ms_takes_whole_milliseconds_or_the_default(void **state)
{
    (void)state;
    Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
    d.seconds = 2;
    d.nanos = 999999;
    assert_int_equal(config_duration_ms(&d, 7), 2000);
    d.nanos = 1000000;
    assert_int_equal(config_duration_ms(&d, 7), 2001);
    assert_int_equal(config_duration_ms(NULL, 7), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_refuses_negative_duration_naming_the_field),
        cmocka_unit_test(test_validate_refuses_negative_nanos),
        cmocka_unit_test(test_validate_refuses_duration_past_its_range),
        cmocka_unit_test(test_validate_refuses_zero_connect_timeout),
        cmocka_unit_test(test_validate_refuses_cluster_without_name),
        cmocka_unit_test(test_validate_refuses_enum_value_no_enum_defines),
        cmocka_unit_test(test_validate_refuses_port_over_65535),
        cmocka_unit_test(test_validate_reads_only_the_selected_member_of_a_oneof),
        cmocka_unit_test(test_validate_looks_inside_typed_config),
        cmocka_unit_test(test_validate_leaves_any_of_unknown_type_to_its_reader),
        cmocka_unit_test(test_validate_refuses_any_that_does_not_decode),
        cmocka_unit_test(test_validate_accepts_the_envoy_sidecar_config),
        cmocka_unit_test(test_duration_ms_takes_whole_milliseconds_or_the_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
