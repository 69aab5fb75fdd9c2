/* pb_arena: a message decoded into an arena is the message a plain decode gives (packed again,
 * the same bytes), in one block, a large one as well, bad bytes give NULL and leave nothing behind
 * (ASan), and freeing the arena frees it all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "xds/config/config.h"
#include "xds/config/pb_arena.h"

#define CLA_DESC     (&envoy__config__endpoint__v3__cluster_load_assignment__descriptor)
#define CLUSTER_DESC (&envoy__config__cluster__v3__cluster__descriptor)

/* The bench's shapes (bench/xds.py): an EDS cluster over ADS, five endpoints. */
static const char cluster_yaml[] = "name: c17\n"
                                   "type: EDS\n"
                                   "connect_timeout: 1s\n"
                                   "eds_cluster_config: {eds_config: {ads: {}}}\n"
                                   "alt_stat_name: c17-stats\n"
                                   "lb_policy: LEAST_REQUEST\n";

#define ENDPOINT(port)                                                                             \
    "  - endpoint: {address: {socket_address: {address: 127.0.1.18, port_value: " port "}}}\n"
static const char cla_yaml[] = "cluster_name: c17\n"
                               "endpoints:\n"
                               "- lb_endpoints:\n" ENDPOINT("10000") ENDPOINT("10001")
                                   ENDPOINT("10002") ENDPOINT("10003") ENDPOINT("10004");

typedef struct wire {
    uint8_t *buf;
    size_t len;
} wire_t;

static wire_t pack(const ProtobufCMessage *m)
{
    wire_t w = {.len = protobuf_c_message_get_packed_size(m)};
    w.buf = malloc(w.len ? w.len : 1);
    assert_non_null(w.buf);
    protobuf_c_message_pack(m, w.buf);
    return w;
}

static wire_t yaml_wire(const ProtobufCMessageDescriptor *desc, const char *yaml)
{
    ProtobufCMessage *m = NULL;
    char err[512];
    if (config_yaml_load(yaml, strlen(yaml), "test.yaml", desc, &m, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    wire_t w = pack(m);
    protobuf_c_message_free_unpacked(m, NULL);
    return w;
}

/* Decodes w both ways and checks the two pack to w's bytes; returns the arena's block count. */
static size_t same_both_ways(const ProtobufCMessageDescriptor *desc, wire_t w)
{
    ProtobufCMessage *plain = protobuf_c_message_unpack(desc, NULL, w.len, w.buf);
    assert_non_null(plain);
    pb_arena_t *arena = NULL;
    ProtobufCMessage *m = pb_arena_unpack(desc, w.len, w.buf, &arena);
    assert_non_null(m);
    assert_non_null(arena);
    assert_ptr_equal(m->descriptor, desc);
    wire_t a = pack(m), b = pack(plain);
    assert_int_equal(a.len, w.len);
    assert_int_equal(b.len, w.len);
    assert_memory_equal(a.buf, w.buf, w.len);
    assert_memory_equal(b.buf, w.buf, w.len);
    size_t blocks, bytes;
    pb_arena_stats(arena, &blocks, &bytes);
    assert_true(bytes >= desc->sizeof_message);
    if (getenv("PB_ARENA_VERBOSE"))
        fprintf(stderr, "%s: %zu wire bytes, %zu blocks, %zu bytes\n", desc->name, w.len, blocks,
                bytes);
    free(a.buf);
    free(b.buf);
    protobuf_c_message_free_unpacked(plain, NULL);
    pb_arena_free(arena);
    return blocks;
}

static void test_a_cluster_decodes_as_a_plain_decode_does_in_one_block(void **state)
{
    (void)state;
    wire_t w = yaml_wire(CLUSTER_DESC, cluster_yaml);
    assert_int_equal(same_both_ways(CLUSTER_DESC, w), 1);
    free(w.buf);
}

static void test_a_load_assignment_decodes_as_a_plain_decode_does_in_one_block(void **state)
{
    (void)state;
    wire_t w = yaml_wire(CLA_DESC, cla_yaml);
    assert_int_equal(same_both_ways(CLA_DESC, w), 1);
    free(w.buf);
}

/* 2,000 endpoints: a large message, and one of 5,000 empty endpoints, 2 bytes each on the wire
 * and ~80 decoded, which outgrows the first decode's first block (16 bytes per wire byte):
 * both decode whole, and into one block. */
static void test_a_message_larger_than_the_first_block_decodes_whole(void **state)
{
    (void)state;
    enum { N = 2000 };
    size_t cap = 64 + N * 96, n = 0;
    char *yaml = malloc(cap);
    assert_non_null(yaml);
    n += (size_t)snprintf(yaml + n, cap - n, "cluster_name: big\nendpoints:\n- lb_endpoints:\n");
    for (int i = 0; i < N; i++)
        n += (size_t)snprintf(yaml + n, cap - n,
                              "  - endpoint: {address: {socket_address: {address: 10.%d.%d.%d, "
                              "port_value: %d}}}\n",
                              i / 65536, i / 256 % 256, i % 256, 1000 + i);
    wire_t w = yaml_wire(CLA_DESC, yaml);
    assert_int_equal(same_both_ways(CLA_DESC, w), 1);
    free(w.buf);
    n = (size_t)snprintf(yaml, cap, "cluster_name: empty\nendpoints:\n- lb_endpoints:\n");
    for (int i = 0; i < 5000; i++)
        n += (size_t)snprintf(yaml + n, cap - n, "  - {}\n");
    w = yaml_wire(CLA_DESC, yaml);
    assert_int_equal(same_both_ways(CLA_DESC, w), 1);
    free(w.buf);
    free(yaml);
}

static void test_bytes_that_do_not_decode_give_null_and_no_arena(void **state)
{
    (void)state;
    wire_t w = yaml_wire(CLA_DESC, cla_yaml);
    pb_arena_t *arena = (pb_arena_t *)&w; /* overwritten */
    /* cut inside the endpoints: a length runs past the end */
    assert_null(pb_arena_unpack(CLA_DESC, w.len - 3, w.buf, &arena));
    assert_null(arena);
    const uint8_t junk[] = {0x12, 0x7f, 0x01};
    assert_null(pb_arena_unpack(CLA_DESC, sizeof(junk), junk, &arena));
    assert_null(arena);
    free(w.buf);
}

static void test_an_empty_message_decodes(void **state)
{
    (void)state;
    pb_arena_t *arena = NULL;
    const Envoy__Config__Cluster__V3__Cluster *c =
        (const void *)pb_arena_unpack(CLUSTER_DESC, 0, (const uint8_t *)"", &arena);
    assert_non_null(c);
    assert_string_equal(c->name, "");
    assert_null(c->load_assignment);
    pb_arena_free(arena);
    pb_arena_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_cluster_decodes_as_a_plain_decode_does_in_one_block),
        cmocka_unit_test(test_a_load_assignment_decodes_as_a_plain_decode_does_in_one_block),
        cmocka_unit_test(test_a_message_larger_than_the_first_block_decodes_whole),
        cmocka_unit_test(test_bytes_that_do_not_decode_give_null_and_no_arena),
        cmocka_unit_test(test_an_empty_message_decodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
