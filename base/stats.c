/* The stats registry (names → ids, behind one mutex: definition is the rare path), the
 * per-writer slot arrays it sums, histogram reading and quantiles, the per-worker id cache, and
 * the listing the admin endpoint renders (base/stats_render.c). Names are stored shared, in
 * base/stats_names.c. */
#include "base/stats.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/stats_names.h"

const uint64_t stats_hist_bounds_us[STATS_HIST_BOUNDS] = {
    500,      1000,      5000,      10000,      25000,      50000,    100000,
    250000,   500000,    1000000,   2500000,    5000000,    10000000, 30000000,
    60000000, 300000000, 600000000, 1800000000, 3600000000,
};

struct stats_store {
    pthread_mutex_t lock; /* guards everything below except the slots' contents */
    unsigned nthreads;
    stats_slots_t *slots; /* nthreads of them */
    stats_names_t names;
    uint32_t next_id; /* first unused slot */
};

/* The admin side only reads, but still has to take the mutex; the store is never truly const. */
static void store_lock(const stats_store_t *st)
{
    pthread_mutex_lock((pthread_mutex_t *)&st->lock);
}

static void store_unlock(const stats_store_t *st)
{
    pthread_mutex_unlock((pthread_mutex_t *)&st->lock);
}

stats_store_t *stats_store_new(unsigned nthreads)
{
    stats_store_t *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    if (pthread_mutex_init(&st->lock, NULL) != 0) {
        free(st);
        return NULL;
    }
    st->nthreads = nthreads;
    st->slots = calloc(nthreads, sizeof(*st->slots));
    if (st->slots == NULL) {
        stats_store_free(st);
        return NULL;
    }
    return st;
}

void stats_store_free(stats_store_t *st)
{
    if (st == NULL)
        return;
    if (st->slots) {
        for (unsigned t = 0; t < st->nthreads; t++)
            for (unsigned b = 0; b < STATS_MAX_BLOCKS; b++)
                free((void *)st->slots[t].blocks[b]);
    }
    stats_names_free(&st->names);
    pthread_mutex_destroy(&st->lock);
    free(st->slots);
    free(st);
}

stats_slots_t *stats_slots(stats_store_t *st, unsigned index)
{
    return index < st->nthreads ? &st->slots[index] : NULL;
}

/* Reserves the slots of a new stat and makes sure every writer has the block that holds them.
 * The block pointers are stored with release order before the id can be returned. */
static int64_t slots_reserve(stats_store_t *st, stat_kind_t kind)
{
    uint32_t width = kind == STAT_HISTOGRAM ? STATS_HIST_SLOTS : 1;
    uint32_t id = st->next_id;
    if ((id & (STATS_BLOCK_SIZE - 1)) + width > STATS_BLOCK_SIZE)
        id = (id | (STATS_BLOCK_SIZE - 1)) + 1; /* a histogram never straddles two blocks */
    if (id + width > STATS_MAX_BLOCKS * STATS_BLOCK_SIZE)
        return -ENOSPC;
    uint32_t block = id >> STATS_BLOCK_SHIFT;
    for (unsigned t = 0; t < st->nthreads; t++) {
        if (atomic_load_explicit(&st->slots[t].blocks[block], memory_order_relaxed) != NULL)
            continue;
        _Atomic uint64_t *b = calloc(STATS_BLOCK_SIZE, sizeof(uint64_t));
        if (b == NULL)
            return -ENOMEM;
        atomic_store_explicit(&st->slots[t].blocks[block], b, memory_order_release);
    }
    return id;
}

/* Finds the stat by its name's pieces (nothing formatted, nothing allocated when it exists);
 * only a new stat has its strings interned and its slots reserved. */
static int64_t define(stats_store_t *st, const stat_request_t *rq)
{
    store_lock(st);
    stat_kind_t kind;
    stat_id_t found_id;
    int64_t found = stats_names_find(&st->names, rq, &kind, &found_id);
    int64_t id;
    if (found >= 0)
        id = kind == rq->kind ? (int64_t)found_id : -EEXIST;
    else if (found != -1)
        id = found;
    else if ((id = slots_reserve(st, rq->kind)) >= 0) {
        int rc = stats_names_add(&st->names, rq, (stat_id_t)id);
        if (rc < 0)
            id = rc;
        else
            st->next_id = (uint32_t)id + (rq->kind == STAT_HISTOGRAM ? STATS_HIST_SLOTS : 1);
    }
    store_unlock(st);
    return id;
}

int64_t stats_define(stats_store_t *st, stat_kind_t kind, const char *scope, const char *tag_name,
                     const char *tag_value, const char *metric)
{
    if (kind == STAT_HISTOGRAM)
        return -EINVAL; /* histogram ids are only valid with stats_record */
    stat_request_t rq = {.kind = kind,
                         .scope = scope,
                         .tag_name = tag_name,
                         .tag_value = tag_value,
                         .metric = metric};
    return define(st, &rq);
}

int64_t stats_define_tagged(stats_store_t *st, stat_kind_t kind, const char *prom_family,
                            const char *name, const stats_tag_t *tags, size_t n_tags)
{
    if (kind == STAT_HISTOGRAM)
        return -EINVAL;
    stat_request_t rq = {.kind = kind,
                         .tagged = true,
                         .family = prom_family,
                         .name = name,
                         .tags = tags,
                         .n_tags = n_tags};
    return define(st, &rq);
}

int64_t stats_define_histogram(stats_store_t *st, const char *scope, const char *tag_name,
                               const char *tag_value, const char *metric)
{
    stat_request_t rq = {.kind = STAT_HISTOGRAM,
                         .scope = scope,
                         .tag_name = tag_name,
                         .tag_value = tag_value,
                         .metric = metric};
    return define(st, &rq);
}

int64_t stats_define_histogram_tagged(stats_store_t *st, const char *prom_family, const char *name,
                                      const stats_tag_t *tags, size_t n_tags)
{
    stat_request_t rq = {.kind = STAT_HISTOGRAM,
                         .tagged = true,
                         .family = prom_family,
                         .name = name,
                         .tags = tags,
                         .n_tags = n_tags};
    return define(st, &rq);
}

/* The block holding id in writer t, or NULL when no stat there is defined yet. Acquire pairs
 * with slots_reserve: a reader that sees the pointer sees the zeroed block. */
static const _Atomic uint64_t *reader_block(const stats_store_t *st, unsigned t, stat_id_t id)
{
    return atomic_load_explicit(&st->slots[t].blocks[id >> STATS_BLOCK_SHIFT],
                                memory_order_acquire);
}

static uint64_t slot_load(const _Atomic uint64_t *block, stat_id_t id)
{
    return atomic_load_explicit(&block[id & (STATS_BLOCK_SIZE - 1)], memory_order_relaxed);
}

int64_t stats_value(const stats_store_t *st, stat_id_t id)
{
    uint64_t sum = 0;
    for (unsigned t = 0; t < st->nthreads; t++) {
        const _Atomic uint64_t *block = reader_block(st, t, id);
        if (block)
            sum += slot_load(block, id);
    }
    return (int64_t)sum;
}

void stats_histogram_read(const stats_store_t *st, stat_id_t id, stats_histogram_t *out)
{
    memset(out, 0, sizeof(*out));
    uint64_t inv_min = 0;
    for (unsigned t = 0; t < st->nthreads; t++) {
        const _Atomic uint64_t *block = reader_block(st, t, id);
        if (block == NULL)
            continue;
        for (unsigned b = 0; b < STATS_HIST_BUCKETS; b++)
            out->buckets[b] += slot_load(block, id + b);
        out->sum_us += slot_load(block, id + STATS_HIST_SLOT_SUM);
        uint64_t m = slot_load(block, id + STATS_HIST_SLOT_MIN);
        if (m > inv_min)
            inv_min = m;
        m = slot_load(block, id + STATS_HIST_SLOT_MAX);
        if (m > out->max_us)
            out->max_us = m;
    }
    for (unsigned b = 0; b < STATS_HIST_BUCKETS; b++)
        out->count += out->buckets[b];
    out->min_us = out->count ? ~inv_min : 0;
}

double stats_histogram_quantile(const stats_histogram_t *h, double q)
{
    if (h->count == 0)
        return NAN;
    double rank = q * (double)h->count;
    uint64_t before = 0;
    unsigned b = 0;
    for (; b < STATS_HIST_BUCKETS - 1; b++) {
        if (h->buckets[b] > 0 && (double)(before + h->buckets[b]) >= rank)
            break;
        before += h->buckets[b];
    }
    double lo = b == 0 ? 0 : (double)stats_hist_bounds_us[b - 1];
    double hi = b < STATS_HIST_BOUNDS ? (double)stats_hist_bounds_us[b] : (double)h->max_us;
    if ((double)h->min_us > lo)
        lo = (double)h->min_us;
    if ((double)h->max_us < hi)
        hi = (double)h->max_us;
    if (hi < lo) /* min/max read while a writer was recording */
        hi = lo;
    double in = h->buckets[b] ? (rank - (double)before) / (double)h->buckets[b] : 1;
    if (in < 0)
        in = 0;
    if (in > 1)
        in = 1;
    return (lo + (hi - lo) * in) / 1000.0;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const stats_entry_t *)a)->name, ((const stats_entry_t *)b)->name);
}

/* A list is one block behind the entries the caller gets: the entries, the histogram summaries
 * and the labels they point at; the names and families are in a second block, `chars`. */
struct list_block {
    char *chars;
    stats_entry_t entries[];
};

/* An entry's text name as pieces. Before its names are written, a tagged entry holds its given
 * name (or NULL: built from its labels) in `name` and its family as given in `prom_family`. */
static stat_name_t entry_name(const stats_entry_t *e)
{
    if (e->scope)
        return (stat_name_t){
            .form = NAME_SCOPED, .scope = e->scope, .tag_value = e->tag_value, .metric = e->metric};
    if (e->name)
        return (stat_name_t){.form = NAME_GIVEN, .given = e->name};
    return (stat_name_t){
        .form = NAME_BUILT, .family = e->prom_family, .tags = e->tags, .n_tags = e->n_tags};
}

/* The Prometheus family: envoy_<scope>_<metric> for scoped stats, the given one for tagged
 * stats, escaped. */
static size_t family_len(const stats_entry_t *e)
{
    if (e->scope == NULL)
        return prom_name_len(e->prom_family);
    return strlen("envoy__") + prom_name_len(e->scope) + prom_name_len(e->metric);
}

static void family_write(const stats_entry_t *e, char *dst)
{
    if (e->scope == NULL) {
        *prom_name_write(dst, e->prom_family, false) = '\0';
        return;
    }
    memcpy(dst, "envoy_", 6);
    dst = prom_name_write(dst + 6, e->scope, false);
    *dst++ = '_';
    *prom_name_write(dst, e->metric, false) = '\0';
}

/* Writes every entry's name and family into one new block, *chars. Outside the mutex: the
 * strings entries point at never move or go while the store lives. */
static int list_write_names(stats_entry_t *list, uint32_t n, char **chars)
{
    size_t size = 1;
    for (uint32_t i = 0; i < n; i++) {
        stat_name_t name = entry_name(&list[i]);
        size += stat_name_len(&name) + 1 + family_len(&list[i]) + 1;
    }
    char *p = *chars = malloc(size);
    if (p == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        stats_entry_t *e = &list[i];
        stat_name_t name = entry_name(e);
        stat_name_write(&name, p);
        char *family = p + strlen(p) + 1;
        family_write(e, family);
        e->name = p;
        e->prom_family = family;
        p = family + strlen(family) + 1;
    }
    return 0;
}

int stats_list(const stats_store_t *st, stats_entry_t **out)
{
    store_lock(st);
    const stats_names_t *names = &st->names;
    uint32_t n = stats_names_count(names), nhist = 0;
    size_t ntags = 0;
    stat_view_t v;
    for (uint32_t i = 0; i < n; i++) {
        stats_names_view(names, i, &v, NULL);
        nhist += v.kind == STAT_HISTOGRAM;
        ntags += stats_names_tag_count(names, i);
    }
    struct list_block *block =
        malloc(sizeof(*block) + n * sizeof(stats_entry_t) + nhist * sizeof(stats_histogram_t) +
               ntags * sizeof(stats_tag_t));
    if (block == NULL) {
        store_unlock(st);
        return -ENOMEM;
    }
    stats_entry_t *list = block->entries;
    stats_histogram_t *hists = (stats_histogram_t *)(list + n);
    stats_tag_t *tags = (stats_tag_t *)(hists + nhist);
    /* Under the mutex only pointers are copied; names are written and values summed after, so
     * that workers defining stats do not wait on the admin. */
    for (uint32_t i = 0; i < n; i++) {
        size_t nt = stats_names_tag_count(names, i);
        stats_names_view(names, i, &v, tags);
        list[i] = (stats_entry_t){.name = v.name.form == NAME_GIVEN ? v.name.given : NULL,
                                  .prom_family = v.family,
                                  .tags = nt ? tags : NULL,
                                  .n_tags = nt,
                                  .scope = v.scope,
                                  .tag_name = v.tag_name,
                                  .tag_value = v.tag_value,
                                  .metric = v.metric,
                                  .kind = v.kind,
                                  .id = v.id};
        tags += nt;
    }
    store_unlock(st);
    if (list_write_names(list, n, &block->chars) != 0) {
        free(block);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (list[i].kind == STAT_HISTOGRAM) {
            stats_histogram_read(st, list[i].id, hists);
            list[i].value = (int64_t)hists->count;
            list[i].hist = hists++;
        } else {
            list[i].value = stats_value(st, list[i].id);
        }
    }
    qsort(list, n, sizeof(*list), entry_cmp);
    *out = list;
    return (int)n;
}

void stats_list_free(stats_entry_t *list)
{
    if (list == NULL)
        return;
    struct list_block *block =
        (struct list_block *)((char *)list - offsetof(struct list_block, entries));
    free(block->chars);
    free(block);
}

int stats_cache_put(stats_cache_t *c, uint64_t key, stat_id_t id)
{
    if ((c->n + 1) * 2 > c->cap) {
        uint32_t cap = c->cap ? c->cap * 2 : 64;
        uint64_t *keys = malloc(cap * sizeof(*keys));
        uint32_t *ids = calloc(cap, sizeof(*ids));
        if (keys == NULL || ids == NULL) {
            free(keys);
            free(ids);
            return -ENOMEM;
        }
        for (uint32_t i = 0; i < c->cap; i++) {
            if (c->ids[i] == 0)
                continue;
            uint32_t j = (uint32_t)(c->keys[i] ^ (c->keys[i] >> 32)) & (cap - 1);
            while (ids[j] != 0)
                j = (j + 1) & (cap - 1);
            keys[j] = c->keys[i];
            ids[j] = c->ids[i];
        }
        free(c->keys);
        free(c->ids);
        c->keys = keys;
        c->ids = ids;
        c->cap = cap;
    }
    uint32_t mask = c->cap - 1;
    uint32_t i = (uint32_t)(key ^ (key >> 32)) & mask;
    while (c->ids[i] != 0 && c->keys[i] != key)
        i = (i + 1) & mask;
    if (c->ids[i] == 0)
        c->n++;
    c->keys[i] = key;
    c->ids[i] = id + 1;
    return 0;
}

void stats_cache_free(stats_cache_t *c)
{
    free(c->keys);
    free(c->ids);
    *c = (stats_cache_t){0};
}
