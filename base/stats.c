/* The stats registry (names → ids, behind one mutex: definition is the rare path), the
 * per-writer slot arrays it sums, histogram reading and quantiles, the per-worker id cache, and
 * the text, JSON and Prometheus renderings served by the admin endpoint. */
#include "base/stats.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"

const uint64_t stats_hist_bounds_us[STATS_HIST_BOUNDS] = {
    500,      1000,      5000,      10000,      25000,      50000,    100000,
    250000,   500000,    1000000,   2500000,    5000000,    10000000, 30000000,
    60000000, 300000000, 600000000, 1800000000, 3600000000,
};

/* Envoy's supported quantiles, in percent. */
static const double quantiles_pct[] = {0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100};
#define N_QUANTILES (sizeof(quantiles_pct) / sizeof(quantiles_pct[0]))

/* Every string of a def lives in its one allocation, `mem`; defs are never freed before the
 * store, so stats_entry_t can borrow them after the mutex is released. */
typedef struct stat_def {
    void *mem;
    const char *name;
    const char *prom_family; /* already a valid Prometheus metric name */
    stats_tag_t *tags;
    size_t n_tags;
    const char *scope, *tag_name, *tag_value, *metric; /* stats_define's parts, or NULL */
    stat_kind_t kind;
    stat_id_t id;
} stat_def_t;

struct stats_store {
    pthread_mutex_t lock; /* guards everything below except the slots' contents */
    unsigned nthreads;
    stats_slots_t *slots; /* nthreads of them */
    stat_def_t *defs;     /* in definition order */
    uint32_t ndefs, capdefs;
    uint32_t *index; /* open addressing over defs by name: def index + 1, 0 = empty */
    uint32_t index_cap;
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

static uint32_t hash_name(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
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
    st->index_cap = 1024;
    st->index = calloc(st->index_cap, sizeof(*st->index));
    if (st->slots == NULL || st->index == NULL) {
        stats_store_free(st);
        return NULL;
    }
    return st;
}

void stats_store_free(stats_store_t *st)
{
    if (st == NULL)
        return;
    for (uint32_t i = 0; i < st->ndefs; i++)
        free(st->defs[i].mem);
    if (st->slots) {
        for (unsigned t = 0; t < st->nthreads; t++)
            for (unsigned b = 0; b < STATS_MAX_BLOCKS; b++)
                free((void *)st->slots[t].blocks[b]);
    }
    pthread_mutex_destroy(&st->lock);
    free(st->slots);
    free(st->defs);
    free(st->index);
    free(st);
}

stats_slots_t *stats_slots(stats_store_t *st, unsigned index)
{
    return index < st->nthreads ? &st->slots[index] : NULL;
}

static int64_t index_find(const stats_store_t *st, const char *name, uint32_t *slot)
{
    uint32_t mask = st->index_cap - 1;
    for (uint32_t i = hash_name(name) & mask;; i = (i + 1) & mask) {
        if (st->index[i] == 0) {
            *slot = i;
            return -1;
        }
        if (strcmp(st->defs[st->index[i] - 1].name, name) == 0)
            return st->index[i] - 1;
    }
}

static int index_grow(stats_store_t *st)
{
    uint32_t cap = st->index_cap * 2;
    uint32_t *idx = calloc(cap, sizeof(*idx));
    if (idx == NULL)
        return -ENOMEM;
    for (uint32_t d = 0; d < st->ndefs; d++) {
        uint32_t i = hash_name(st->defs[d].name) & (cap - 1);
        while (idx[i] != 0)
            i = (i + 1) & (cap - 1);
        idx[i] = d + 1;
    }
    free(st->index);
    st->index = idx;
    st->index_cap = cap;
    return 0;
}

/* Prometheus metric and label names allow [a-zA-Z0-9_:] (no ':' in labels) and no leading
 * digit; everything else becomes '_'. */
static void prom_name(strbuf_t *sb, const char *s, bool label)
{
    if (*s >= '0' && *s <= '9')
        sb_puts(sb, "_");
    for (; *s; s++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || (c == ':' && !label);
        sb_append(sb, ok ? &c : "_", 1);
    }
}

/* What a definition asks for; strings borrowed from the caller until packed. */
typedef struct def_request {
    stat_kind_t kind;
    const char *name, *prom_family;
    const stats_tag_t *tags;
    size_t n_tags;
    const char *scope, *tag_name, *tag_value, *metric;
} def_request_t;

static size_t str_size(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

/* Copies s into the def's allocation at *p; NULL stays NULL. */
static const char *pack_str(char **p, const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *dst = memcpy(*p, s, n);
    *p += n;
    return dst;
}

static int def_pack(stat_def_t *d, const def_request_t *rq)
{
    size_t size = rq->n_tags * sizeof(stats_tag_t) + str_size(rq->name) +
                  str_size(rq->prom_family) + str_size(rq->scope) + str_size(rq->tag_name) +
                  str_size(rq->tag_value) + str_size(rq->metric);
    for (size_t i = 0; i < rq->n_tags; i++)
        size += str_size(rq->tags[i].name) + str_size(rq->tags[i].value);
    d->mem = malloc(size ? size : 1);
    if (d->mem == NULL)
        return -ENOMEM;
    d->tags = rq->n_tags ? d->mem : NULL;
    char *p = (char *)d->mem + rq->n_tags * sizeof(stats_tag_t);
    for (size_t i = 0; i < rq->n_tags; i++) {
        d->tags[i].name = pack_str(&p, rq->tags[i].name);
        d->tags[i].value = pack_str(&p, rq->tags[i].value ? rq->tags[i].value : "");
    }
    d->n_tags = rq->n_tags;
    d->name = pack_str(&p, rq->name);
    d->prom_family = pack_str(&p, rq->prom_family);
    d->scope = pack_str(&p, rq->scope);
    d->tag_name = pack_str(&p, rq->tag_name);
    d->tag_value = pack_str(&p, rq->tag_value);
    d->metric = pack_str(&p, rq->metric);
    d->kind = rq->kind;
    return 0;
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

static int64_t define_locked(stats_store_t *st, const def_request_t *rq)
{
    /* Grow before inserting, so the index never fills and a failed growth changes nothing. */
    if ((st->ndefs + 1) * 2 > st->index_cap && index_grow(st) != 0)
        return -ENOMEM;
    uint32_t slot;
    int64_t found = index_find(st, rq->name, &slot);
    if (found >= 0)
        return st->defs[found].kind == rq->kind ? (int64_t)st->defs[found].id : -EEXIST;
    if (st->ndefs == st->capdefs) {
        uint32_t cap = st->capdefs ? st->capdefs * 2 : 64;
        stat_def_t *defs = realloc(st->defs, cap * sizeof(*defs));
        if (defs == NULL)
            return -ENOMEM;
        st->defs = defs;
        st->capdefs = cap;
    }
    int64_t id = slots_reserve(st, rq->kind);
    if (id < 0)
        return id;
    stat_def_t *d = &st->defs[st->ndefs];
    if (def_pack(d, rq) != 0)
        return -ENOMEM;
    d->id = (stat_id_t)id;
    st->next_id = (uint32_t)id + (rq->kind == STAT_HISTOGRAM ? STATS_HIST_SLOTS : 1);
    st->index[slot] = ++st->ndefs;
    return id;
}

static int64_t define(stats_store_t *st, const def_request_t *rq)
{
    store_lock(st);
    int64_t id = define_locked(st, rq);
    store_unlock(st);
    return id;
}

/* scope[.tag_value].metric, rendered as envoy_<scope>_<metric>{tag_name="tag_value"}. */
static int64_t define_scoped(stats_store_t *st, stat_kind_t kind, const char *scope,
                             const char *tag_name, const char *tag_value, const char *metric)
{
    strbuf_t name = {0}, fam = {0};
    sb_puts(&name, scope);
    if (tag_value) {
        sb_puts(&name, ".");
        sb_puts(&name, tag_value);
    }
    sb_puts(&name, ".");
    sb_puts(&name, metric);
    sb_puts(&fam, "envoy_");
    prom_name(&fam, scope, false);
    sb_puts(&fam, "_");
    prom_name(&fam, metric, false);
    stats_tag_t tag = {tag_name ? tag_name : "name", tag_value};
    def_request_t rq = {.kind = kind,
                        .name = name.data,
                        .prom_family = fam.data,
                        .tags = &tag,
                        .n_tags = tag_value ? 1 : 0,
                        .scope = scope,
                        .tag_name = tag_value ? tag_name : NULL,
                        .tag_value = tag_value,
                        .metric = metric};
    int64_t id = name.failed || fam.failed ? -ENOMEM : define(st, &rq);
    sb_free(&name);
    sb_free(&fam);
    return id;
}

static int64_t define_tagged(stats_store_t *st, stat_kind_t kind, const char *prom_family,
                             const char *name, const stats_tag_t *tags, size_t n_tags)
{
    strbuf_t built = {0}, fam = {0};
    if (name == NULL) {
        for (size_t i = 0; i < n_tags; i++) {
            sb_puts(&built, tags[i].name);
            sb_puts(&built, "=.=");
            sb_puts(&built, tags[i].value ? tags[i].value : "");
            sb_puts(&built, ";.;");
        }
        sb_puts(&built, prom_family);
        name = built.data;
    }
    prom_name(&fam, prom_family, false);
    def_request_t rq = {
        .kind = kind, .name = name, .prom_family = fam.data, .tags = tags, .n_tags = n_tags};
    int64_t id = built.failed || fam.failed ? -ENOMEM : define(st, &rq);
    sb_free(&built);
    sb_free(&fam);
    return id;
}

int64_t stats_define(stats_store_t *st, stat_kind_t kind, const char *scope, const char *tag_name,
                     const char *tag_value, const char *metric)
{
    if (kind == STAT_HISTOGRAM)
        return -EINVAL; /* histogram ids are only valid with stats_record */
    return define_scoped(st, kind, scope, tag_name, tag_value, metric);
}

int64_t stats_define_tagged(stats_store_t *st, stat_kind_t kind, const char *prom_family,
                            const char *name, const stats_tag_t *tags, size_t n_tags)
{
    if (kind == STAT_HISTOGRAM)
        return -EINVAL;
    return define_tagged(st, kind, prom_family, name, tags, n_tags);
}

int64_t stats_define_histogram(stats_store_t *st, const char *scope, const char *tag_name,
                               const char *tag_value, const char *metric)
{
    return define_scoped(st, STAT_HISTOGRAM, scope, tag_name, tag_value, metric);
}

int64_t stats_define_histogram_tagged(stats_store_t *st, const char *prom_family, const char *name,
                                      const stats_tag_t *tags, size_t n_tags)
{
    return define_tagged(st, STAT_HISTOGRAM, prom_family, name, tags, n_tags);
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

int stats_list(const stats_store_t *st, stats_entry_t **out)
{
    store_lock(st);
    uint32_t n = st->ndefs, nhist = 0;
    for (uint32_t i = 0; i < n; i++)
        nhist += st->defs[i].kind == STAT_HISTOGRAM;
    /* One allocation: the entries, then the histogram summaries they point at. */
    stats_entry_t *list = malloc((n ? n : 1) * sizeof(*list) + nhist * sizeof(stats_histogram_t));
    if (list == NULL) {
        store_unlock(st);
        return -ENOMEM;
    }
    stats_histogram_t *hists = (stats_histogram_t *)(list + (n ? n : 1));
    for (uint32_t i = 0; i < n; i++) {
        const stat_def_t *d = &st->defs[i];
        list[i] = (stats_entry_t){.name = d->name,
                                  .prom_family = d->prom_family,
                                  .tags = d->tags,
                                  .n_tags = d->n_tags,
                                  .scope = d->scope,
                                  .tag_name = d->tag_name,
                                  .tag_value = d->tag_value,
                                  .metric = d->metric,
                                  .kind = d->kind,
                                  .id = d->id};
    }
    store_unlock(st);
    /* Summing outside the mutex keeps workers that define stats from waiting on the admin. */
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
    free(list);
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

/* ---- renderings ----------------------------------------------------------------------------- */

static bool filtered_out(const stats_entry_t *e, const char *filter)
{
    return filter && strstr(e->name, filter) == NULL;
}

/* Milliseconds from microseconds with up to three decimals and no trailing zeros: "0.5", "12". */
static void put_ms(strbuf_t *sb, uint64_t us)
{
    char frac[8];
    int n = snprintf(frac, sizeof(frac), "%03u", (unsigned)(us % 1000));
    while (n > 0 && frac[n - 1] == '0')
        frac[--n] = '\0';
    sb_printf(sb, "%llu%s%s", (unsigned long long)(us / 1000), n ? "." : "", frac);
}

char *stats_render_text(const stats_entry_t *list, int n, const char *filter)
{
    strbuf_t sb = {0};
    sb_puts(&sb, "");
    for (int i = 0; i < n; i++) {
        if (list[i].kind != STAT_HISTOGRAM && !filtered_out(&list[i], filter))
            sb_printf(&sb, "%s: %lld\n", list[i].name, (long long)list[i].value);
    }
    /* Envoy lists histograms after counters and gauges, as P<q>(interval,cumulative). Remora
     * keeps no per-interval data, so the interval is always nan, as Envoy shows it for a quiet
     * interval. */
    for (int i = 0; i < n; i++) {
        const stats_entry_t *e = &list[i];
        if (e->kind != STAT_HISTOGRAM || filtered_out(e, filter))
            continue;
        sb_printf(&sb, "%s:", e->name);
        if (e->hist->count == 0)
            sb_puts(&sb, " No recorded values");
        for (size_t q = 0; q < N_QUANTILES && e->hist->count; q++)
            sb_printf(&sb, " P%g(nan,%g)", quantiles_pct[q],
                      stats_histogram_quantile(e->hist, quantiles_pct[q] / 100));
        sb_puts(&sb, "\n");
    }
    return sb_take(&sb);
}

static void json_string(strbuf_t *sb, const char *s)
{
    sb_puts(sb, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            sb_printf(sb, "\\%c", c);
        else if (c < 0x20)
            sb_printf(sb, "\\u%04x", c);
        else
            sb_append(sb, (const char *)&c, 1);
    }
    sb_puts(sb, "\"");
}

char *stats_render_json(const stats_entry_t *list, int n, const char *filter)
{
    strbuf_t sb = {0};
    sb_puts(&sb, "{\"stats\":[");
    bool first = true;
    int nhist = 0;
    for (int i = 0; i < n; i++) {
        if (filtered_out(&list[i], filter))
            continue;
        if (list[i].kind == STAT_HISTOGRAM) {
            nhist++;
            continue;
        }
        sb_puts(&sb, first ? "\n{\"name\":" : ",\n{\"name\":");
        json_string(&sb, list[i].name);
        sb_printf(&sb, ",\"value\":%lld}", (long long)list[i].value);
        first = false;
    }
    /* Envoy's shape: one last array element holding every histogram's quantiles. */
    if (nhist) {
        sb_puts(&sb, first ? "\n" : ",\n");
        sb_puts(&sb, "{\"histograms\":{\"supported_quantiles\":[");
        for (size_t q = 0; q < N_QUANTILES; q++)
            sb_printf(&sb, "%s%g", q ? "," : "", quantiles_pct[q]);
        sb_puts(&sb, "],\"computed_quantiles\":[");
        bool first_h = true;
        for (int i = 0; i < n; i++) {
            const stats_entry_t *e = &list[i];
            if (e->kind != STAT_HISTOGRAM || filtered_out(e, filter))
                continue;
            sb_puts(&sb, first_h ? "\n{\"name\":" : ",\n{\"name\":");
            json_string(&sb, e->name);
            sb_puts(&sb, ",\"values\":[");
            for (size_t q = 0; q < N_QUANTILES; q++) {
                sb_printf(&sb, "%s{\"interval\":null,\"cumulative\":", q ? "," : "");
                if (e->hist->count)
                    sb_printf(&sb, "%g}",
                              stats_histogram_quantile(e->hist, quantiles_pct[q] / 100));
                else
                    sb_puts(&sb, "null}");
            }
            sb_puts(&sb, "]}");
            first_h = false;
        }
        sb_puts(&sb, "\n]}}");
    }
    sb_puts(&sb, "\n]}\n");
    return sb_take(&sb);
}

static void prom_label_value(strbuf_t *sb, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            sb_puts(sb, "\\\\");
        else if (*s == '"')
            sb_puts(sb, "\\\"");
        else if (*s == '\n')
            sb_puts(sb, "\\n");
        else
            sb_append(sb, s, 1);
    }
}

/* {tag="v",…[,le="…"]} or nothing; `le` goes last, as the exposition format expects. */
static void prom_labels(strbuf_t *sb, const stats_entry_t *e, const char *le)
{
    if (e->n_tags == 0 && le == NULL)
        return;
    sb_puts(sb, "{");
    for (size_t i = 0; i < e->n_tags; i++) {
        if (i)
            sb_puts(sb, ",");
        prom_name(sb, e->tags[i].name, true);
        sb_puts(sb, "=\"");
        prom_label_value(sb, e->tags[i].value);
        sb_puts(sb, "\"");
    }
    if (le)
        sb_printf(sb, "%sle=\"%s\"", e->n_tags ? "," : "", le);
    sb_puts(sb, "}");
}

/* Groups by family so each family has one TYPE line and adjacent samples, then orders the
 * samples by their label values. */
static int family_cmp(const void *a, const void *b)
{
    const stats_entry_t *x = a, *y = b;
    int c = strcmp(x->prom_family, y->prom_family);
    for (size_t i = 0; c == 0 && i < x->n_tags && i < y->n_tags; i++)
        c = strcmp(x->tags[i].value, y->tags[i].value);
    if (c == 0)
        c = (x->n_tags > y->n_tags) - (x->n_tags < y->n_tags);
    return c;
}

static void prom_histogram(strbuf_t *sb, const stats_entry_t *e)
{
    uint64_t cum = 0;
    strbuf_t le = {0};
    for (unsigned b = 0; b < STATS_HIST_BUCKETS; b++) {
        cum += e->hist->buckets[b];
        sb_free(&le);
        if (b < STATS_HIST_BOUNDS)
            put_ms(&le, stats_hist_bounds_us[b]);
        else
            sb_puts(&le, "+Inf");
        sb_printf(sb, "%s_bucket", e->prom_family);
        prom_labels(sb, e, le.failed ? "+Inf" : le.data);
        sb_printf(sb, " %llu\n", (unsigned long long)cum);
    }
    sb_free(&le);
    sb_printf(sb, "%s_sum", e->prom_family);
    prom_labels(sb, e, NULL);
    sb_puts(sb, " ");
    put_ms(sb, e->hist->sum_us);
    sb_printf(sb, "\n%s_count", e->prom_family);
    prom_labels(sb, e, NULL);
    sb_printf(sb, " %llu\n", (unsigned long long)cum);
}

char *stats_render_prometheus(const stats_entry_t *list, int n)
{
    stats_entry_t *sorted = malloc((n ? n : 1) * sizeof(*sorted));
    if (sorted == NULL)
        return NULL;
    memcpy(sorted, list, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), family_cmp);
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    strbuf_t sb = {0};
    sb_puts(&sb, "");
    for (int i = 0; i < n; i++) {
        const stats_entry_t *e = &sorted[i];
        if (i == 0 || strcmp(sorted[i - 1].prom_family, e->prom_family) != 0)
            sb_printf(&sb, "# TYPE %s %s\n", e->prom_family, type_names[e->kind]);
        if (e->kind == STAT_HISTOGRAM) {
            prom_histogram(&sb, e);
            continue;
        }
        sb_puts(&sb, e->prom_family);
        prom_labels(&sb, e, NULL);
        sb_printf(&sb, " %lld\n", (long long)e->value);
    }
    free(sorted);
    return sb_take(&sb);
}
