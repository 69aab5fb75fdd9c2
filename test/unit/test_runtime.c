/* Specification of the layered runtime: static layers flatten to dotted keys as in Envoy, later
 * layers override earlier ones, unsupported layers are errors naming the layer, and the keys
 * nobody reads are listed for the load-time warning. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "xds/config/config.h"
#include "xds/snapshot/runtime.h"

typedef struct fixture {
    ProtobufCMessage *msg; /* the Bootstrap the entries borrow from */
    runtime_t rt;
    char err[512];
} fixture_t;

/* Loads "layered_runtime:\n" + yaml and flattens it; returns runtime_build's result. */
static int build(fixture_t *f, const char *yaml)
{
    char text[2048];
    snprintf(text, sizeof(text), "layered_runtime:\n%s", yaml);
    if (config_yaml_load(text, strlen(text), "rt.yaml",
                         &envoy__config__bootstrap__v3__bootstrap__descriptor, &f->msg, f->err,
                         sizeof(f->err)) != 0)
        fail_msg("%s", f->err);
    const Envoy__Config__Bootstrap__V3__Bootstrap *b = (const void *)f->msg;
    return runtime_build(b->layered_runtime, &f->rt, f->err, sizeof(f->err));
}

static void release(fixture_t *f)
{
    runtime_free(&f->rt);
    protobuf_c_message_free_unpacked(f->msg, NULL);
}

static const Google__Protobuf__Value *value_of(const fixture_t *f, const char *key)
{
    const runtime_entry_t *e = runtime_find(&f->rt, key);
    if (e == NULL)
        fail_msg("no runtime key '%s'", key);
    return e->value;
}

static void expect_error(const char *yaml, const char *want)
{
    fixture_t f = {0};
    int rc = build(&f, yaml);
    if (rc != -EINVAL || strcmp(f.err, want) != 0)
        fail_msg("want -EINVAL and '%s', got rc=%d err='%s'", want, rc, f.err);
    assert_int_equal(f.rt.n, 0);
    release(&f);
}

static void test_runtime_flattens_nested_keys_with_dots(void **state)
{
    (void)state;
    fixture_t f = {0};
    assert_int_equal(build(&f, "  layers:\n"
                               "  - name: static_layer_0\n"
                               "    static_layer:\n"
                               "      envoy:\n"
                               "        resource_limits:\n"
                               "          listener:\n"
                               "            example_listener_name:\n"
                               "              connection_limit: 10000\n"
                               "      flat.key.already: on\n"),
                     0);
    assert_int_equal(f.rt.n, 2);
    const Google__Protobuf__Value *v =
        value_of(&f, "envoy.resource_limits.listener.example_listener_name.connection_limit");
    assert_true(v->number_value == 10000);
    assert_string_equal(value_of(&f, "flat.key.already")->string_value, "on");
    assert_string_equal(runtime_find(&f.rt, "flat.key.already")->layer, "static_layer_0");
    release(&f);
}

static void test_runtime_later_layer_overrides_earlier(void **state)
{
    (void)state;
    fixture_t f = {0};
    assert_int_equal(build(&f, "  layers:\n"
                               "  - name: base\n"
                               "    static_layer: {a: {b: 1, c: 2}, only_base: 7}\n"
                               "  - name: override\n"
                               "    static_layer: {a.b: 10, only_override: 8}\n"
                               "  - name: last\n"
                               "    static_layer: {a: {c: 30}}\n"),
                     0);
    assert_int_equal(f.rt.n, 4);
    assert_true(value_of(&f, "a.b")->number_value == 10);
    assert_string_equal(runtime_find(&f.rt, "a.b")->layer, "override");
    assert_true(value_of(&f, "a.c")->number_value == 30);
    assert_string_equal(runtime_find(&f.rt, "a.c")->layer, "last");
    assert_true(value_of(&f, "only_base")->number_value == 7);
    assert_true(value_of(&f, "only_override")->number_value == 8);
    release(&f);
}

static void test_runtime_keeps_empty_struct_and_fractional_percent_whole(void **state)
{
    (void)state;
    fixture_t f = {0};
    assert_int_equal(build(&f, "  layers:\n"
                               "  - name: s\n"
                               "    static_layer:\n"
                               "      empty: {}\n"
                               "      pct: {numerator: 5, denominator: HUNDRED}\n"),
                     0);
    assert_int_equal(f.rt.n, 2);
    assert_int_equal(value_of(&f, "empty")->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE);
    assert_int_equal(value_of(&f, "pct")->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE);
    assert_null(runtime_find(&f.rt, "pct.numerator"));
    release(&f);
}

static void test_runtime_accepts_admin_layer_without_effect(void **state)
{
    (void)state;
    fixture_t f = {0};
    assert_int_equal(build(&f, "  layers:\n"
                               "  - {name: s, static_layer: {k: 1}}\n"
                               "  - {name: admin, admin_layer: {}}\n"),
                     0);
    assert_int_equal(f.rt.n, 1);
    assert_true(value_of(&f, "k")->number_value == 1);
    release(&f);
}

static void test_runtime_rejects_disk_layer(void **state)
{
    (void)state;
    expect_error("  layers:\n"
                 "  - name: disk\n"
                 "    disk_layer: {symlink_root: /srv/runtime/current, subdirectory: envoy}\n",
                 "layered_runtime: layer 'disk': disk_layer is not supported");
}

static void test_runtime_rejects_rtds_layer(void **state)
{
    (void)state;
    expect_error("  layers:\n"
                 "  - {name: rtds, rtds_layer: {name: rtds}}\n",
                 "layered_runtime: layer 'rtds': rtds_layer is not supported");
}

static void test_runtime_rejects_list_value_naming_layer_and_key(void **state)
{
    (void)state;
    expect_error("  layers:\n"
                 "  - {name: s, static_layer: {a: {b: [1, 2]}}}\n",
                 "layered_runtime: layer 's': key 'a.b': a list is not a runtime value");
}

static void test_runtime_rejects_null_value(void **state)
{
    (void)state;
    expect_error("  layers:\n"
                 "  - {name: s, static_layer: {a: ~}}\n",
                 "layered_runtime: layer 's': key 'a': null is not a runtime value");
}

static void test_runtime_rejects_layer_without_name(void **state)
{
    (void)state;
    expect_error("  layers:\n"
                 "  - {static_layer: {a: 1}}\n",
                 "layered_runtime: layers[0]: name is required");
}

static void test_runtime_rejects_duplicate_layer_names(void **state)
{
    (void)state;
    expect_error("  layers:\n"
                 "  - {name: s, static_layer: {a: 1}}\n"
                 "  - {name: s, admin_layer: {}}\n",
                 "layered_runtime: layer 's': defined twice");
}

static void test_runtime_rejects_layer_without_kind(void **state)
{
    (void)state;
    expect_error("  layers:\n"
                 "  - {name: s}\n",
                 "layered_runtime: layer 's': needs one of static_layer, disk_layer, admin_layer "
                 "or rtds_layer");
}

static void test_runtime_rejects_key_given_twice_in_one_layer(void **state)
{
    (void)state;
    expect_error("  layers:\n"
                 "  - {name: s, static_layer: {a: {b: 1}, a.b: 2}}\n",
                 "layered_runtime: layer 's': key 'a.b' is given twice");
}

static void test_runtime_reads_limits_from_numbers_and_digit_strings(void **state)
{
    (void)state;
    fixture_t f = {0};
    assert_int_equal(build(&f, "  layers:\n"
                               "  - name: s\n"
                               "    static_layer:\n"
                               "      overload.global_downstream_max_connections: '50000'\n"
                               "      envoy.resource_limits.listener.in.connection_limit: 2\n"
                               "      envoy.resource_limits.listener.zero.connection_limit: 0\n"),
                     0);
    uint64_t limit = RUNTIME_NO_LIMIT;
    assert_int_equal(runtime_get_limit(&f.rt, RUNTIME_GLOBAL_MAX_CX, &limit, f.err, sizeof(f.err)),
                     0);
    assert_int_equal(limit, 50000);
    assert_int_equal(runtime_listener_limit(&f.rt, "in", &limit, f.err, sizeof(f.err)), 0);
    assert_int_equal(limit, 2);
    assert_int_equal(runtime_listener_limit(&f.rt, "zero", &limit, f.err, sizeof(f.err)), 0);
    assert_int_equal(limit, 0);
    limit = RUNTIME_NO_LIMIT;
    assert_int_equal(runtime_listener_limit(&f.rt, "absent", &limit, f.err, sizeof(f.err)), 0);
    assert_true(limit == RUNTIME_NO_LIMIT);
    release(&f);
}

static void test_runtime_rejects_limit_that_is_not_a_whole_number(void **state)
{
    (void)state;
    static const char *const bad[] = {"1.5", "-1", "'lots'", "true", "{}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fixture_t f = {0};
        char yaml[256];
        snprintf(yaml, sizeof(yaml), "  layers:\n  - {name: s, static_layer: {%s: %s}}\n",
                 RUNTIME_GLOBAL_MAX_CX, bad[i]);
        if (build(&f, yaml) != 0)
            fail_msg("%s: %s", bad[i], f.err);
        uint64_t limit = 7;
        assert_int_equal(
            runtime_get_limit(&f.rt, RUNTIME_GLOBAL_MAX_CX, &limit, f.err, sizeof(f.err)), -EINVAL);
        assert_int_equal(limit, 7);
        assert_non_null(strstr(f.err, "layered_runtime: layer 's': key "
                                      "'overload.global_downstream_max_connections': "));
        assert_non_null(strstr(f.err, "is not a number of connections"));
        release(&f);
    }
}

static void test_runtime_lists_keys_nobody_read(void **state)
{
    (void)state;
    fixture_t f = {0};
    assert_int_equal(build(&f, "  layers:\n"
                               "  - name: s\n"
                               "    static_layer:\n"
                               "      envoy.resource_limits.listener.in.connection_limit: 2\n"
                               "      envoy.reloadable_features.foo: true\n"
                               "      health_check.min_interval: 10\n"),
                     0);
    uint64_t limit;
    assert_int_equal(runtime_listener_limit(&f.rt, "in", &limit, f.err, sizeof(f.err)), 0);
    char buf[256];
    assert_int_equal(runtime_unused_keys(&f.rt, buf, sizeof(buf)), 2);
    assert_string_equal(buf, "envoy.reloadable_features.foo, health_check.min_interval");
    char small[40];
    assert_int_equal(runtime_unused_keys(&f.rt, small, sizeof(small)), 2);
    assert_string_equal(small, "envoy.reloadable_features.foo, ...");
    release(&f);
}

static void test_runtime_without_layers_is_empty(void **state)
{
    (void)state;
    runtime_t rt;
    char err[64];
    assert_int_equal(runtime_build(NULL, &rt, err, sizeof(err)), 0);
    assert_int_equal(rt.n, 0);
    assert_null(runtime_find(&rt, "anything"));
    char buf[8];
    assert_int_equal(runtime_unused_keys(&rt, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");
    runtime_free(&rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runtime_flattens_nested_keys_with_dots),
        cmocka_unit_test(test_runtime_later_layer_overrides_earlier),
        cmocka_unit_test(test_runtime_keeps_empty_struct_and_fractional_percent_whole),
        cmocka_unit_test(test_runtime_accepts_admin_layer_without_effect),
        cmocka_unit_test(test_runtime_rejects_disk_layer),
        cmocka_unit_test(test_runtime_rejects_rtds_layer),
        cmocka_unit_test(test_runtime_rejects_list_value_naming_layer_and_key),
        cmocka_unit_test(test_runtime_rejects_null_value),
        cmocka_unit_test(test_runtime_rejects_layer_without_name),
        cmocka_unit_test(test_runtime_rejects_duplicate_layer_names),
        cmocka_unit_test(test_runtime_rejects_layer_without_kind),
        cmocka_unit_test(test_runtime_rejects_key_given_twice_in_one_layer),
        cmocka_unit_test(test_runtime_reads_limits_from_numbers_and_digit_strings),
        cmocka_unit_test(test_runtime_rejects_limit_that_is_not_a_whole_number),
        cmocka_unit_test(test_runtime_lists_keys_nobody_read),
        cmocka_unit_test(test_runtime_without_layers_is_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
