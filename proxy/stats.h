/* Named counters and gauges kept per worker as plain integers and summed when read.
 *
 * Stats are defined on the main thread (while building a config snapshot) and get a small id;
 * the same name always maps to the same id, so values survive config changes. Each thread that
 * counts (every worker, and the main thread as the last slot) owns a private slot array: writers
 * never share a cache line and take no lock. Readers (the admin endpoint) sum all slots. */
#ifndef REMORA_STATS_H
#define REMORA_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef uint32_t stat_id_t;

typedef enum { STAT_COUNTER, STAT_GAUGE } stat_kind_t;

#define STATS_BLOCK_SHIFT 9
#define STATS_BLOCK_SIZE  (1u << STATS_BLOCK_SHIFT)
#define STATS_MAX_BLOCKS  1024

/* One thread's private values; block pointers are filled by the main thread before any id in
 * that block is published to the writer. */
typedef struct stats_slots {
    _Atomic uint64_t *blocks[STATS_MAX_BLOCKS];
} stats_slots_t;

typedef struct stats_store stats_store_t;

/* A stat as the admin endpoint reports it: name parts plus the summed value. */
typedef struct stats_entry {
    const char *name;      /* full dotted name: "cluster.svc-a.upstream_cx_total" */
    const char *scope;     /* "cluster" */
    const char *tag_name;  /* Prometheus label name ("envoy_cluster_name") or NULL */
    const char *tag_value; /* "svc-a" or NULL */
    const char *metric;    /* "upstream_cx_total" */
    stat_kind_t kind;
    int64_t value;
} stats_entry_t;

/* Creates a store for nthreads writers (workers + main). Returns NULL on allocation failure. */
stats_store_t *stats_store_new(unsigned nthreads);
void stats_store_free(stats_store_t *store);

/* Defines (or finds) the stat scope[.tag_value].metric. tag_name is the Prometheus label name
 * for tag_value. Strings are copied. Returns the id, or a negative error (-ENOMEM, -ENOSPC).
 * Main thread only. */
int64_t stats_define(stats_store_t *store, stat_kind_t kind, const char *scope,
                     const char *tag_name, const char *tag_value, const char *metric);

/* The slot array of writer thread `index` (0..nthreads-1). Borrowed; lives as long as the store. */
stats_slots_t *stats_slots(stats_store_t *store, unsigned index);

static inline void stats_add(stats_slots_t *slots, stat_id_t id, int64_t delta)
{
    _Atomic uint64_t *p = &slots->blocks[id >> STATS_BLOCK_SHIFT][id & (STATS_BLOCK_SIZE - 1)];
    /* A relaxed load and store, not an atomic RMW: only this thread writes the slot, and readers
     * just need untorn values. Compiles to a plain add on x86-64. */
    atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + (uint64_t)delta,
                          memory_order_relaxed);
}

static inline void stats_inc(stats_slots_t *slots, stat_id_t id)
{
    stats_add(slots, id, 1);
}

/* Sum of one stat over all writers. */
int64_t stats_value(const stats_store_t *store, stat_id_t id);

/* Snapshot of every stat sorted by full name; *out is a new array (free with stats_list_free).
 * Returns the count or a negative error. Main thread only. */
int stats_list(const stats_store_t *store, stats_entry_t **out);
void stats_list_free(stats_entry_t *list);

/* Renders the list for the admin endpoint into a new malloc'd string (NUL-terminated).
 * filter, when not NULL, keeps only stats whose name contains it. */
char *stats_render_text(const stats_entry_t *list, int n, const char *filter);
char *stats_render_json(const stats_entry_t *list, int n, const char *filter);
char *stats_render_prometheus(const stats_entry_t *list, int n);

#endif
