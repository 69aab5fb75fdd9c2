/* When a build takes a resource for the same as the one the last snapshot kept (and shares that
 * snapshot's copy and what was built from it): only when every field is equal, scalars, strings,
 * bytes, repeated fields, the member set of a oneof, submessages set or not, and unknown fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "xds/config/config.h"
#include "xds/snapshot/snapshot_build.h"

#define CLA_DESC     (&envoy__config__endpoint__v3__cluster_load_assignment__descriptor)
#define CLUSTER_DESC (&envoy__config__cluster__v3__cluster__descriptor)

#define ENDPOINT(ip, port)                                                                         \
    "  - endpoint: {address: {socket_address: {address: " ip ", port_value: " port "}}}\n"
#define CLA(body) "cluster_name: reviews\nendpoints:\n- lb_endpoints:\n" body

static ProtobufCMessage *load(const ProtobufCMessageDescriptor *desc, const char *yaml)
{
    ProtobufCMessage *m = NULL;
    char err[512];
    if (config_yaml_load(yaml, strlen(yaml), "test.yaml", desc, &m, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    return m;
}

/* Whether the messages yaml a and yaml b make compare equal. */
static bool same(const ProtobufCMessageDescriptor *desc, const char *a, const char *b)
{
    ProtobufCMessage *x = load(desc, a), *y = load(desc, b);
    bool eq = snap_message_equal(x, y);
    assert_true(snap_message_equal(x, x));
    assert_int_equal(snap_message_equal(y, x), eq); /* either way round */
    protobuf_c_message_free_unpacked(x, NULL);
    protobuf_c_message_free_unpacked(y, NULL);
    return eq;
}

static void test_two_messages_of_the_same_config_are_equal(void **state)
{
    (void)state;
    const char *cla = CLA(ENDPOINT("10.0.0.1", "80") ENDPOINT("10.0.0.2", "80"));
    assert_true(same(CLA_DESC, cla, cla));
}

static void test_a_scalar_a_string_or_a_count_differing_is_a_change(void **state)
{
    (void)state;
    const char *cla = CLA(ENDPOINT("10.0.0.1", "80") ENDPOINT("10.0.0.2", "80"));
    assert_false(same(CLA_DESC, cla, CLA(ENDPOINT("10.0.0.1", "80") ENDPOINT("10.0.0.2", "81"))));
    assert_false(same(CLA_DESC, cla, CLA(ENDPOINT("10.0.0.1", "80") ENDPOINT("10.0.0.3", "80"))));
    assert_false(same(CLA_DESC, cla, CLA(ENDPOINT("10.0.0.1", "80"))));
    /* the same endpoints in another order: another config for round robin */
    assert_false(same(CLA_DESC, cla, CLA(ENDPOINT("10.0.0.2", "80") ENDPOINT("10.0.0.1", "80"))));
}

static void test_a_submessage_set_to_its_default_is_a_change(void **state)
{
    (void)state;
    /* load_balancing_weight 1 is the default, but "different" is the safe answer */
    assert_false(same(CLA_DESC, CLA(ENDPOINT("10.0.0.1", "80")),
                      CLA(ENDPOINT("10.0.0.1", "80") "    load_balancing_weight: 1\n")));
}

static void test_another_member_of_a_oneof_is_a_change(void **state)
{
    (void)state;
    assert_false(same(CLUSTER_DESC, "name: a\ntype: EDS\n",
                      "name: a\ncluster_type: {name: envoy.clusters.custom}\n"));
    assert_false(same(CLUSTER_DESC, "name: a\ntype: EDS\n", "name: a\ntype: STATIC\n"));
}

static void test_bytes_of_an_any_differing_is_a_change(void **state)
{
    (void)state;
#define TLS(sni)                                                                                   \
    "name: a\ntransport_socket:\n  name: tls\n  typed_config:\n"                                   \
    "    '@type': type.googleapis.com/"                                                            \
    "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n"                               \
    "    sni: " sni "\n"
    assert_true(same(CLUSTER_DESC, TLS("a.example"), TLS("a.example")));
    assert_false(same(CLUSTER_DESC, TLS("a.example"), TLS("b.example")));
}

/* m packed, with one unknown varint field (number 999, value v) after it. */
static ProtobufCMessage *with_unknown(const ProtobufCMessage *m, uint8_t v)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len + 4);
    assert_non_null(buf);
    protobuf_c_message_pack(m, buf);
    /* tag (999 << 3 | 0) as a varint: 0xb8 0x3e, then the value */
    buf[len] = 0xb8;
    buf[len + 1] = 0x3e;
    buf[len + 2] = v;
    ProtobufCMessage *out = protobuf_c_message_unpack(m->descriptor, NULL, len + 3, buf);
    free(buf);
    assert_non_null(out);
    return out;
}

static void test_unknown_fields_count(void **state)
{
    (void)state;
    ProtobufCMessage *m = load(CLUSTER_DESC, "name: a\ntype: EDS\n");
    ProtobufCMessage *a = with_unknown(m, 1), *b = with_unknown(m, 1), *c = with_unknown(m, 2);
    assert_int_equal(a->n_unknown_fields, 1);
    assert_true(snap_message_equal(a, b));
    assert_false(snap_message_equal(a, c));
    assert_false(snap_message_equal(m, a));
    ProtobufCMessage *all[] = {m, a, b, c};
    for (size_t i = 0; i < 4; i++)
        protobuf_c_message_free_unpacked(all[i], NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_messages_of_the_same_config_are_equal),
        cmocka_unit_test(test_a_scalar_a_string_or_a_count_differing_is_a_change),
        cmocka_unit_test(test_a_submessage_set_to_its_default_is_a_change),
        cmocka_unit_test(test_another_member_of_a_oneof_is_a_change),
        cmocka_unit_test(test_bytes_of_an_any_differing_is_a_change),
        cmocka_unit_test(test_unknown_fields_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
