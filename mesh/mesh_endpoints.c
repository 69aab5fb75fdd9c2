/* A Service's merged endpoints: its EndpointSlices when any exist, else its Endpoints, one entry
 * per address in address order. Merged on first ask after a change, kept until one of its
 * slices or its Endpoints changes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/mesh_index_internal.h"

typedef struct merged {
    char *ns;
    char *name;
    mesh_endpoint_t *eps;
    size_t count;
} merged_t;

typedef struct ns_name {
    const char *ns;
    const char *name;
} ns_name_t;

static int cmp_merged(const void *key, const void *item)
{
    const ns_name_t *k = key;
    const merged_t *m = item;
    int c = strcmp(k->ns, m->ns);
    return c ? c : strcmp(k->name, m->name);
}

static void merged_free(merged_t *m)
{
    free(m->ns);
    free(m->name);
    free(m->eps);
    free(m);
}

void mesh_index_cache_drop(mesh_index_t *idx, const char *ns, const char *name)
{
    ns_name_t key = {ns, name};
    bool found;
    size_t at = mesh_vec_find(&idx->merged, &key, cmp_merged, &found);
    if (found) {
        merged_free(idx->merged.items[at]);
        mesh_vec_remove(&idx->merged, at);
    }
}

void mesh_index_cache_clear(mesh_index_t *idx)
{
    for (size_t i = 0; i < idx->merged.count; i++)
        merged_free(idx->merged.items[i]);
    mesh_vec_free(&idx->merged);
}

/* Sorts before every slice of Service ns/name, so a search lands on the first. */
static int cmp_slice_first(const void *key, const void *item)
{
    const ns_name_t *k = key;
    const mesh_object_t *o = item;
    int c = strcmp(k->ns, o->meta.ns);
    if (c == 0)
        c = strcmp(k->name, o->slice.service_name);
    return c ? c : -1;
}

/* Entries with their place of arrival, so that among equal addresses the first one stays. */
typedef struct entry {
    mesh_endpoint_t ep;
    size_t order;
} entry_t;

static int cmp_entry(const void *a, const void *b)
{
    const entry_t *x = a, *y = b;
    int c = strcmp(x->ep.address, y->ep.address);
    return c ? c : (x->order < y->order ? -1 : x->order > y->order);
}

static int push(entry_t **list, size_t *n, size_t *cap, const mesh_endpoint_t *ep)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 8;
        entry_t *bigger = realloc(*list, c * sizeof(*bigger));
        if (bigger == NULL)
            return -ENOMEM;
        *list = bigger;
        *cap = c;
    }
    (*list)[*n] = (entry_t){*ep, *n};
    (*n)++;
    return 0;
}

static int from_slices(const mesh_index_t *idx, size_t at, const ns_name_t *key, entry_t **list,
                       size_t *n, size_t *cap)
{
    for (; at < idx->slices.count; at++) {
        const mesh_object_t *o = idx->slices.items[at];
        if (strcmp(o->meta.ns, key->ns) != 0 || strcmp(o->slice.service_name, key->name) != 0)
            break;
        const mesh_endpoint_slice_t *s = &o->slice;
        for (size_t e = 0; e < s->nendpoints; e++) {
            const mesh_slice_endpoint_t *se = &s->endpoints[e];
            for (size_t a = 0; a < se->naddresses; a++) {
                mesh_endpoint_t ep = {.address = se->addresses[a],
                                      .ready = se->ready,
                                      .serving = se->serving,
                                      .terminating = se->terminating,
                                      .target = se->target,
                                      .zone = se->zone,
                                      .node_name = se->node_name,
                                      .hostname = se->hostname,
                                      .ports = s->ports,
                                      .nports = s->nports};
                if (push(list, n, cap, &ep) < 0)
                    return -ENOMEM;
            }
        }
    }
    return 0;
}

static int from_endpoints(const mesh_object_t *o, entry_t **list, size_t *n, size_t *cap)
{
    for (size_t s = 0; s < o->eps.nsubsets; s++) {
        const mesh_ep_subset_t *sub = &o->eps.subsets[s];
        for (size_t a = 0; a < sub->naddresses; a++) {
            const mesh_ep_address_t *ad = &sub->addresses[a];
            mesh_endpoint_t ep = {.address = ad->ip,
                                  .ready = ad->ready,
                                  .serving = ad->ready,
                                  .target = ad->target,
                                  .node_name = ad->node_name,
                                  .hostname = ad->hostname,
                                  .ports = sub->ports,
                                  .nports = sub->nports};
            if (push(list, n, cap, &ep) < 0)
                return -ENOMEM;
        }
    }
    return 0;
}

/* Merges the endpoints of ns/name into a new cache entry at *out. */
static int merge(mesh_index_t *idx, const ns_name_t *key, merged_t **out)
{
    entry_t *list = NULL;
    size_t n = 0, cap = 0;
    bool found;
    size_t at = mesh_vec_find(&idx->slices, key, cmp_slice_first, &found);
    const mesh_object_t *first = at < idx->slices.count ? idx->slices.items[at] : NULL;
    int rc;
    if (first && strcmp(first->meta.ns, key->ns) == 0 &&
        strcmp(first->slice.service_name, key->name) == 0)
        rc = from_slices(idx, at, key, &list, &n, &cap);
    else {
        const mesh_object_t *eps = mesh_index_get(idx, MESH_ENDPOINTS, key->ns, key->name);
        rc = eps ? from_endpoints(eps, &list, &n, &cap) : 0;
    }
    merged_t *m = rc == 0 ? calloc(1, sizeof(*m)) : NULL;
    if (m && n > 0)
        m->eps = malloc(n * sizeof(*m->eps));
    if (m == NULL || (n > 0 && m->eps == NULL) || (m->ns = strdup(key->ns)) == NULL ||
        (m->name = strdup(key->name)) == NULL) {
        free(list);
        if (m)
            merged_free(m);
        return -ENOMEM;
    }
    if (n > 1)
        qsort(list, n, sizeof(*list), cmp_entry);
    for (size_t i = 0; i < n; i++)
        if (m->count == 0 || strcmp(m->eps[m->count - 1].address, list[i].ep.address) != 0)
            m->eps[m->count++] = list[i].ep;
    free(list);
    *out = m;
    return 0;
}

const mesh_endpoint_t *mesh_index_endpoints(mesh_index_t *idx, const char *ns, const char *name,
                                            size_t *count)
{
    ns_name_t key = {ns, name};
    bool found;
    size_t at = mesh_vec_find(&idx->merged, &key, cmp_merged, &found);
    merged_t *m = found ? idx->merged.items[at] : NULL;
    *count = 0;
    if (m == NULL) {
        if (merge(idx, &key, &m) < 0)
            return NULL;
        if (m->count == 0) { /* not kept: asking for names that have none costs no memory */
            merged_free(m);
            return NULL;
        }
        if (mesh_vec_insert(&idx->merged, at, m) < 0) {
            merged_free(m);
            return NULL;
        }
    }
    *count = m->count;
    return m->count ? m->eps : NULL;
}
