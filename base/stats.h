/* Named counters, gauges and latency histograms kept per worker as plain integers and summed
 * when read.
 *
 * A stat is defined once and gets a small id; the same name always maps to the same id, so
 * values survive config changes. Definition may happen on any thread (the main thread while
 * building a snapshot, or a worker when a request brings a new label combination); it takes the
 * registry mutex, so a worker keeps the ids it needs in its own stats_cache_t and only defines on
 * a miss. Each thread that counts (every worker, and the main thread as the last slot) owns a
 * private slot array: writers never share a cache line and take no lock. Readers (the admin
 * endpoint) sum all slots.
 *
 * Names cost little: every distinct string is stored once and shared (the scope, the label name,
 * each metric, each cluster's name), a stat is 8 bytes pointing at them, and the text name and
 * Prometheus family are written only when the stats are listed. Defining a name that exists
 * hashes its parts as given, formatting and allocating nothing. */
#ifndef REMORA_STATS_H
#define REMORA_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef uint32_t stat_id_t;

typedef enum { STAT_COUNTER, STAT_GAUGE, STAT_HISTOGRAM } stat_kind_t;

#define STATS_BLOCK_SHIFT 9
#define STATS_BLOCK_SIZE  (1u << STATS_BLOCK_SHIFT)
#define STATS_MAX_BLOCKS  1024

/* One thread's private values. A block pointer is stored (under the registry mutex, with release
 * order) before any id in that block is returned, so a writer that got an id from stats_define,
 * or from a snapshot handed over with release/acquire, finds its block allocated. */
typedef struct stats_slots {
    _Atomic uint64_t *_Atomic blocks[STATS_MAX_BLOCKS];
} stats_slots_t;

typedef struct stats_store stats_store_t;

/* One Prometheus label. name must be a valid label name ([a-zA-Z_][a-zA-Z0-9_]*; other bytes
 * are rendered as '_'); value is any string (escaped when rendered). */
typedef struct stats_tag {
    const char *name;
    const char *value;
} stats_tag_t;

/* Histogram buckets: Envoy's default bounds (milliseconds) 0.5 1 5 10 25 50 100 250 500 1000
 * 2500 5000 10000 30000 60000 300000 600000 1800000 3600000, plus +Inf. Values are recorded in
 * microseconds so that sub-millisecond sidecar latencies interpolate sensibly; they are shown in
 * milliseconds everywhere. A bucket holds values <= its bound (Prometheus `le`). */
#define STATS_HIST_BOUNDS  19
#define STATS_HIST_BUCKETS (STATS_HIST_BOUNDS + 1)
/* Slot layout of one histogram, from its id: the buckets, then the sum, then ~min (so that the
 * zeroed slot means "no value yet"), then max. Never crosses a block. */
#define STATS_HIST_SLOT_SUM (STATS_HIST_BUCKETS)
#define STATS_HIST_SLOT_MIN (STATS_HIST_BUCKETS + 1)
#define STATS_HIST_SLOT_MAX (STATS_HIST_BUCKETS + 2)
#define STATS_HIST_SLOTS    (STATS_HIST_BUCKETS + 3)

extern const uint64_t stats_hist_bounds_us[STATS_HIST_BOUNDS];

/* A histogram summed over all writers. */
typedef struct stats_histogram {
    uint64_t buckets[STATS_HIST_BUCKETS]; /* per bucket, not cumulative */
    uint64_t count;                       /* sum of buckets */
    uint64_t sum_us;
    uint64_t min_us, max_us; /* 0 when count is 0 */
} stats_histogram_t;

/* A stat as the admin endpoint reports it: name parts plus the summed value. name, prom_family
 * and the tags array belong to the list (stats_list); the other strings, the tags' included, are
 * borrowed from the store and live as long as it does. */
typedef struct stats_entry {
    const char *name;        /* text name: "cluster.svc-a.upstream_cx_total" */
    const char *prom_family; /* "envoy_cluster_upstream_cx_total", "istio_requests_total" */
    const stats_tag_t *tags; /* Prometheus labels in order (n_tags of them) */
    size_t n_tags;
    /* The parts given to stats_define / stats_define_histogram; NULL for tagged stats. */
    const char *scope;     /* "cluster" */
    const char *tag_name;  /* Prometheus label name ("envoy_cluster_name") or NULL */
    const char *tag_value; /* "svc-a" or NULL */
    const char *metric;    /* "upstream_cx_total" */
    stat_kind_t kind;
    stat_id_t id;
    int64_t value;                 /* counters and gauges; the sample count for histograms */
    const stats_histogram_t *hist; /* histograms only; owned by the list */
} stats_entry_t;

/* Creates a store for nthreads writers (workers + main). Returns a new store the caller frees
 * with stats_store_free, or NULL on allocation failure. */
stats_store_t *stats_store_new(unsigned nthreads);
/* Takes store and frees it; no other thread may use it or any slot array any more. */
void stats_store_free(stats_store_t *store);

/* Defines (or finds) the stat scope[.tag_value].metric, rendered in Prometheus as
 * envoy_<scope>_<metric>{<tag_name>="<tag_value>"}. tag_name is the Prometheus label name for
 * tag_value ("name" when NULL). Strings are copied, each distinct one once per store; a name that
 * exists is found from its parts, nothing built. Returns the id, or a negative error
 * (-ENOMEM, -ENOSPC when the store is full, -EEXIST when the name exists with another kind).
 * Any thread; takes the registry mutex. */
int64_t stats_define(stats_store_t *store, stat_kind_t kind, const char *scope,
                     const char *tag_name, const char *tag_value, const char *metric);

/* Defines (or finds) a counter or gauge with any number of labels. prom_family is the exact
 * Prometheus family ("istio_requests_total", no prefix added); tags become its labels in order.
 * name is the text name used by /stats and for identity; when NULL it is built the way Istio's
 * stats show them: "<tag>=.=<value>;.;" for each tag, then the family, e.g.
 * "reporter=.=destination;.;response_code=.=200;.;istio_requests_total". The first definition of
 * a name fixes its family and labels. Strings are copied. Errors and threads as stats_define. */
int64_t stats_define_tagged(stats_store_t *store, stat_kind_t kind, const char *prom_family,
                            const char *name, const stats_tag_t *tags, size_t n_tags);

/* Latency histograms, named and rendered like stats_define / stats_define_tagged; the id is the
 * first of STATS_HIST_SLOTS consecutive slots and is only valid with stats_record. */
int64_t stats_define_histogram(stats_store_t *store, const char *scope, const char *tag_name,
                               const char *tag_value, const char *metric);
int64_t stats_define_histogram_tagged(stats_store_t *store, const char *prom_family,
                                      const char *name, const stats_tag_t *tags, size_t n_tags);

/* The slot array of writer thread `index` (0..nthreads-1), store borrowed. Returns a pointer
 * borrowed from the store; lives as long as the store. */
stats_slots_t *stats_slots(stats_store_t *store, unsigned index);

static inline _Atomic uint64_t *stats_slot_ptr(stats_slots_t *slots, stat_id_t id)
{
    /* Relaxed is enough: the id reached this thread through a synchronising path (the registry
     * mutex or a published snapshot), which orders the block's allocation before this load. */
    _Atomic uint64_t *block =
        atomic_load_explicit(&slots->blocks[id >> STATS_BLOCK_SHIFT], memory_order_relaxed);
    return &block[id & (STATS_BLOCK_SIZE - 1)];
}

/* A relaxed load and store, not an atomic RMW: only this thread writes the slot, and readers
 * just need untorn values. Compiles to a plain add on x86-64. */
static inline void stats_slot_add(_Atomic uint64_t *p, uint64_t delta)
{
    atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + delta,
                          memory_order_relaxed);
}

static inline void stats_add(stats_slots_t *slots, stat_id_t id, int64_t delta)
{
    stats_slot_add(stats_slot_ptr(slots, id), (uint64_t)delta);
}

static inline void stats_inc(stats_slots_t *slots, stat_id_t id)
{
    stats_add(slots, id, 1);
}

/* Records one value, in microseconds, into histogram `id` of this writer: O(1), no lock. */
static inline void stats_record(stats_slots_t *slots, stat_id_t id, uint64_t value_us)
{
    _Atomic uint64_t *h = stats_slot_ptr(slots, id);
    unsigned b = 0;
    /* Latencies cluster in the first few buckets, so a forward scan beats a binary search. */
    while (b < STATS_HIST_BOUNDS && value_us > stats_hist_bounds_us[b])
        b++;
    stats_slot_add(&h[b], 1);
    stats_slot_add(&h[STATS_HIST_SLOT_SUM], value_us);
    if (~value_us > atomic_load_explicit(&h[STATS_HIST_SLOT_MIN], memory_order_relaxed))
        atomic_store_explicit(&h[STATS_HIST_SLOT_MIN], ~value_us, memory_order_relaxed);
    if (value_us > atomic_load_explicit(&h[STATS_HIST_SLOT_MAX], memory_order_relaxed))
        atomic_store_explicit(&h[STATS_HIST_SLOT_MAX], value_us, memory_order_relaxed);
}

/* Sum of one counter or gauge over all writers (store borrowed). Any thread. */
int64_t stats_value(const stats_store_t *store, stat_id_t id);

/* Histogram `id` summed over all writers (store borrowed) into *out (the caller's). Any
 * thread. */
void stats_histogram_read(const stats_store_t *store, stat_id_t id, stats_histogram_t *out);

/* The q-quantile (0..1) in milliseconds, interpolated linearly inside the bucket that holds it
 * and clamped to the observed min and max (so q=0 is the min, q=1 the max). NaN when empty.
 * h borrowed. */
double stats_histogram_quantile(const stats_histogram_t *h, double q);

/* Snapshot of every stat (store borrowed) sorted by full name; *out is a new array, with the
 * names, families, tag arrays and histograms its entries point to, owned by the caller (free
 * with stats_list_free). Returns the count or a negative error. Any thread (takes the registry
 * mutex while copying pointers; the names are written after). */
int stats_list(const stats_store_t *store, stats_entry_t **out);
/* Takes list (from stats_list) and frees it. */
void stats_list_free(stats_entry_t *list);

/* Renders the list (borrowed) for the admin endpoint into a new malloc'd string (NUL-terminated)
 * the caller frees with free(), or NULL on allocation failure. filter borrowed for the call.
 * filter, when not NULL, keeps only stats whose name contains it. Text: counters and gauges "name:
 * value", then histograms in Envoy's quantile form. JSON: Envoy's
 * {"stats":[{"name","value"}…,{"histograms":{…}}]}. Prometheus: text exposition 0.0.4, one # TYPE
 * per family, histograms as _bucket/_sum/_count. */
char *stats_render_text(const stats_entry_t *list, int n, const char *filter);
char *stats_render_json(const stats_entry_t *list, int n, const char *filter);
char *stats_render_prometheus(const stats_entry_t *list, int n);

/* A worker's private map from a caller-computed 64-bit key (e.g. a hash of the label values) to
 * a stat id, so that the request path does one lookup instead of building a name and taking the
 * registry mutex. Owned by one thread; a zeroed struct is an empty cache. Two label sets whose
 * keys collide would share a stat, so build keys from the full label set with stats_key_*. */
typedef struct stats_cache {
    uint64_t *keys;
    uint32_t *ids; /* id + 1; 0 marks an empty slot */
    uint32_t cap;  /* power of two, 0 before the first put */
    uint32_t n;
} stats_cache_t;

/* Returns 1 and sets *id when key is cached, else 0. c borrowed. */
static inline int stats_cache_get(const stats_cache_t *c, uint64_t key, stat_id_t *id)
{
    if (c->cap == 0)
        return 0;
    uint32_t mask = c->cap - 1;
    for (uint32_t i = (uint32_t)(key ^ (key >> 32)) & mask;; i = (i + 1) & mask) {
        if (c->ids[i] == 0)
            return 0;
        if (c->keys[i] == key) {
            *id = c->ids[i] - 1;
            return 1;
        }
    }
}

/* Caches key → id (replacing an existing entry) in c (borrowed; owns its table). Returns 0 or
 * -ENOMEM. */
int stats_cache_put(stats_cache_t *c, uint64_t key, stat_id_t id);
/* Frees c's table and empties c (the caller's). */
void stats_cache_free(stats_cache_t *c);

/* Key building: FNV-1a over each part, starting from STATS_KEY_INIT. Include a separator (the
 * length) between variable parts so ("ab","c") and ("a","bc") differ. */
#define STATS_KEY_INIT 14695981039346656037ull
static inline uint64_t stats_key_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return (h ^ n) * 1099511628211ull;
}

static inline uint64_t stats_key_u64(uint64_t h, uint64_t v)
{
    return stats_key_bytes(h, &v, sizeof(v));
}

#endif
