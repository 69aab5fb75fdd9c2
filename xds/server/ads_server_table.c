/* A stream's names of one type, in a hash table (chained, grown to keep chains short; entries
 * never move, so the pending list can point at them), and the pending list itself: the names a
 * view change touched since the last response of the type. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xds/server/ads_server_internal.h"

ads_srv_entry_t *ads_srv_table_find(const ads_srv_table_t *t, const char *name)
{
    if (t->nbuckets == 0)
        return NULL;
    uint64_t h = ads_srv_fnv(name, strlen(name), ADS_SRV_FNV_INIT);
    for (ads_srv_entry_t *e = t->buckets[h & (t->nbuckets - 1)]; e; e = e->next)
        if (e->name_hash == h && strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

static int table_grow(ads_srv_table_t *t)
{
    size_t nb = t->nbuckets ? t->nbuckets * 2 : 8;
    ads_srv_entry_t **b = calloc(nb, sizeof(*b));
    if (b == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < t->nbuckets; i++)
        for (ads_srv_entry_t *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->name_hash & (nb - 1)];
            b[e->name_hash & (nb - 1)] = e;
        }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = nb;
    return 0;
}

ads_srv_entry_t *ads_srv_table_get(ads_srv_table_t *t, const char *name)
{
    ads_srv_entry_t *e = ads_srv_table_find(t, name);
    if (e)
        return e;
    if (t->n >= t->nbuckets && table_grow(t) < 0)
        return NULL;
    size_t len = strlen(name);
    if ((e = calloc(1, ADS_SRV_ENTRY_SIZE(len))) == NULL)
        return NULL;
    memcpy(e->name, name, len + 1);
    e->name_hash = ads_srv_fnv(name, len, ADS_SRV_FNV_INIT);
    size_t b = e->name_hash & (t->nbuckets - 1);
    e->next = t->buckets[b];
    t->buckets[b] = e;
    t->n++;
    return e;
}

void ads_srv_table_sweep(ads_srv_table_t *t)
{
    for (size_t i = 0; i < t->nbuckets; i++)
        for (ads_srv_entry_t **pe = &t->buckets[i], *e; (e = *pe) != NULL;) {
            if (e->subscribed || e->sent || e->pending || e->tell_absent) {
                pe = &e->next;
                continue;
            }
            *pe = e->next;
            free(e);
            t->n--;
        }
}

void ads_srv_table_clear(ads_srv_table_t *t)
{
    for (size_t i = 0; i < t->nbuckets; i++)
        for (ads_srv_entry_t *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(t->buckets);
    memset(t, 0, sizeof(*t));
}

int ads_srv_pending_add(ads_srv_tstate_t *ts, ads_srv_entry_t *e)
{
    if (e->pending)
        return 0;
    if (ts->npending == ts->cappending) {
        size_t cap = ts->cappending ? ts->cappending * 2 : 8;
        ads_srv_entry_t **p = realloc(ts->pending, cap * sizeof(*p));
        if (p == NULL)
            return -ENOMEM;
        ts->pending = p;
        ts->cappending = cap;
    }
    ts->pending[ts->npending++] = e;
    e->pending = true;
    return 0;
}

void ads_srv_pending_clear(ads_srv_tstate_t *ts)
{
    for (size_t i = 0; i < ts->npending; i++)
        ts->pending[i]->pending = false;
    ts->npending = 0;
}

uint64_t ads_srv_mix(uint64_t name_hash, uint64_t hash)
{
    uint64_t z = name_hash ^ (hash * 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void ads_srv_entry_hold(ads_srv_tstate_t *ts, ads_srv_entry_t *e, bool sent, uint64_t hash)
{
    if (e->sent)
        ts->held -= ads_srv_mix(e->name_hash, e->sent_hash);
    e->sent = sent;
    e->sent_hash = sent ? hash : 0;
    if (sent)
        ts->held += ads_srv_mix(e->name_hash, e->sent_hash);
}
