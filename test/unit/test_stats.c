/* Stats store: ids are stable per name, values are summed over writer slots even while other
 * threads define stats, histograms bucket and interpolate as documented, and the three renderings
 * are exact. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <stdatomic.h>

#include "base/stats.h"

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

static char *render(stats_store_t *st, char *(*fn)(const stats_entry_t *, int, const char *))
{
    stats_entry_t *list;
    int n = stats_list(st, &list);
    assert_true(n >= 0);
    char *text = fn(list, n, NULL);
    stats_list_free(list);
    return text;
}

static char *render_prom(stats_store_t *st)
{
    stats_entry_t *list;
    int n = stats_list(st, &list);
    assert_true(n >= 0);
    char *text = stats_render_prometheus(list, n);
    stats_list_free(list);
    return text;
}

/* --- concurrent definition ------------------------------------------------------------------ */

#define RACE_THREADS 4
#define RACE_STATS   1500 /* past two blocks, so blocks are allocated while others count */

typedef struct race_arg {
    stats_store_t *st;
    unsigned index;
    stat_id_t ids[RACE_STATS];
    stat_id_t hist;
} race_arg_t;

static void *race_definer(void *p)
{
    race_arg_t *a = p;
    stats_slots_t *slots = stats_slots(a->st, a->index);
    stats_cache_t cache = {0};
    char code[16];
    stats_tag_t tags[2] = {{"reporter", "destination"}, {"response_code", code}};
    for (int i = 0; i < RACE_STATS; i++) {
        /* Every thread defines the same names, in a different order, and counts right away. */
        static const int stride[RACE_THREADS] = {1, 7, 11, 13}; /* coprime to RACE_STATS */
        int k = (i * stride[a->index] + (int)a->index * 97) % RACE_STATS;
        snprintf(code, sizeof(code), "%d", k);
        uint64_t key = stats_key_bytes(STATS_KEY_INIT, code, strlen(code));
        stat_id_t id;
        if (!stats_cache_get(&cache, key, &id)) {
            int64_t r =
                stats_define_tagged(a->st, STAT_COUNTER, "istio_requests_total", NULL, tags, 2);
            assert_true(r >= 0);
            id = (stat_id_t)r;
            assert_int_equal(stats_cache_put(&cache, key, id), 0);
        }
        stats_inc(slots, id);
        assert_true(stats_cache_get(&cache, key, &id));
        stats_inc(slots, id);
        a->ids[k] = id;
        if (i % 100 == 0) {
            int64_t h = stats_define_histogram(a->st, "cluster", "envoy_cluster_name", "race",
                                               "upstream_rq_time");
            assert_true(h >= 0);
            a->hist = (stat_id_t)h;
            stats_record(slots, a->hist, 700);
        }
    }
    stats_cache_free(&cache);
    return NULL;
}

static _Atomic int race_done;

static void *race_reader(void *p)
{
    stats_store_t *st = p;
    while (!atomic_load(&race_done)) {
        stats_entry_t *list;
        int n = stats_list(st, &list);
        assert_true(n >= 0);
        char *text = stats_render_prometheus(list, n);
        assert_non_null(text);
        free(text);
        stats_list_free(list);
    }
    return NULL;
}

static void test_stats_defined_by_many_threads_lose_no_counts(void **state)
{
    (void)state;
    stats_store_t *st = stats_store_new(RACE_THREADS);
    static race_arg_t args[RACE_THREADS];
    pthread_t th[RACE_THREADS], reader;
    atomic_store(&race_done, 0);
    assert_int_equal(pthread_create(&reader, NULL, race_reader, st), 0);
    for (unsigned t = 0; t < RACE_THREADS; t++) {
        args[t] = (race_arg_t){.st = st, .index = t};
        assert_int_equal(pthread_create(&th[t], NULL, race_definer, &args[t]), 0);
    }
    for (unsigned t = 0; t < RACE_THREADS; t++)
        pthread_join(th[t], NULL);
    atomic_store(&race_done, 1);
    pthread_join(reader, NULL);

    for (int k = 0; k < RACE_STATS; k++) {
        for (unsigned t = 1; t < RACE_THREADS; t++)
            assert_int_equal(args[t].ids[k], args[0].ids[k]);
        assert_int_equal(stats_value(st, args[0].ids[k]), 2 * RACE_THREADS);
    }
    stats_histogram_t h;
    stats_histogram_read(st, args[0].hist, &h);
    assert_int_equal(h.count, RACE_THREADS * (RACE_STATS / 100));
    assert_int_equal(h.sum_us, 700 * h.count);

    stats_entry_t *list;
    int n = stats_list(st, &list);
    assert_int_equal(n, RACE_STATS + 1);
    stats_list_free(list);
    stats_store_free(st);
}

/* --- tagged stats --------------------------------------------------------------------------- */

static void test_stats_tagged_name_defaults_to_istio_form(void **state)
{
    (void)state;
    stats_store_t *st = stats_store_new(1);
    stats_tag_t tags[] = {{"reporter", "source"}, {"response_code", "200"}};
    int64_t a = stats_define_tagged(st, STAT_COUNTER, "istio_requests_total", NULL, tags, 2);
    int64_t b = stats_define_tagged(
        st, STAT_COUNTER, "istio_requests_total",
        "reporter=.=source;.;response_code=.=200;.;istio_requests_total", tags, 2);
    assert_true(a >= 0);
    assert_int_equal(a, b);
    stats_add(stats_slots(st, 0), (stat_id_t)a, 3);
    char *text = render(st, stats_render_text);
    assert_string_equal(text,
                        "reporter=.=source;.;response_code=.=200;.;istio_requests_total: 3\n");
    free(text);
    stats_store_free(st);
}

static void test_stats_tagged_renders_labels_in_order_escaped(void **state)
{
    (void)state;
    stats_store_t *st = stats_store_new(1);
    stats_tag_t t404[] = {{"response_code", "404"}, {"source_workload", "a\"b\\c\nd"}};
    stats_tag_t t200[] = {{"response_code", "200"}, {"source_workload", "client"}};
    stat_id_t a = (stat_id_t)stats_define_tagged(st, STAT_COUNTER, "istio_requests_total",
                                                 "istio.404", t404, 2);
    stat_id_t b = (stat_id_t)stats_define_tagged(st, STAT_COUNTER, "istio_requests_total",
                                                 "istio.200", t200, 2);
    stats_define(st, STAT_GAUGE, "server", NULL, NULL, "live");
    stats_add(stats_slots(st, 0), a, 1);
    stats_add(stats_slots(st, 0), b, 2);

    char *text = render_prom(st);
    assert_string_equal(
        text,
        "# TYPE envoy_server_live gauge\n"
        "envoy_server_live 0\n"
        "# TYPE istio_requests_total counter\n"
        "istio_requests_total{response_code=\"200\",source_workload=\"client\"} 2\n"
        "istio_requests_total{response_code=\"404\",source_workload=\"a\\\"b\\\\c\\nd\"} 1\n");
    free(text);
    text = render(st, stats_render_text);
    assert_string_equal(text, "istio.200: 2\nistio.404: 1\nserver.live: 0\n");
    free(text);
    text = render(st, stats_render_json);
    assert_string_equal(text, "{\"stats\":[\n"
                              "{\"name\":\"istio.200\",\"value\":2},\n"
                              "{\"name\":\"istio.404\",\"value\":1},\n"
                              "{\"name\":\"server.live\",\"value\":0}\n"
                              "]}\n");
    free(text);
    stats_store_free(st);
}

static void test_stats_prometheus_names_are_sanitised(void **state)
{
    (void)state;
    stats_store_t *st = stats_store_new(1);
    stats_tag_t tags[] = {{"1st-label", "x"}};
    stats_define_tagged(st, STAT_COUNTER, "my.family-x", "n", tags, 1);
    char *text = render_prom(st);
    assert_string_equal(text, "# TYPE my_family_x counter\nmy_family_x{_1st_label=\"x\"} 0\n");
    free(text);
    stats_store_free(st);
}

static void test_stats_same_name_other_kind_is_refused(void **state)
{
    (void)state;
    stats_store_t *st = stats_store_new(1);
    assert_true(stats_define(st, STAT_COUNTER, "cluster", "c", "a", "rq_time") >= 0);
    assert_int_equal(stats_define_histogram(st, "cluster", "c", "a", "rq_time"), -EEXIST);
    assert_int_equal(stats_define(st, STAT_HISTOGRAM, "cluster", "c", "a", "x"), -EINVAL);
    stats_store_free(st);
}

static void test_stats_cache_maps_keys_to_ids(void **state)
{
    (void)state;
    stats_cache_t c = {0};
    stat_id_t id;
    assert_false(stats_cache_get(&c, 42, &id));
    for (uint64_t k = 0; k < 1000; k++)
        assert_int_equal(stats_cache_put(&c, stats_key_u64(STATS_KEY_INIT, k), (stat_id_t)k), 0);
    for (uint64_t k = 0; k < 1000; k++) {
        assert_true(stats_cache_get(&c, stats_key_u64(STATS_KEY_INIT, k), &id));
        assert_int_equal(id, k);
    }
    assert_int_equal(stats_cache_put(&c, stats_key_u64(STATS_KEY_INIT, 7), 9), 0);
    assert_true(stats_cache_get(&c, stats_key_u64(STATS_KEY_INIT, 7), &id));
    assert_int_equal(id, 9);
    assert_int_equal(c.n, 1000);
    assert_false(stats_cache_get(&c, stats_key_u64(STATS_KEY_INIT, 5000), &id));
    assert_int_not_equal(stats_key_bytes(stats_key_bytes(STATS_KEY_INIT, "ab", 2), "c", 1),
                         stats_key_bytes(stats_key_bytes(STATS_KEY_INIT, "a", 1), "bc", 2));
    stats_cache_free(&c);
}

/* --- histograms ----------------------------------------------------------------------------- */

static void test_stats_histogram_buckets_are_inclusive_upper_bounds(void **state)
{
    (void)state;
    stats_store_t *st = stats_store_new(1);
    stat_id_t id = (stat_id_t)stats_define_histogram(st, "cluster", "envoy_cluster_name", "a",
                                                     "upstream_rq_time");
    stats_slots_t *s = stats_slots(st, 0);
    uint64_t values[] = {0, 500, 501, 1000, 3600000000ull, 3600000001ull};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
        stats_record(s, id, values[i]);
    stats_histogram_t h;
    stats_histogram_read(st, id, &h);
    assert_int_equal(h.buckets[0], 2);
    assert_int_equal(h.buckets[1], 2);
    assert_int_equal(h.buckets[STATS_HIST_BOUNDS - 1], 1);
    assert_int_equal(h.buckets[STATS_HIST_BOUNDS], 1);
    assert_int_equal(h.count, 6);
    assert_int_equal(h.min_us, 0);
    assert_int_equal(h.max_us, 3600000001ull);
    stats_store_free(st);
}

static void test_stats_histogram_sums_writers_and_keeps_min_max(void **state)
{
    (void)state;
    stats_store_t *st = stats_store_new(2);
    stat_id_t id = (stat_id_t)stats_define_histogram(st, "http", NULL, NULL, "rq_time");
    stats_record(stats_slots(st, 0), id, 3000);
    stats_record(stats_slots(st, 1), id, 2000);
    stats_record(stats_slots(st, 1), id, 9000);
    stats_histogram_t h;
    stats_histogram_read(st, id, &h);
    assert_int_equal(h.count, 3);
    assert_int_equal(h.sum_us, 14000);
    assert_int_equal(h.min_us, 2000);
    assert_int_equal(h.max_us, 9000);
    stats_store_free(st);
}

static void test_stats_histogram_quantiles_interpolate_within_min_max(void **state)
{
    (void)state;
    stats_histogram_t h = {0};
    assert_true(isnan(stats_histogram_quantile(&h, 0.5)));
    /* 2, 3, 4 and 5 ms all land in (1, 5]; clamped to [2, 5] the bucket spreads evenly. */
    h.buckets[2] = 4;
    h.count = 4;
    h.min_us = 2000;
    h.max_us = 5000;
    assert_true(stats_histogram_quantile(&h, 0) == 2.0);
    assert_true(stats_histogram_quantile(&h, 0.25) == 2.75);
    assert_true(stats_histogram_quantile(&h, 0.5) == 3.5);
    assert_true(stats_histogram_quantile(&h, 0.9) == 4.7);
    assert_true(stats_histogram_quantile(&h, 1) == 5.0);
    /* Ten at 0.1 ms and ten at 20 ms: the upper half lies in (10, 25] clamped to 20. */
    stats_histogram_t g = {0};
    g.buckets[0] = 10;
    g.buckets[4] = 10;
    g.count = 20;
    g.min_us = 100;
    g.max_us = 20000;
    assert_true(stats_histogram_quantile(&g, 0.25) == 0.3);
    assert_true(stats_histogram_quantile(&g, 0.75) == 15.0);
    assert_true(stats_histogram_quantile(&g, 1) == 20.0);
    /* Past the last bound the max is the upper edge. */
    stats_histogram_t o = {0};
    o.buckets[STATS_HIST_BOUNDS] = 2;
    o.count = 2;
    o.min_us = 4000000000ull;
    o.max_us = 5000000000ull;
    assert_true(stats_histogram_quantile(&o, 0.5) == 4500000.0);
}

static void test_stats_histogram_text_and_json_show_envoy_quantiles(void **state)
{
    (void)state;
    stats_store_t *st = stats_store_new(1);
    stat_id_t id = (stat_id_t)stats_define_histogram(st, "cluster", "envoy_cluster_name", "a",
                                                     "upstream_rq_time");
    stats_define_histogram(st, "cluster", "envoy_cluster_name", "b", "upstream_rq_time");
    stats_define(st, STAT_COUNTER, "cluster", "envoy_cluster_name", "a", "upstream_rq_total");
    for (uint64_t v = 2000; v <= 5000; v += 1000)
        stats_record(stats_slots(st, 0), id, v);

    char *text = render(st, stats_render_text);
    assert_string_equal(text, "cluster.a.upstream_rq_total: 0\n"
                              "cluster.a.upstream_rq_time: P0(nan,2) P25(nan,2.75) P50(nan,3.5) "
                              "P75(nan,4.25) P90(nan,4.7) P95(nan,4.85) P99(nan,4.97) "
                              "P99.5(nan,4.985) P99.9(nan,4.997) P100(nan,5)\n"
                              "cluster.b.upstream_rq_time: No recorded values\n");
    free(text);

    text = render(st, stats_render_json);
    const char *q = ",{\"interval\":null,\"cumulative\":";
    char want[2048];
    snprintf(want, sizeof(want),
             "{\"stats\":[\n"
             "{\"name\":\"cluster.a.upstream_rq_total\",\"value\":0},\n"
             "{\"histograms\":{\"supported_quantiles\":[0,25,50,75,90,95,99,99.5,99.9,100],"
             "\"computed_quantiles\":[\n"
             "{\"name\":\"cluster.a.upstream_rq_time\",\"values\":["
             "{\"interval\":null,\"cumulative\":2}%s2.75}%s3.5}%s4.25}%s4.7}%s4.85}%s4.97}"
             "%s4.985}%s4.997}%s5}]},\n"
             "{\"name\":\"cluster.b.upstream_rq_time\",\"values\":["
             "{\"interval\":null,\"cumulative\":null}%snull}%snull}%snull}%snull}%snull}%snull}"
             "%snull}%snull}%snull}]}\n"
             "]}}\n]}\n",
             q, q, q, q, q, q, q, q, q, q, q, q, q, q, q, q, q, q);
    assert_string_equal(text, want);
    free(text);
    stats_store_free(st);
}

static void test_stats_prometheus_histogram_is_cumulative_ending_in_count(void **state)
{
    (void)state;
    stats_store_t *st = stats_store_new(2);
    stats_tag_t tags[] = {{"reporter", "destination"}, {"response_code", "200"}};
    stat_id_t id = (stat_id_t)stats_define_histogram_tagged(
        st, "istio_request_duration_milliseconds", NULL, tags, 2);
    stats_record(stats_slots(st, 0), id, 300);           /* le 0.5 */
    stats_record(stats_slots(st, 1), id, 700);           /* le 1 */
    stats_record(stats_slots(st, 1), id, 42000);         /* le 50 */
    stats_record(stats_slots(st, 0), id, 7200000000ull); /* +Inf */
    char *text = render_prom(st);
    const char *L = "reporter=\"destination\",response_code=\"200\"";
    const char *le[] = {"0.5",   "1",      "5",      "10",      "25",      "50",    "100",
                        "250",   "500",    "1000",   "2500",    "5000",    "10000", "30000",
                        "60000", "300000", "600000", "1800000", "3600000", "+Inf"};
    const int cum[] = {1, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4};
    char want[4096];
    int off =
        snprintf(want, sizeof(want), "# TYPE istio_request_duration_milliseconds histogram\n");
    for (int i = 0; i < STATS_HIST_BUCKETS; i++)
        off += snprintf(want + off, sizeof(want) - off,
                        "istio_request_duration_milliseconds_bucket{%s,le=\"%s\"} %d\n", L, le[i],
                        cum[i]);
    snprintf(want + off, sizeof(want) - off,
             "istio_request_duration_milliseconds_sum{%s} 7200043\n"
             "istio_request_duration_milliseconds_count{%s} 4\n",
             L, L);
    assert_string_equal(text, want);
    free(text);
    stats_store_free(st);
}

static void test_stats_prometheus_untagged_histogram_sum_keeps_fraction(void **state)
{
    (void)state;
    stats_store_t *st = stats_store_new(1);
    stat_id_t id = (stat_id_t)stats_define_histogram(st, "http", NULL, NULL, "rq_time");
    stats_record(stats_slots(st, 0), id, 1250);
    char *text = render_prom(st);
    assert_non_null(strstr(text, "# TYPE envoy_http_rq_time histogram\n"
                                 "envoy_http_rq_time_bucket{le=\"0.5\"} 0\n"
                                 "envoy_http_rq_time_bucket{le=\"1\"} 0\n"
                                 "envoy_http_rq_time_bucket{le=\"5\"} 1\n"));
    assert_non_null(strstr(text, "envoy_http_rq_time_bucket{le=\"+Inf\"} 1\n"
                                 "envoy_http_rq_time_sum 1.25\n"
                                 "envoy_http_rq_time_count 1\n"));
    free(text);
    stats_store_free(st);
}

static void test_stats_histogram_never_straddles_a_block(void **state)
{
    (void)state;
    stats_store_t *st = stats_store_new(1);
    char name[16];
    for (unsigned i = 0; i < STATS_BLOCK_SIZE - 5; i++) {
        snprintf(name, sizeof(name), "c%u", i);
        stats_define(st, STAT_COUNTER, "x", NULL, name, "n");
    }
    int64_t id = stats_define_histogram(st, "x", NULL, NULL, "h");
    assert_int_equal(id, STATS_BLOCK_SIZE);
    stats_record(stats_slots(st, 0), (stat_id_t)id, 1);
    assert_int_equal(stats_define(st, STAT_COUNTER, "x", NULL, NULL, "after"),
                     STATS_BLOCK_SIZE + STATS_HIST_SLOTS);
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
        cmocka_unit_test(test_stats_defined_by_many_threads_lose_no_counts),
        cmocka_unit_test(test_stats_tagged_name_defaults_to_istio_form),
        cmocka_unit_test(test_stats_tagged_renders_labels_in_order_escaped),
        cmocka_unit_test(test_stats_prometheus_names_are_sanitised),
        cmocka_unit_test(test_stats_same_name_other_kind_is_refused),
        cmocka_unit_test(test_stats_cache_maps_keys_to_ids),
        cmocka_unit_test(test_stats_histogram_buckets_are_inclusive_upper_bounds),
        cmocka_unit_test(test_stats_histogram_sums_writers_and_keeps_min_max),
        cmocka_unit_test(test_stats_histogram_quantiles_interpolate_within_min_max),
        cmocka_unit_test(test_stats_histogram_text_and_json_show_envoy_quantiles),
        cmocka_unit_test(test_stats_prometheus_histogram_is_cumulative_ending_in_count),
        cmocka_unit_test(test_stats_prometheus_untagged_histogram_sum_keeps_fraction),
        cmocka_unit_test(test_stats_histogram_never_straddles_a_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
