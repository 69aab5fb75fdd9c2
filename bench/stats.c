/* Micro-measurement of the stats registry: the heap the stats of N clusters take (the 29
 * counters and gauges and the one histogram each cluster defines, as the snapshot builder's
 * define_cluster_stats does) and how long defining them takes, first and again (every config
 * build defines every cluster's stats again and finds them existing). It measures and prints;
 * it never fails on a number.
 *
 *   build/bench/stats [clusters [writers]]      defaults: 1000 clusters, 2 writers (one worker
 *                                               and the main thread, as --concurrency 1) */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/stats.h"

static const struct {
    stat_kind_t kind;
    const char *metric;
} cluster_stats[] = {
    {STAT_COUNTER, "upstream_cx_total"},
    {STAT_GAUGE, "upstream_cx_active"},
    {STAT_COUNTER, "upstream_cx_connect_fail"},
    {STAT_COUNTER, "upstream_cx_connect_timeout"},
    {STAT_COUNTER, "upstream_cx_rx_bytes_total"},
    {STAT_COUNTER, "upstream_cx_tx_bytes_total"},
    {STAT_COUNTER, "upstream_cx_destroy_local"},
    {STAT_COUNTER, "upstream_cx_destroy_remote"},
    {STAT_COUNTER, "upstream_cx_none_healthy"},
    {STAT_COUNTER, "upstream_cx_idle_timeout"},
    {STAT_COUNTER, "upstream_rq_total"},
    {STAT_COUNTER, "upstream_rq_1xx"},
    {STAT_COUNTER, "upstream_rq_2xx"},
    {STAT_COUNTER, "upstream_rq_3xx"},
    {STAT_COUNTER, "upstream_rq_4xx"},
    {STAT_COUNTER, "upstream_rq_5xx"},
    {STAT_COUNTER, "upstream_rq_timeout"},
    {STAT_COUNTER, "upstream_rq_rx_reset"},
    {STAT_COUNTER, "upstream_rq_tx_reset"},
    {STAT_COUNTER, "upstream_cx_destroy_local_with_active_rq"},
    {STAT_COUNTER, "upstream_cx_destroy_remote_with_active_rq"},
    {STAT_COUNTER, "upstream_rq_retry"},
    {STAT_COUNTER, "upstream_rq_pending_overflow"},
    {STAT_COUNTER, "upstream_cx_overflow"},
    {STAT_COUNTER, "update_attempt"},
    {STAT_COUNTER, "update_success"},
    {STAT_COUNTER, "update_failure"},
    {STAT_COUNTER, "membership_change"},
    {STAT_GAUGE, "membership_total"},
};
#define N_CLUSTER_STATS (sizeof(cluster_stats) / sizeof(cluster_stats[0]))

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Defines every cluster's stats; returns 0 or the first error. */
static int define_all(stats_store_t *st, const char *fmt, int clusters)
{
    char name[128];
    for (int c = 0; c < clusters; c++) {
        snprintf(name, sizeof(name), fmt, c);
        for (size_t i = 0; i < N_CLUSTER_STATS; i++) {
            int64_t id = stats_define(st, cluster_stats[i].kind, "cluster", "envoy_cluster_name",
                                      name, cluster_stats[i].metric);
            if (id < 0)
                return (int)id;
        }
        int64_t id =
            stats_define_histogram(st, "cluster", "envoy_cluster_name", name, "upstream_rq_time");
        if (id < 0)
            return (int)id;
    }
    return 0;
}

/* Bytes in use on the heap, from the arena and in blocks of their own (mmap'd). */
static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* The second definition of every stat, as each config build does: a function of its own so that
 * a profiler can single it out (valgrind --toggle-collect=define_again). */
static __attribute__((noinline)) int define_again(stats_store_t *st, const char *fmt, int clusters)
{
    return define_all(st, fmt, clusters);
}

static int measure(const char *label, const char *fmt, int clusters, unsigned writers)
{
    malloc_trim(0);
    size_t before = heap_in_use();
    stats_store_t *st = stats_store_new(writers);
    if (st == NULL)
        return -1;
    double t0 = now_ms();
    int rc = define_all(st, fmt, clusters);
    double t1 = now_ms();
    size_t after = heap_in_use();
    rc = rc ? rc : define_again(st, fmt, clusters);
    double t2 = now_ms();
    stats_entry_t *list;
    int n = rc ? rc : stats_list(st, &list);
    char *prom = n < 0 ? NULL : stats_render_prometheus(list, n);
    double t3 = now_ms();
    if (n >= 0)
        stats_list_free(list);
    size_t prom_len = prom ? strlen(prom) : 0;
    free(prom);
    stats_store_free(st);
    if (rc < 0 || n < 0 || prom_len == 0) {
        fprintf(stderr, "stats bench: %s: defining or rendering failed (%d)\n", label, rc ? rc : n);
        return -1;
    }
    size_t grown = after - before;
    printf("| %s | %d | %zu | %.0f | %.2f | %.2f | %.2f | %.1f |\n", label, clusters, grown,
           (double)grown / clusters, t1 - t0, (t2 - t1) * 1e3 / clusters,
           (t2 - t1) * 1e6 / ((double)clusters * (N_CLUSTER_STATS + 1)), t3 - t2);
    return 0;
}

int main(int argc, char **argv)
{
    int clusters = argc > 1 ? atoi(argv[1]) : 1000;
    unsigned writers = argc > 2 ? (unsigned)atoi(argv[2]) : 2;
    if (clusters <= 0 || writers == 0) {
        fprintf(stderr, "usage: %s [clusters [writers]]\n", argv[0]);
        return 2;
    }
    printf("%zu stats a cluster (%zu counters and gauges, 1 histogram), %u writers\n\n",
           N_CLUSTER_STATS + 1, N_CLUSTER_STATS, writers);
    printf("| cluster names | clusters | heap (B) | heap per cluster (B) | first define (ms) | "
           "define again, per cluster (µs) | … per stat (ns) | list + Prometheus (ms) |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    if (measure("`c<N>`", "c%d", clusters, writers) != 0 ||
        measure("`outbound|8080||svc-<N>.default.svc.cluster.local`",
                "outbound|8080||svc-%d.default.svc.cluster.local", clusters, writers) != 0)
        return 1;
    return 0;
}
