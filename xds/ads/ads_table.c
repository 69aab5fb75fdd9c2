/* The client's resource names of one type, in a hash table: lookups by name for every resource of
 * every response, and sorted listings for requests, the resource set and /config_dump. */
#include <stdlib.h>
#include <string.h>

#include "xds/ads/ads_internal.h"

/* FNV-1a, 64 bits, of a name. */
uint64_t ads_hash(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

ads_entry_t *ads_table_find_n(const ads_table_t *t, const char *name, size_t len)
{
    if (t->nbuckets == 0)
        return NULL;
    uint64_t h = ads_hash(name, len);
    for (ads_entry_t *e = t->buckets[h & (t->nbuckets - 1)]; e; e = e->next)
        if (e->hash == h && strnlen(e->name, len + 1) == len && memcmp(e->name, name, len) == 0)
            return e;
    return NULL;
}

ads_entry_t *ads_table_find(const ads_table_t *t, const char *name)
{
    return ads_table_find_n(t, name, strlen(name));
}

/* Doubles the buckets once there are as many entries as buckets. */
static int table_grow(ads_table_t *t)
{
    if (t->view == NULL && (t->view = calloc(1, sizeof(*t->view))) == NULL)
        return -1;
    size_t nb = t->nbuckets ? t->nbuckets * 2 : 16;
    ads_entry_t **b = calloc(nb, sizeof(*b));
    if (b == NULL)
        return -1;
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (ads_entry_t *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = nb;
    return 0;
}

ads_entry_t *ads_table_get(ads_table_t *t, const char *name)
{
    ads_entry_t *e = ads_table_find(t, name);
    if (e)
        return e;
    if (t->n >= t->nbuckets && table_grow(t) < 0)
        return NULL;
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->name = strdup(name);
    if (e->name == NULL) {
        free(e);
        return NULL;
    }
    e->hash = ads_hash(name, strlen(name));
    ads_entry_t **head = &t->buckets[e->hash & (t->nbuckets - 1)];
    e->next = *head;
    *head = e;
    t->n++;
    t->view->stale = true;
    return e;
}

static void entry_free(ads_entry_t *e)
{
    ads_entry_drop_msg(e);
    free(e->error);
    free(e->error_version);
    free(e->name);
    free(e);
}

void ads_table_remove(ads_table_t *t, ads_entry_t *e)
{
    ads_entry_t **p = &t->buckets[e->hash & (t->nbuckets - 1)];
    while (*p != e)
        p = &(*p)->next;
    *p = e->next;
    t->n--;
    t->view->stale = true;
    entry_free(e);
}

void ads_table_clear(ads_table_t *t)
{
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (ads_entry_t *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            entry_free(e);
        }
    }
    free(t->buckets);
    if (t->view)
        free(t->view->v);
    free(t->view);
    memset(t, 0, sizeof(*t));
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(ads_entry_t *const *)a)->name, (*(ads_entry_t *const *)b)->name);
}

ads_entry_t *const *ads_table_sorted(const ads_table_t *t, size_t *n, bool *oom)
{
    *n = 0;
    *oom = false;
    if (t->n == 0)
        return NULL;
    ads_view_t *view = t->view; /* made with the buckets, so there when there are entries */
    if (view->stale || view->n != t->n) {
        if (view->cap < t->n) {
            ads_entry_t **v = realloc(view->v, t->n * sizeof(*v));
            if (v == NULL) {
                *oom = true;
                return NULL;
            }
            view->v = v;
            view->cap = t->n;
        }
        view->n = 0;
        for (size_t i = 0; i < t->nbuckets; i++)
            for (ads_entry_t *e = t->buckets[i]; e; e = e->next)
                view->v[view->n++] = e;
        qsort(view->v, view->n, sizeof(*view->v), by_name);
        view->stale = false;
    }
    *n = view->n;
    return view->v;
}

void ads_table_each(ads_table_t *t, void (*fn)(ads_table_t *t, ads_entry_t *e, void *ctx),
                    void *ctx)
{
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (ads_entry_t *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            fn(t, e, ctx);
        }
    }
}

void ads_table_release(ads_table_t *t, ads_entry_t *e)
{
    bool unsubscribe_owed = e->sent && !e->subscribed;
    if (!e->subscribed && e->msg == NULL && e->error == NULL && !unsubscribe_owed)
        ads_table_remove(t, e);
}
