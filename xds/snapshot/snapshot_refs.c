/* Resources named by others: the build's indexes of the set's route configurations, load
 * assignments and secrets by name (each name once), the check that what names them says ADS,
 * and the list of names a snapshot references, for an xDS client to subscribe to. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/core/v3/config_source.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "base/err.h"
#include "xds/snapshot/snapshot_build.h"

static int by_name(const void *a, const void *b)
{
    const snap_index_entry_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    /* Same name: in the set's order, so an error names the first one first. */
    return x->r < y->r ? -1 : x->r > y->r;
}

#define NAME_AHEAD 8 /* resources */

/* Indexes list by the name name_of reads from each message; `kind` and `field` name them in
 * errors. */
static int index_list(const config_resource_list_t *list, const char *(*name_of)(const void *),
                      const char *kind, const char *field, snap_index_t *idx, char *err,
                      size_t errlen)
{
    idx->v = malloc((list->n ? list->n : 1) * sizeof(*idx->v));
    if (idx->v == NULL)
        return err_set(err, errlen, -ENOMEM, "out of memory while indexing the %ss", kind);
    bool sorted = true; /* so far, strictly ascending */
    for (size_t i = 0; i < list->n; i++) {
        const config_resource_t *r = &list->v[i];
        /* Each message, and the name in it, is elsewhere in memory: fetched ahead (the message
         * further, the name once its message is in), the misses overlap. */
        if (i + 2 * NAME_AHEAD < list->n)
            __builtin_prefetch(list->v[i + 2 * NAME_AHEAD].msg);
        if (i + NAME_AHEAD < list->n)
            __builtin_prefetch(name_of(list->v[i + NAME_AHEAD].msg));
        const char *name = name_of(r->msg);
        if (name == NULL || name[0] == '\0')
            return err_set(err, errlen, -EINVAL, "%s[%zu]: %s: %s is required", r->origin, r->index,
                           kind, field);
        idx->v[idx->n++] = (snap_index_entry_t){name, r};
        sorted = sorted && (idx->n == 1 || strcmp(idx->v[idx->n - 2].name, name) < 0);
    }
    /* An xDS client's set comes sorted by name (ads_resources), each name once: no sort then,
     * and no name twice (the order above is strict). */
    if (sorted)
        return 0;
    qsort(idx->v, idx->n, sizeof(*idx->v), by_name);
    for (size_t i = 1; i < idx->n; i++) {
        const config_resource_t *a = idx->v[i - 1].r, *b = idx->v[i].r;
        if (strcmp(idx->v[i - 1].name, idx->v[i].name) == 0)
            return err_set(err, errlen, -EINVAL, "%s '%s': given twice, %s[%zu] and %s[%zu]", kind,
                           idx->v[i].name, a->origin, a->index, b->origin, b->index);
    }
    return 0;
}

static const char *route_config_name(const void *m)
{
    return ((const Envoy__Config__Route__V3__RouteConfiguration *)m)->name;
}

static const char *assignment_name(const void *m)
{
    return ((const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *)m)->cluster_name;
}

static const char *secret_name(const void *m)
{
    return ((const Envoy__Extensions__TransportSockets__Tls__V3__Secret *)m)->name;
}

/* Indexes list (the set's assignments) from prev's names (borrowed; b->prev's) when its holders
 * are prev's at the same places but for some, whose names are read and checked to keep the
 * order strict. Returns true with idx filled, or false with idx empty (index it in full). */
static bool index_from_prev(const config_resource_list_t *list, const snap_set_names_t *prev,
                            snap_index_t *idx)
{
    if (prev == NULL || prev->n == 0 || prev->n != list->n)
        return false;
    idx->v = malloc(list->n * sizeof(*idx->v));
    if (idx->v == NULL)
        return false;
    size_t i = 0;
    for (; i < list->n; i++) {
        const config_resource_t *r = &list->v[i];
        if (r->kept == NULL)
            break;
        const char *name = r->kept == prev->kept[i] ? prev->name[i] : assignment_name(r->msg);
        if (name == NULL || name[0] == '\0')
            break;
        idx->v[i] = (snap_index_entry_t){name, r};
    }
    /* prev's names were strictly ascending: only pairs with a changed holder are compared. */
    for (size_t j = 1; i == list->n && j < list->n; j++)
        if ((list->v[j - 1].kept != prev->kept[j - 1] || list->v[j].kept != prev->kept[j]) &&
            strcmp(idx->v[j - 1].name, idx->v[j].name) >= 0)
            i = 0;
    if (i != list->n) {
        free(idx->v);
        idx->v = NULL;
        return false;
    }
    idx->n = list->n;
    return true;
}

/* Keeps the names of idx (the set's assignments, list) in s for the next build, when idx is in
 * the list's order and every entry has a holder; else keeps none. Out of memory: none. */
static void keep_assignment_names(snapshot_t *s, const config_resource_list_t *list,
                                  const snap_index_t *idx)
{
    snap_set_names_t *k = &s->assignment_names;
    for (size_t i = 0; i < idx->n; i++)
        if (idx->v[i].r != &list->v[i] || list->v[i].kept == NULL)
            return;
    k->name = malloc((idx->n ? idx->n : 1) * sizeof(*k->name));
    k->kept = malloc((idx->n ? idx->n : 1) * sizeof(*k->kept));
    if (k->name == NULL || k->kept == NULL) {
        free(k->name);
        free(k->kept);
        k->name = NULL;
        k->kept = NULL;
        return;
    }
    for (size_t i = 0; i < idx->n; i++) {
        k->name[i] = idx->v[i].name;
        k->kept[i] = list->v[i].kept;
    }
    k->n = idx->n;
}

int snap_build_index(snap_build_t *b, char *err, size_t errlen)
{
    int rc = index_list(&b->res->route_configs, route_config_name, "route configuration", "name",
                        &b->route_configs, err, errlen);
    const config_resource_list_t *eds = &b->res->endpoints;
    if (rc == 0 &&
        !index_from_prev(eds, b->prev ? &b->prev->assignment_names : NULL, &b->endpoints))
        rc = index_list(eds, assignment_name, "load assignment", "cluster_name", &b->endpoints, err,
                        errlen);
    if (rc == 0)
        keep_assignment_names(b->snap, eds, &b->endpoints);
    if (rc == 0)
        rc = index_list(&b->res->secrets, secret_name, "secret", "name", &b->secrets, err, errlen);
    return rc;
}

/* The place of name in idx, or -1. */
static long index_place(const snap_index_t *idx, const char *name)
{
    size_t lo = 0, hi = idx->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, idx->v[mid].name);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

const config_resource_t *snap_index_find(const snap_index_t *idx, const char *name)
{
    long i = index_place(idx, name);
    return i < 0 ? NULL : idx->v[i].r;
}

const config_resource_t *snap_index_find_next(const snap_index_t *idx, const char *name,
                                              size_t *next)
{
    long i = *next < idx->n && strcmp(idx->v[*next].name, name) == 0 ? (long)*next
                                                                     : index_place(idx, name);
    if (i < 0)
        return NULL;
    *next = (size_t)i + 1;
    return idx->v[i].r;
}

void snap_build_free(snap_build_t *b)
{
    free(b->route_configs.v);
    free(b->endpoints.v);
    free(b->secrets.v);
    snapshot_tls_cache_free(&b->tls_cache);
    memset(&b->route_configs, 0, sizeof(b->route_configs));
    memset(&b->endpoints, 0, sizeof(b->endpoints));
    memset(&b->secrets, 0, sizeof(b->secrets));
}

int snap_check_ads(const Envoy__Config__Core__V3__ConfigSource *cs, bool absent_ok,
                   const char *field, char *err, size_t errlen)
{
    if (cs == NULL && absent_ok)
        return 0;
    if (cs == NULL)
        return err_set(err, errlen, -EINVAL, "%s is required (ads: {}, the one source supported)",
                       field);
    if (cs->config_source_specifier_case !=
        ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS) {
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
            cs->base.descriptor, (unsigned)cs->config_source_specifier_case);
        return err_set(err, errlen, -EINVAL,
                       "%s: %s is not supported (only ads: resources named by others come over "
                       "ADS)",
                       field, f ? f->name : "a config source without ads");
    }
    return 0;
}

static int refs_add(snap_ref_list_t *list, const char *name, bool missing, bool borrowed)
{
    if (list->n == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 8;
        snap_ref_t *v = realloc(list->v, cap * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        list->v = v;
        list->cap = cap;
    }
    char *copy = borrowed ? (char *)name : strdup(name);
    if (copy == NULL)
        return -ENOMEM;
    list->v[list->n++] = (snap_ref_t){copy, missing, borrowed};
    return 0;
}

int snap_refs_add(snap_ref_list_t *list, const char *name, bool missing)
{
    return refs_add(list, name, missing, false);
}

int snap_refs_add_borrowed(snap_ref_list_t *list, const char *name, bool missing)
{
    return refs_add(list, name, missing, true);
}

static int ref_by_name(const void *a, const void *b)
{
    return strcmp(((const snap_ref_t *)a)->name, ((const snap_ref_t *)b)->name);
}

/* Whether entries i - 1 and i of list are the same strings (by pointer) as at those places in
 * was (borrowed; NULL: none), a finished list: then they are in order and differ, without
 * reading them. An update that changed a few clusters leaves the others' borrowed names (their
 * shares' eds_service) where they were, so most neighbours are known without a strcmp. */
static bool same_pair(const snap_ref_list_t *list, const snap_ref_list_t *was, size_t i)
{
    return was && i < was->n && list->v[i].name == was->v[i].name &&
           list->v[i - 1].name == was->v[i - 1].name;
}

static void finish_list(snap_ref_list_t *list, const snap_ref_list_t *was)
{
    if (list->n == 0)
        return;
    /* Clusters come sorted by name and most take the assignment of their own name: the list
     * is in order already, and is sorted only when it is not. */
    size_t i = 1;
    while (i < list->n &&
           (same_pair(list, was, i) || strcmp(list->v[i - 1].name, list->v[i].name) <= 0))
        i++;
    bool sorted = i == list->n;
    if (!sorted)
        qsort(list->v, list->n, sizeof(*list->v), ref_by_name);
    size_t kept = 1;
    for (size_t i = 1; i < list->n; i++) {
        /* A pair as in was (strictly ascending there) holds no repeat; after a sort the places
         * moved and every pair is read. */
        if (!(sorted && kept == i && same_pair(list, was, i)) &&
            strcmp(list->v[kept - 1].name, list->v[i].name) == 0) {
            if (!list->v[i].borrowed) /* the same name is missing everywhere or nowhere */
                free(list->v[i].name);
            continue;
        }
        list->v[kept++] = list->v[i];
    }
    list->n = kept;
}

void snap_refs_finish(snap_refs_t *refs, const snap_refs_t *was)
{
    finish_list(&refs->route_configs, was ? &was->route_configs : NULL);
    finish_list(&refs->endpoints, was ? &was->endpoints : NULL);
    finish_list(&refs->secrets, was ? &was->secrets : NULL);
}

static void free_list(snap_ref_list_t *list)
{
    for (size_t i = 0; i < list->n; i++)
        if (!list->v[i].borrowed)
            free(list->v[i].name);
    free(list->v);
    memset(list, 0, sizeof(*list));
}

void snapshot_refs_free(snap_refs_t *refs)
{
    free_list(&refs->route_configs);
    free_list(&refs->endpoints);
    free_list(&refs->secrets);
}

/* Copies src into dst (empty); returns how many are missing, or -ENOMEM. */
static int copy_list(const snap_ref_list_t *src, snap_ref_list_t *dst)
{
    int missing = 0;
    for (size_t i = 0; i < src->n; i++) {
        if (snap_refs_add(dst, src->v[i].name, src->v[i].missing) < 0)
            return -ENOMEM;
        missing += src->v[i].missing;
    }
    return missing;
}

int snapshot_references(const snapshot_t *snap, snap_refs_t *out)
{
    memset(out, 0, sizeof(*out));
    const snap_refs_t *r = &snap->references;
    int a = copy_list(&r->route_configs, &out->route_configs);
    int b = a < 0 ? a : copy_list(&r->endpoints, &out->endpoints);
    int c = b < 0 ? b : copy_list(&r->secrets, &out->secrets);
    if (c < 0) {
        snapshot_refs_free(out);
        return -ENOMEM;
    }
    return a + b + c;
}
