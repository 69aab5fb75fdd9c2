/* Stats store: ids are stable per name, values are summed over writer slots, and the three
 * renderings are well-formed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/stats.h"

static void test_stats_same_name_gets_same_id(void **state)
{
    (void)state;
    stats_store_t *st = stats_store_new(2);
    int64_t a = stats_define(st, STAT_COUNTER, "cluster", "envoy_cluster_name", "a", "x_total");
    int64_t b = stats_define(st, STAT_COUNTER, "cluster", "envoy_cluster_name", "b", "x_total");
    int64_t a2 = stats_define(st, STAT_COUNTER, "cluster", "envoy_cluster_name", "a", "x_total");
    assert_true(a >= 0);
    assert_int_not_equal(a, b);
    assert_int_equal(a, a2);
    stats_store_free(st);
}

static void test_stats_value_sums_every_writer(void **state)
{
    (void)state;
    stats_store_t *st = stats_store_new(3);
    stat_id_t id = (stat_id_t)stats_define(st, STAT_GAUGE, "listener", "l", "in", "active");
    stats_add(stats_slots(st, 0), id, 5);
    stats_add(stats_slots(st, 1), id, 2);
    stats_add(stats_slots(st, 2), id, -3);
    assert_int_equal(stats_value(st, id), 4);
    stats_store_free(st);
}

static void test_stats_survive_growth_past_one_block(void **state)
{
    (void)state;
    stats_store_t *st = stats_store_new(1);
    char name[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(name, sizeof(name), "c%d", i);
        int64_t id = stats_define(st, STAT_COUNTER, "cluster", "n", name, "total");
        assert_int_equal(id, i);
        stats_add(stats_slots(st, 0), (stat_id_t)id, i);
    }
    assert_int_equal(stats_value(st, 2999), 2999);
    snprintf(name, sizeof(name), "c%d", 1234);
    assert_int_equal(stats_define(st, STAT_COUNTER, "cluster", "n", name, "total"), 1234);
    stats_store_free(st);
}

static void test_stats_text_is_sorted_name_colon_value(void **state)
{
    (void)state;
    stats_store_t *st = stats_store_new(1);
    stat_id_t b = (stat_id_t)stats_define(st, STAT_COUNTER, "cluster", "n", "b", "cx_total");
    stats_define(st, STAT_COUNTER, "cluster", "n", "a", "cx_total");
    stats_add(stats_slots(st, 0), b, 7);
    stats_entry_t *list;
    int n = stats_list(st, &list);
    char *text = stats_render_text(list, n, NULL);
    assert_string_equal(text, "cluster.a.cx_total: 0\ncluster.b.cx_total: 7\n");
    free(text);
    stats_list_free(list);
    stats_store_free(st);
}

static void test_stats_prometheus_groups_family_with_one_type_line(void **state)
{
    (void)state;
    stats_store_t *st = stats_store_new(1);
    stats_define(st, STAT_COUNTER, "cluster", "envoy_cluster_name", "outbound|80||a.b", "cx");
    stats_define(st, STAT_GAUGE, "server", NULL, NULL, "live");
    stats_define(st, STAT_COUNTER, "cluster", "envoy_cluster_name", "z\"q", "cx");
    stats_entry_t *list;
    int n = stats_list(st, &list);
    char *text = stats_render_prometheus(list, n);
    assert_string_equal(text, "# TYPE envoy_cluster_cx counter\n"
                              "envoy_cluster_cx{envoy_cluster_name=\"outbound|80||a.b\"} 0\n"
                              "envoy_cluster_cx{envoy_cluster_name=\"z\\\"q\"} 0\n"
                              "# TYPE envoy_server_live gauge\n"
                              "envoy_server_live 0\n");
    free(text);
    stats_list_free(list);
    stats_store_free(st);
}

static void test_stats_json_escapes_names(void **state)
{
    (void)state;
    stats_store_t *st = stats_store_new(1);
    stats_define(st, STAT_COUNTER, "tcp", "p", "a\"b", "x");
    stats_entry_t *list;
    int n = stats_list(st, &list);
    char *text = stats_render_json(list, n, NULL);
    assert_string_equal(text, "{\"stats\":[\n{\"name\":\"tcp.a\\\"b.x\",\"value\":0}\n]}\n");
    free(text);
    stats_list_free(list);
    stats_store_free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats_same_name_gets_same_id),
        cmocka_unit_test(test_stats_value_sums_every_writer),
        cmocka_unit_test(test_stats_survive_growth_past_one_block),
        cmocka_unit_test(test_stats_text_is_sorted_name_colon_value),
        cmocka_unit_test(test_stats_prometheus_groups_family_with_one_type_line),
        cmocka_unit_test(test_stats_json_escapes_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
