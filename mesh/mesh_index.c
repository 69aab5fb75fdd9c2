/* The index of the mesh: every object by kind, namespace and name, Services and Pods by IP,
 * EndpointSlices by their Service, and each Service's merged endpoints (mesh_endpoints.c). It
 * changes only through batches of watch events, each change in proportion to the event. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/mesh_index_internal.h"

mesh_index_t *mesh_index_new(void)
{
    return calloc(1, sizeof(mesh_index_t));
}

static void free_entries(mesh_vec_t *v)
{
    for (size_t i = 0; i < v->count; i++)
        free(v->items[i]);
    mesh_vec_free(v);
}

void mesh_index_free(mesh_index_t *idx)
{
    if (idx == NULL)
        return;
    for (int k = 0; k < MESH_KIND_COUNT; k++) {
        for (size_t i = 0; i < idx->kinds[k].count; i++)
            mesh_object_unref(idx->kinds[k].items[i]);
        mesh_vec_free(&idx->kinds[k]);
    }
    free_entries(&idx->svc_ips);
    free_entries(&idx->pod_ips);
    mesh_vec_free(&idx->slices);
    mesh_index_cache_clear(idx);
    free(idx);
}

uint64_t mesh_index_generation(const mesh_index_t *idx)
{
    return idx->generation;
}

/* ---- IP tables: entries (ip, object) sorted by ip, then namespace and name ---------------- */

typedef struct ip_entry {
    const char *ip; /* borrowed from obj */
    mesh_object_t *obj;
} ip_entry_t;

static int cmp_ip_entry(const void *key, const void *item)
{
    const ip_entry_t *k = key, *e = item;
    int c = strcmp(k->ip, e->ip);
    if (c == 0)
        c = strcmp(k->obj->meta.ns, e->obj->meta.ns);
    return c ? c : strcmp(k->obj->meta.name, e->obj->meta.name);
}

/* Sorts before every entry of its ip, so a search lands on the first. */
static int cmp_ip_first(const void *key, const void *item)
{
    int c = strcmp(key, ((const ip_entry_t *)item)->ip);
    return c ? c : -1;
}

static int ip_add(mesh_vec_t *v, const char *ip, mesh_object_t *obj)
{
    ip_entry_t key = {ip, obj};
    bool found;
    size_t at = mesh_vec_find(v, &key, cmp_ip_entry, &found);
    if (found)
        return 0; /* the same IP twice in one object (clusterIP and clusterIPs[0]) */
    ip_entry_t *e = malloc(sizeof(*e));
    if (e == NULL)
        return -ENOMEM;
    *e = key;
    if (mesh_vec_insert(v, at, e) < 0) {
        free(e);
        return -ENOMEM;
    }
    return 0;
}

static void ip_remove(mesh_vec_t *v, const char *ip, mesh_object_t *obj)
{
    ip_entry_t key = {ip, obj};
    bool found;
    size_t at = mesh_vec_find(v, &key, cmp_ip_entry, &found);
    if (found) {
        free(v->items[at]);
        mesh_vec_remove(v, at);
    }
}

/* The IPs an object is found by: *list and *n (plus one more in *first, which may be NULL). */
static void ips_of(const mesh_object_t *obj, const char **first, const char *const **list,
                   size_t *n)
{
    *first = NULL;
    *list = NULL;
    *n = 0;
    if (obj->meta.kind == MESH_SERVICE && !obj->svc.headless) {
        *first = obj->svc.cluster_ip;
        *list = obj->svc.cluster_ips;
        *n = obj->svc.ncluster_ips;
    } else if (obj->meta.kind == MESH_POD) {
        *first = obj->pod.pod_ip;
        *list = obj->pod.pod_ips;
        *n = obj->pod.npod_ips;
    }
}

static mesh_vec_t *ip_table(mesh_index_t *idx, const mesh_object_t *obj)
{
    return obj->meta.kind == MESH_SERVICE ? &idx->svc_ips : &idx->pod_ips;
}

/* ---- EndpointSlices by Service: sorted by namespace, service name, name ------------------- */

int mesh_index_cmp_slice(const void *key, const void *item)
{
    const mesh_object_t *k = key, *o = item;
    int c = strcmp(k->meta.ns, o->meta.ns);
    if (c == 0)
        c = strcmp(k->slice.service_name, o->slice.service_name);
    return c ? c : strcmp(k->meta.name, o->meta.name);
}

/* ---- putting objects in and out of the tables --------------------------------------------- */

static void unindex(mesh_index_t *idx, mesh_object_t *obj)
{
    const char *first;
    const char *const *list;
    size_t n;
    ips_of(obj, &first, &list, &n);
    if (first && strcmp(first, "None") != 0)
        ip_remove(ip_table(idx, obj), first, obj);
    for (size_t i = 0; i < n; i++)
        ip_remove(ip_table(idx, obj), list[i], obj);
    if (obj->meta.kind == MESH_ENDPOINT_SLICE && obj->slice.service_name) {
        bool found;
        size_t at = mesh_vec_find(&idx->slices, obj, mesh_index_cmp_slice, &found);
        if (found)
            mesh_vec_remove(&idx->slices, at);
    }
}

static int index_in(mesh_index_t *idx, mesh_object_t *obj)
{
    const char *first;
    const char *const *list;
    size_t n;
    int rc = 0;
    ips_of(obj, &first, &list, &n);
    if (first && strcmp(first, "None") != 0)
        rc = ip_add(ip_table(idx, obj), first, obj);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (strcmp(list[i], "None") != 0)
            rc = ip_add(ip_table(idx, obj), list[i], obj);
    if (rc == 0 && obj->meta.kind == MESH_ENDPOINT_SLICE && obj->slice.service_name) {
        bool found;
        size_t at = mesh_vec_find(&idx->slices, obj, mesh_index_cmp_slice, &found);
        rc = found ? 0 : mesh_vec_insert(&idx->slices, at, obj);
    }
    if (rc < 0)
        unindex(idx, obj);
    return rc;
}

/* The Service whose endpoints obj (borrowed) feeds, or NULL. */
static int note_endpoints(mesh_changes_t *ch, const mesh_object_t *obj)
{
    const char *svc = obj->meta.kind == MESH_ENDPOINTS        ? obj->meta.name
                      : obj->meta.kind == MESH_ENDPOINT_SLICE ? obj->slice.service_name
                                                              : NULL;
    if (svc == NULL)
        return 0;
    mesh_name_t *names = realloc(ch->endpoints, (ch->nendpoints + 1) * sizeof(*names));
    if (names == NULL)
        return -ENOMEM;
    ch->endpoints = names;
    names[ch->nendpoints].ns = strdup(obj->meta.ns);
    names[ch->nendpoints].name = strdup(svc);
    ch->nendpoints++;
    if (names[ch->nendpoints - 1].ns == NULL || names[ch->nendpoints - 1].name == NULL)
        return -ENOMEM;
    return 0;
}

/* Applies one event; *changed says whether it changed anything. */
static int apply_one(mesh_index_t *idx, const mesh_event_t *ev, mesh_changes_t *ch, bool *changed)
{
    mesh_vec_t *v = &idx->kinds[ev->object->meta.kind];
    mesh_key_t key = mesh_key_of(ev->object);
    bool found;
    size_t at = mesh_vec_find(v, &key, mesh_key_cmp_object, &found);
    mesh_object_t *old = found ? v->items[at] : NULL;
    *changed = false;
    if (ev->type == MESH_BOOKMARK || (ev->type == MESH_DELETED && old == NULL) ||
        (ev->type != MESH_DELETED && old && mesh_object_same(old, ev->object)))
        return 0;
    mesh_event_type_t type = ev->type == MESH_DELETED ? MESH_DELETED
                             : old                    ? MESH_MODIFIED
                                                      : MESH_ADDED;
    mesh_object_t *obj = type == MESH_DELETED ? old : ev->object;
    if (mesh_batch_add(&ch->events, type, obj) < 0)
        return -ENOMEM;
    if (note_endpoints(ch, obj) < 0 || (old && obj != old && note_endpoints(ch, old) < 0))
        return -ENOMEM;
    if (type != MESH_DELETED) {
        int rc = old ? 0 : mesh_vec_insert(v, at, ev->object);
        if (rc == 0 && old)
            unindex(idx, old);
        if (rc == 0 && (rc = index_in(idx, ev->object)) < 0 && old)
            index_in(idx, old); /* back as it was: its entries were just freed, so they fit */
        if (rc < 0) {
            if (!old)
                mesh_vec_remove(v, at);
            mesh_object_unref(ch->events.events[--ch->events.count].object);
            return rc;
        }
        v->items[at] = mesh_object_ref(ev->object);
    } else {
        unindex(idx, old);
        mesh_vec_remove(v, at);
    }
    mesh_object_unref(old);
    ch->counts[type == MESH_DELETED ? obj->meta.kind : ev->object->meta.kind]++;
    *changed = true;
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    const mesh_name_t *x = a, *y = b;
    int c = strcmp(x->ns, y->ns);
    return c ? c : strcmp(x->name, y->name);
}

void mesh_changes_free(mesh_changes_t *c)
{
    mesh_batch_free(&c->events);
    for (size_t i = 0; i < c->nendpoints; i++) {
        free(c->endpoints[i].ns);
        free(c->endpoints[i].name);
    }
    free(c->endpoints);
    memset(c, 0, sizeof(*c));
}

/* Sorts the Services whose endpoints changed, drops repeats and their cached merges. */
static void settle_endpoints(mesh_index_t *idx, mesh_changes_t *ch)
{
    size_t n = 0;
    if (ch->nendpoints > 1)
        qsort(ch->endpoints, ch->nendpoints, sizeof(*ch->endpoints), cmp_name);
    for (size_t i = 0; i < ch->nendpoints; i++) {
        mesh_name_t *e = &ch->endpoints[i];
        if (e->ns == NULL || e->name == NULL ||
            (n > 0 && cmp_name(&ch->endpoints[n - 1], e) == 0)) {
            free(e->ns);
            free(e->name);
            continue;
        }
        mesh_index_cache_drop(idx, e->ns, e->name);
        ch->endpoints[n++] = *e;
    }
    ch->nendpoints = n;
}

int mesh_index_apply(mesh_index_t *idx, const mesh_batch_t *batch, mesh_changes_t *changes)
{
    mesh_changes_t local = {0}, *ch = changes ? changes : &local;
    memset(ch, 0, sizeof(*ch));
    int rc = 0;
    bool any = false;
    for (size_t i = 0; i < batch->count && rc == 0; i++) {
        bool changed;
        rc = apply_one(idx, &batch->events[i], ch, &changed);
        any |= changed;
    }
    settle_endpoints(idx, ch);
    if (any)
        idx->generation++;
    ch->generation = idx->generation;
    if (ch == &local)
        mesh_changes_free(&local);
    return rc;
}

/* ---- lookups ------------------------------------------------------------------------------ */

const mesh_object_t *mesh_index_get(const mesh_index_t *idx, mesh_kind_t kind, const char *ns,
                                    const char *name)
{
    if ((unsigned)kind >= MESH_KIND_COUNT)
        return NULL;
    mesh_key_t key = {kind, ns, name};
    bool found;
    size_t at = mesh_vec_find(&idx->kinds[kind], &key, mesh_key_cmp_object, &found);
    return found ? idx->kinds[kind].items[at] : NULL;
}

mesh_object_t *const *mesh_index_list(const mesh_index_t *idx, mesh_kind_t kind, size_t *count)
{
    if ((unsigned)kind >= MESH_KIND_COUNT) {
        *count = 0;
        return NULL;
    }
    *count = idx->kinds[kind].count;
    return (mesh_object_t *const *)idx->kinds[kind].items;
}

const mesh_object_t *mesh_index_service_by_ip(const mesh_index_t *idx, const char *ip)
{
    bool found;
    size_t at = mesh_vec_find(&idx->svc_ips, ip, cmp_ip_first, &found);
    if (at < idx->svc_ips.count && strcmp(((ip_entry_t *)idx->svc_ips.items[at])->ip, ip) == 0)
        return ((ip_entry_t *)idx->svc_ips.items[at])->obj;
    return NULL;
}

const mesh_object_t *mesh_index_pod_by_ip(const mesh_index_t *idx, const char *ip)
{
    bool found;
    const mesh_object_t *first = NULL;
    for (size_t at = mesh_vec_find(&idx->pod_ips, ip, cmp_ip_first, &found);
         at < idx->pod_ips.count; at++) {
        const ip_entry_t *e = idx->pod_ips.items[at];
        if (strcmp(e->ip, ip) != 0)
            break;
        if (e->obj->pod.phase == MESH_POD_RUNNING)
            return e->obj;
        if (first == NULL)
            first = e->obj;
    }
    return first;
}
