/* The stats registry (names → ids, main thread) and the per-writer slot arrays it sums,
 * plus the text, JSON and Prometheus renderings served by the admin endpoint. */
#include "proxy/stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/strbuf.h"

typedef struct stat_def {
    char *name;
    char *scope;
    char *tag_name;
    char *tag_value;
    char *metric;
    stat_kind_t kind;
} stat_def_t;

struct stats_store {
    unsigned nthreads;
    stats_slots_t *slots; /* nthreads of them */
    stat_def_t *defs;     /* indexed by id */
    uint32_t ndefs, capdefs;
    uint32_t *index; /* open addressing over defs by name: id + 1, 0 = empty */
    uint32_t index_cap;
};

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
    for (uint32_t i = 0; i < st->ndefs; i++) {
        stat_def_t *d = &st->defs[i];
        free(d->name);
        free(d->scope);
        free(d->tag_name);
        free(d->tag_value);
        free(d->metric);
    }
    if (st->slots) {
        for (unsigned t = 0; t < st->nthreads; t++)
            for (unsigned b = 0; b < STATS_MAX_BLOCKS; b++)
                free((void *)st->slots[t].blocks[b]);
    }
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
    for (uint32_t id = 0; id < st->ndefs; id++) {
        uint32_t i = hash_name(st->defs[id].name) & (cap - 1);
        while (idx[i] != 0)
            i = (i + 1) & (cap - 1);
        idx[i] = id + 1;
    }
    free(st->index);
    st->index = idx;
    st->index_cap = cap;
    return 0;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

int64_t stats_define(stats_store_t *st, stat_kind_t kind, const char *scope, const char *tag_name,
                     const char *tag_value, const char *metric)
{
    strbuf_t sb = {0};
    sb_puts(&sb, scope);
    if (tag_value) {
        sb_puts(&sb, ".");
        sb_puts(&sb, tag_value);
    }
    sb_puts(&sb, ".");
    sb_puts(&sb, metric);
    char *name = sb_take(&sb);
    if (name == NULL)
        return -ENOMEM;

    uint32_t slot;
    int64_t found = index_find(st, name, &slot);
    if (found >= 0) {
        free(name);
        return found;
    }
    uint32_t id = st->ndefs;
    if (id >= STATS_MAX_BLOCKS * STATS_BLOCK_SIZE) {
        free(name);
        return -ENOSPC;
    }
    uint32_t block = id >> STATS_BLOCK_SHIFT;
    for (unsigned t = 0; t < st->nthreads; t++) {
        if (st->slots[t].blocks[block] == NULL) {
            st->slots[t].blocks[block] = calloc(STATS_BLOCK_SIZE, sizeof(uint64_t));
            if (st->slots[t].blocks[block] == NULL) {
                free(name);
                return -ENOMEM;
            }
        }
    }
    if (st->ndefs == st->capdefs) {
        uint32_t cap = st->capdefs ? st->capdefs * 2 : 64;
        stat_def_t *defs = realloc(st->defs, cap * sizeof(*defs));
        if (defs == NULL) {
            free(name);
            return -ENOMEM;
        }
        st->defs = defs;
        st->capdefs = cap;
    }
    stat_def_t *d = &st->defs[id];
    *d = (stat_def_t){.name = name,
                      .scope = strdup(scope),
                      .tag_name = dup_or_null(tag_value ? tag_name : NULL),
                      .tag_value = dup_or_null(tag_value),
                      .metric = strdup(metric),
                      .kind = kind};
    if (d->scope == NULL || d->metric == NULL || (tag_value && d->tag_value == NULL)) {
        free(d->name);
        free(d->scope);
        free(d->tag_name);
        free(d->tag_value);
        free(d->metric);
        return -ENOMEM;
    }
    st->ndefs++;
    st->index[slot] = id + 1;
    if (st->ndefs * 2 > st->index_cap && index_grow(st) != 0)
        return -ENOMEM;
    return id;
}

int64_t stats_value(const stats_store_t *st, stat_id_t id)
{
    uint64_t sum = 0;
    for (unsigned t = 0; t < st->nthreads; t++) {
        _Atomic uint64_t *block = st->slots[t].blocks[id >> STATS_BLOCK_SHIFT];
        if (block)
            sum += atomic_load_explicit(&block[id & (STATS_BLOCK_SIZE - 1)], memory_order_relaxed);
    }
    return (int64_t)sum;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const stats_entry_t *)a)->name, ((const stats_entry_t *)b)->name);
}

int stats_list(const stats_store_t *st, stats_entry_t **out)
{
    stats_entry_t *list = calloc(st->ndefs ? st->ndefs : 1, sizeof(*list));
    if (list == NULL)
        return -ENOMEM;
    for (uint32_t id = 0; id < st->ndefs; id++) {
        const stat_def_t *d = &st->defs[id];
        list[id] = (stats_entry_t){.name = d->name,
                                   .scope = d->scope,
                                   .tag_name = d->tag_name,
                                   .tag_value = d->tag_value,
                                   .metric = d->metric,
                                   .kind = d->kind,
                                   .value = stats_value(st, id)};
    }
    qsort(list, st->ndefs, sizeof(*list), entry_cmp);
    *out = list;
    return (int)st->ndefs;
}

void stats_list_free(stats_entry_t *list)
{
    free(list);
}

char *stats_render_text(const stats_entry_t *list, int n, const char *filter)
{
    strbuf_t sb = {0};
    sb_puts(&sb, "");
    for (int i = 0; i < n; i++) {
        if (filter && strstr(list[i].name, filter) == NULL)
            continue;
        sb_printf(&sb, "%s: %lld\n", list[i].name, (long long)list[i].value);
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
    int first = 1;
    for (int i = 0; i < n; i++) {
        if (filter && strstr(list[i].name, filter) == NULL)
            continue;
        sb_puts(&sb, first ? "\n{\"name\":" : ",\n{\"name\":");
        json_string(&sb, list[i].name);
        sb_printf(&sb, ",\"value\":%lld}", (long long)list[i].value);
        first = 0;
    }
    sb_puts(&sb, "\n]}\n");
    return sb_take(&sb);
}

/* Prometheus metric names allow [a-zA-Z0-9_:]; everything else becomes '_'. */
static void prom_name(strbuf_t *sb, const char *s)
{
    for (; *s; s++) {
        char c = *s;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == ':';
        sb_append(sb, ok ? &c : "_", 1);
    }
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

/* Groups by family (scope + metric) so each family has one TYPE line and adjacent samples. */
static int family_cmp(const void *a, const void *b)
{
    const stats_entry_t *x = a, *y = b;
    int c = strcmp(x->scope, y->scope);
    if (c == 0)
        c = strcmp(x->metric, y->metric);
    if (c == 0)
        c = strcmp(x->tag_value ? x->tag_value : "", y->tag_value ? y->tag_value : "");
    return c;
}

char *stats_render_prometheus(const stats_entry_t *list, int n)
{
    stats_entry_t *sorted = malloc((n ? n : 1) * sizeof(*sorted));
    if (sorted == NULL)
        return NULL;
    memcpy(sorted, list, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), family_cmp);
    strbuf_t sb = {0};
    sb_puts(&sb, "");
    for (int i = 0; i < n; i++) {
        const stats_entry_t *e = &sorted[i];
        strbuf_t fam = {0};
        sb_puts(&fam, "envoy_");
        prom_name(&fam, e->scope);
        sb_puts(&fam, "_");
        prom_name(&fam, e->metric);
        char *family = sb_take(&fam);
        if (family == NULL)
            break;
        if (i == 0 || family_cmp(&(stats_entry_t){.scope = sorted[i - 1].scope,
                                                  .metric = sorted[i - 1].metric},
                                 &(stats_entry_t){.scope = e->scope, .metric = e->metric}) != 0)
            sb_printf(&sb, "# TYPE %s %s\n", family, e->kind == STAT_COUNTER ? "counter" : "gauge");
        sb_puts(&sb, family);
        if (e->tag_value) {
            sb_puts(&sb, "{");
            prom_name(&sb, e->tag_name ? e->tag_name : "name");
            sb_puts(&sb, "=\"");
            prom_label_value(&sb, e->tag_value);
            sb_puts(&sb, "\"}");
        }
        sb_printf(&sb, " %lld\n", (long long)e->value);
        free(family);
    }
    free(sorted);
    return sb_take(&sb);
}
