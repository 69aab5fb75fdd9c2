/* The resources a snapshot was built from that came over xDS: copies the snapshot keeps (the
 * xDS client's messages change with its next update), so /config_dump shows them in Envoy's
 * dynamic shapes and a rebuild (certificate rotation, DNS) builds from them again. A copy is
 * made once per change of its resource: the next snapshot shares (by reference) every copy whose
 * resource came again unchanged, and so do the clusters built from it (snapshot_share.c). */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "xds/config/config.h"
#include "xds/config/pb_arena.h"
#include "xds/snapshot/snapshot_build.h"

/* One resource of one snapshot: the shared copy and what this snapshot's set said of it. */
typedef struct dynamic_entry {
    snap_kept_t *kept;  /* a reference */
    const char *origin; /* a static string, as in the set */
    size_t index;
    const char *version; /* one of its snap_dynamic's versions */
} dynamic_entry_t;

struct snap_dynamic {
    dynamic_entry_t *v[SNAP_DYN_KINDS]; /* owned, one array per kind of resource */
    size_t n[SNAP_DYN_KINDS];
    /* Per kind, the entries that have a name by it: open addressing, 1 + the entry's place, 0
     * free; cap a power of two over twice the count. Read by the next build only. */
    uint32_t *by_name[SNAP_DYN_KINDS];
    size_t cap[SNAP_DYN_KINDS];
    /* The versions the entries came with, each kept once for a run of entries of the same
     * version (owned): every resource of a SotW response has the response's version. */
    char **versions;
    size_t n_versions, cap_versions;
    const char *last_text; /* during snapshot_dynamic_keep: the text keep_version was last given */
};

/* The version `text` (borrowed) as d keeps it: the last one kept when it reads the same, else a
 * new copy. NULL when out of memory. */
static const char *keep_version(struct snap_dynamic *d, const char *text)
{
    /* The same text as the last call (the source keeps one string per run of a version): the
     * same version, without reading it. */
    if (d->n_versions &&
        (text == d->last_text || strcmp(d->versions[d->n_versions - 1], text) == 0)) {
        d->last_text = text;
        return d->versions[d->n_versions - 1];
    }
    d->last_text = text;
    if (d->n_versions == d->cap_versions) {
        size_t cap = d->cap_versions ? d->cap_versions * 2 : 4;
        char **v = realloc(d->versions, cap * sizeof(*v));
        if (v == NULL)
            return NULL;
        d->versions = v;
        d->cap_versions = cap;
    }
    char *copy = strdup(text);
    if (copy)
        d->versions[d->n_versions++] = copy;
    return copy;
}

/* The set's list of each kind. */
static const config_resource_list_t *kind_list(const config_resources_t *res, int kind)
{
    const config_resource_list_t *lists[SNAP_DYN_KINDS] = {
        [SNAP_DYN_LISTENERS] = &res->listeners,
        [SNAP_DYN_CLUSTERS] = &res->clusters,
        [SNAP_DYN_ROUTE_CONFIGS] = &res->route_configs,
        [SNAP_DYN_ENDPOINTS] = &res->endpoints,
        [SNAP_DYN_SECRETS] = &res->secrets,
    };
    return lists[kind];
}

/* A deep copy of m (new), or NULL. The packed bytes may hold inline private keys. */
static ProtobufCMessage *copy_message(const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL)
        return NULL;
    protobuf_c_message_pack(m, buf);
    ProtobufCMessage *copy = protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
    explicit_bzero(buf, len);
    free(buf);
    return copy;
}

snap_kept_t *snap_kept_ref(snap_kept_t *k)
{
    if (k)
        atomic_fetch_add_explicit(&k->refs, 1, memory_order_relaxed);
    return k;
}

void snap_kept_unref(snap_kept_t *k)
{
    if (k == NULL || atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (k->arena)
        pb_arena_free(k->arena); /* and the message in it */
    else if (k->msg && !k->borrowed)
        protobuf_c_message_free_unpacked(k->msg, NULL);
    free(k->name);
    free(k);
}

snap_kept_t *snap_kept_borrow(const ProtobufCMessage *msg, bool validated)
{
    snap_kept_t *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return NULL;
    atomic_init(&k->refs, 1);
    k->msg = (ProtobufCMessage *)msg; /* never written, nor freed: borrowed */
    k->borrowed = true;
    k->validated = validated;
    return k;
}

snap_kept_t *snap_kept_new(ProtobufCMessage *msg, const char *name)
{
    return snap_kept_new_arena(msg, NULL, name);
}

snap_kept_t *snap_kept_new_arena(ProtobufCMessage *msg, struct pb_arena *arena, const char *name)
{
    snap_kept_t *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        if (arena)
            pb_arena_free(arena);
        else
            protobuf_c_message_free_unpacked(msg, NULL);
        return NULL;
    }
    atomic_init(&k->refs, 1);
    k->msg = msg;
    k->arena = arena;
    k->name = name ? strdup(name) : NULL;
    if (name && k->name == NULL) {
        snap_kept_unref(k);
        return NULL;
    }
    k->hash = name ? snap_name_hash(name) : 0;
    return k;
}

/* A new copy of r's message, with one reference, or NULL. */
static snap_kept_t *kept_new(const config_resource_t *r)
{
    ProtobufCMessage *copy = copy_message(r->msg);
    return copy ? snap_kept_new(copy, r->name) : NULL;
}

uint64_t snap_name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

/* The entry of kind k named `name` in d (borrowed), or NULL. */
static const dynamic_entry_t *find_named(const struct snap_dynamic *d, int k, const char *name)
{
    if (d == NULL || d->cap[k] == 0)
        return NULL;
    size_t mask = d->cap[k] - 1;
    for (size_t i = snap_name_hash(name) & mask; d->by_name[k][i]; i = (i + 1) & mask) {
        const dynamic_entry_t *e = &d->v[k][d->by_name[k][i] - 1];
        if (strcmp(e->kept->name, name) == 0)
            return e;
    }
    return NULL;
}

/* Whether d's entries of kind k have prev's names (prev borrowed; NULL: none) at the same
 * places, so prev's index of them serves d: the same holders there but for a few, whose names
 * are compared. */
static bool same_names(const struct snap_dynamic *d, const struct snap_dynamic *prev, int k)
{
    if (prev == NULL || prev->n[k] != d->n[k] || prev->cap[k] == 0)
        return false;
    for (size_t j = 0; j < d->n[k]; j++) {
        const snap_kept_t *a = d->v[k][j].kept, *b = prev->v[k][j].kept;
        if (a != b && (a->hash != b->hash || (a->name == NULL) != (b->name == NULL) ||
                       (a->name && strcmp(a->name, b->name) != 0)))
            return false;
    }
    return true;
}

/* Indexes d's named entries of kind k: a copy of prev's index (borrowed; NULL: none) when the
 * names are at the same places, as after an update that changed some resources only. */
static int index_names(struct snap_dynamic *d, const struct snap_dynamic *prev, int k)
{
    size_t cap = 8;
    while (cap < 2 * d->n[k] + 1)
        cap *= 2;
    bool same = same_names(d, prev, k) && prev->cap[k] == cap;
    d->by_name[k] = same ? malloc(cap * sizeof(uint32_t)) : calloc(cap, sizeof(uint32_t));
    if (d->by_name[k] == NULL)
        return -ENOMEM;
    d->cap[k] = cap;
    if (same) {
        memcpy(d->by_name[k], prev->by_name[k], cap * sizeof(uint32_t));
        return 0;
    }
    for (size_t j = 0; j < d->n[k]; j++) {
        const snap_kept_t *kept = d->v[k][j].kept;
        if (kept->name == NULL)
            continue;
        size_t i = kept->hash & (cap - 1); /* hashed once, when it was made */
        while (d->by_name[k][i])
            i = (i + 1) & (cap - 1);
        d->by_name[k][i] = (uint32_t)(j + 1);
    }
    return 0;
}

/* The holder r's source handed with it (r->kept, when it holds r's message), with a new
 * reference; else the copy prev (borrowed; NULL: none) kept of what r (the j-th xDS resource of
 * kind k) holds, with a new reference; else a new copy. NULL when out of memory. */
static snap_kept_t *kept_for(const struct snap_dynamic *prev, int k, size_t j,
                             const config_resource_t *r)
{
    /* A resource handed with its holder (the ADS state machine's) is that holder, whether prev
     * kept it too or not: no lookup. */
    if (r->kept && r->kept->msg == r->msg)
        return snap_kept_ref(r->kept);
    const dynamic_entry_t *e = NULL;
    if (prev && r->name)
        e = find_named(prev, k, r->name);
    else if (prev && j < prev->n[k] && prev->v[k][j].kept->name == NULL)
        e = &prev->v[k][j]; /* nameless resources (not from ADS) by their place */
    if (e && (e->kept->msg == r->msg || snap_message_equal(e->kept->msg, r->msg)))
        return snap_kept_ref(e->kept);
    return kept_new(r);
}

#define KEEP_AHEAD 8 /* resources */

int snapshot_dynamic_keep(const config_resources_t *res, const struct snap_dynamic *prev,
                          struct snap_dynamic **out)
{
    *out = NULL;
    size_t total = 0;
    for (int k = 0; k < SNAP_DYN_KINDS; k++)
        for (size_t i = 0; i < kind_list(res, k)->n; i++)
            total += kind_list(res, k)->v[i].version != NULL;
    if (total == 0)
        return 0;
    struct snap_dynamic *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    for (int k = 0; k < SNAP_DYN_KINDS; k++) {
        const config_resource_list_t *list = kind_list(res, k);
        d->v[k] = calloc(list->n ? list->n : 1, sizeof(*d->v[k]));
        if (d->v[k] == NULL)
            goto oom;
        for (size_t i = 0; i < list->n; i++) {
            const config_resource_t *r = &list->v[i];
            /* Taking a holder is a locked write to it, elsewhere in memory for each: fetched a
             * few resources ahead, the misses overlap. */
            if (i + KEEP_AHEAD < list->n && list->v[i + KEEP_AHEAD].kept)
                __builtin_prefetch(list->v[i + KEEP_AHEAD].kept, 1);
            if (r->version == NULL)
                continue;
            dynamic_entry_t *e = &d->v[k][d->n[k]];
            e->origin = r->origin;
            e->index = r->index;
            e->version = keep_version(d, r->version);
            e->kept = e->version ? kept_for(prev, k, d->n[k], r) : NULL;
            if (e->kept == NULL)
                goto oom;
            d->n[k]++;
        }
        if (index_names(d, prev, k) < 0)
            goto oom;
    }
    d->last_text = NULL; /* the set's, which the snapshot outlives */
    *out = d;
    return 0;
oom:
    snapshot_dynamic_free(d);
    return -ENOMEM;
}

void snapshot_dynamic_free(struct snap_dynamic *d)
{
    if (d == NULL)
        return;
    for (int k = 0; k < SNAP_DYN_KINDS; k++) {
        for (size_t i = 0; i < d->n[k]; i++)
            snap_kept_unref(d->v[k][i].kept);
        free(d->v[k]);
        free(d->by_name[k]);
    }
    for (size_t i = 0; i < d->n_versions; i++)
        free(d->versions[i]);
    free(d->versions);
    free(d);
}

void snapshot_dynamic_use(const struct snap_dynamic *d, config_resources_t *res)
{
    for (int k = 0; d && k < SNAP_DYN_KINDS; k++) {
        config_resource_list_t *list = (config_resource_list_t *)kind_list(res, k);
        size_t j = 0;
        for (size_t i = 0; i < list->n && j < d->n[k]; i++) {
            if (list->v[i].version == NULL)
                continue;
            snap_kept_t *kept = d->v[k][j++].kept;
            list->v[i].msg = kept->msg;
            list->v[i].kept = kept;
            list->v[i].validated = kept->validated;
        }
    }
}

void snapshot_dynamic_validated(const struct snap_dynamic *d)
{
    for (int k = 0; d && k < SNAP_DYN_KINDS; k++)
        for (size_t i = 0; i < d->n[k]; i++)
            if (!d->v[k][i].kept->validated) /* a shared copy is never written again */
                d->v[k][i].kept->validated = true;
}

int snapshot_dynamic_add(const struct snap_dynamic *d, config_resources_t *res)
{
    for (int k = 0; d && k < SNAP_DYN_KINDS; k++) {
        config_resource_list_t *list = (config_resource_list_t *)kind_list(res, k);
        for (size_t i = 0; i < d->n[k]; i++) {
            const dynamic_entry_t *e = &d->v[k][i];
            int rc = config_resources_add_xds(list, e->kept->msg, e->origin, e->index, e->version);
            if (rc < 0)
                return rc;
            list->v[list->n - 1].name = e->kept->name;
            list->v[list->n - 1].kept = e->kept;
        }
    }
    return 0;
}
/* m as the JSON of an Any: "@type" first, then its fields. */
static json_t *any_json(const ProtobufCMessage *m)
{
    json_t *o = json_object();
    char url[300];
    snprintf(url, sizeof(url), "type.googleapis.com/%s", m->descriptor->name);
    json_object_set_new(o, "@type", json_string(url));
    json_t *fields = config_to_json(m);
    json_object_update(o, fields);
    json_decref(fields);
    return o;
}

/* One entry of Envoy's admin.v3 config dump messages for kind (ListenersConfigDump's
 * DynamicListener, ClustersConfigDump's DynamicCluster, ...). */
static json_t *entry_json(int kind, const dynamic_entry_t *e)
{
    static const char *const field[SNAP_DYN_KINDS] = {
        [SNAP_DYN_LISTENERS] = "listener",
        [SNAP_DYN_CLUSTERS] = "cluster",
        [SNAP_DYN_ROUTE_CONFIGS] = "route_config",
        [SNAP_DYN_ENDPOINTS] = "endpoint_config",
        [SNAP_DYN_SECRETS] = "secret",
    };
    json_t *state = json_object();
    if (kind == SNAP_DYN_SECRETS)
        json_object_set_new(
            state, "name",
            json_string(((const Envoy__Extensions__TransportSockets__Tls__V3__Secret *)e->kept->msg)
                            ->name));
    if (e->version[0])
        json_object_set_new(state, "version_info", json_string(e->version));
    json_object_set_new(state, field[kind], any_json(e->kept->msg));
    if (kind != SNAP_DYN_LISTENERS)
        return state;
    json_t *l = json_object(); /* a listener's state is one of several it may be in */
    const char *name = ((const Envoy__Config__Listener__V3__Listener *)e->kept->msg)->name;
    json_object_set_new(l, "name", json_string(name ? name : ""));
    json_object_set_new(l, "active_state", state);
    return l;
}

json_t *snapshot_dynamic_json(const struct snap_dynamic *d, int kind)
{
    if (d == NULL || d->n[kind] == 0)
        return NULL;
    json_t *a = json_array();
    for (size_t i = 0; i < d->n[kind]; i++)
        json_array_append_new(a, entry_json(kind, &d->v[kind][i]));
    return a;
}
