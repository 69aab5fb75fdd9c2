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
    snap_kept_t *kept;     /* a reference */
    ProtobufCMessage *msg; /* kept's, read without reaching kept */
    const char *origin;    /* a static string, as in the set */
    size_t index;
    const char *version; /* one of its chunk's versions */
} dynamic_entry_t;

/* A snapshot's entries of a kind come in chunks of DYN_CHUNK, each reference-counted and shared
 * by the next snapshot when its part of the set is the same (the same holders, origins, places
 * and versions): an update that changed a few resources makes new chunks for those and takes
 * one reference for each of the others, instead of one per resource. */
#define DYN_CHUNK 64

typedef struct dynamic_chunk {
    _Atomic int refs; /* the snapshots holding it */
    bool validated;   /* every entry marked validated (snapshot_dynamic_validated) */
    size_t n;         /* entries, DYN_CHUNK but in a kind's last chunk */
    /* The versions the entries came with, each kept once for a run of entries of the same
     * version (owned): every resource of a SotW response has the response's version. */
    char **versions;
    size_t n_versions, cap_versions;
    dynamic_entry_t e[DYN_CHUNK];
} dynamic_chunk_t;

struct snap_dynamic {
    dynamic_chunk_t **chunks[SNAP_DYN_KINDS]; /* owned arrays of references, one per kind */
    size_t n_chunks[SNAP_DYN_KINDS];
    size_t n[SNAP_DYN_KINDS]; /* entries */
    /* Per kind, the entries that have a name by it: open addressing, 1 + the entry's place, 0
     * free; cap a power of two over twice the count. Read by the next build only. */
    uint32_t *by_name[SNAP_DYN_KINDS];
    size_t cap[SNAP_DYN_KINDS];
};

/* Entry j of kind k of d (borrowed). */
static inline dynamic_entry_t *entry_at(const struct snap_dynamic *d, int k, size_t j)
{
    return &d->chunks[k][j / DYN_CHUNK]->e[j % DYN_CHUNK];
}

/* The version `text` (borrowed) as chunk c keeps it: its last one when it reads the same (the
 * same pointer as *last, the text of the last call, is the same without reading it), else a new
 * copy. NULL when out of memory. */
static const char *keep_version(dynamic_chunk_t *c, const char *text, const char **last)
{
    if (c->n_versions && (text == *last || strcmp(c->versions[c->n_versions - 1], text) == 0)) {
        *last = text;
        return c->versions[c->n_versions - 1];
    }
    *last = text;
    if (c->n_versions == c->cap_versions) {
        size_t cap = c->cap_versions ? c->cap_versions * 2 : 2;
        char **v = realloc(c->versions, cap * sizeof(*v));
        if (v == NULL)
            return NULL;
        c->versions = v;
        c->cap_versions = cap;
    }
    char *copy = strdup(text);
    if (copy)
        c->versions[c->n_versions++] = copy;
    return copy;
}

static void chunk_unref(dynamic_chunk_t *c)
{
    if (c == NULL || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < c->n; i++)
        snap_kept_unref(c->e[i].kept);
    for (size_t i = 0; i < c->n_versions; i++)
        free(c->versions[i]);
    free(c->versions);
    free(c);
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
        const dynamic_entry_t *e = entry_at(d, k, d->by_name[k][i] - 1);
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
    for (size_t q = 0; q < d->n_chunks[k]; q++) {
        const dynamic_chunk_t *c = d->chunks[k][q], *was = prev->chunks[k][q];
        for (size_t j = 0; c != was && j < c->n; j++) { /* a shared chunk: the same names */
            const snap_kept_t *a = c->e[j].kept, *b = was->e[j].kept;
            if (a != b && (a->hash != b->hash || (a->name == NULL) != (b->name == NULL) ||
                           (a->name && strcmp(a->name, b->name) != 0)))
                return false;
        }
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
        const snap_kept_t *kept = entry_at(d, k, j)->kept;
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
    else if (prev && j < prev->n[k] && entry_at(prev, k, j)->kept->name == NULL)
        e = entry_at(prev, k, j); /* nameless resources (not from ADS) by their place */
    if (e && (e->kept->msg == r->msg || snap_message_equal(e->kept->msg, r->msg)))
        return snap_kept_ref(e->kept);
    return kept_new(r);
}

#define KEEP_AHEAD 8 /* resources */

/* Whether was (borrowed; prev's chunk at this place, NULL: none) holds exactly the n resources
 * of v (borrowed, the set's, those with a version): the holders they were handed with, their
 * origins, places and versions. Reads the set's entries and was's, not the holders. */
static bool chunk_same(const dynamic_chunk_t *was, const config_resource_t *const *v, size_t n)
{
    if (was == NULL || was->n != n)
        return false;
    const char *same_text = NULL; /* the last source text found equal to its entry's version */
    for (size_t i = 0; i < n; i++) {
        const config_resource_t *r = v[i];
        const dynamic_entry_t *e = &was->e[i];
        if (r->kept != e->kept || r->msg != e->msg || r->origin != e->origin ||
            r->index != e->index)
            return false;
        if (r->version != same_text && strcmp(r->version, e->version) != 0)
            return false;
        same_text = i + 1 < n && v[i + 1]->version == r->version ? r->version : NULL;
    }
    return true;
}

/* A new chunk of the n resources of v (borrowed), the j0-th onwards of kind k, each kept by
 * kept_for (prev borrowed), or NULL when out of memory. */
static dynamic_chunk_t *chunk_new(const struct snap_dynamic *prev, int k, size_t j0,
                                  const config_resource_t *const *v, size_t n)
{
    dynamic_chunk_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    atomic_init(&c->refs, 1);
    const char *last = NULL;
    for (size_t i = 0; i < n; i++) {
        const config_resource_t *r = v[i];
        /* Taking a holder is a locked write to it, elsewhere in memory for each: fetched a few
         * resources ahead, the misses overlap. */
        if (i + KEEP_AHEAD < n && v[i + KEEP_AHEAD]->kept)
            __builtin_prefetch(v[i + KEEP_AHEAD]->kept, 1);
        dynamic_entry_t *e = &c->e[i];
        e->origin = r->origin;
        e->index = r->index;
        e->version = keep_version(c, r->version, &last);
        e->kept = e->version ? kept_for(prev, k, j0 + i, r) : NULL;
        if (e->kept == NULL) {
            chunk_unref(c);
            return NULL;
        }
        e->msg = e->kept->msg;
        c->n++;
    }
    return c;
}

/* Keeps the resources of kind k of list (borrowed) in d (borrowed, kind k empty): chunk by
 * chunk, prev's (borrowed; NULL: none) at the same place when it holds the same. Returns 0 or
 * -ENOMEM. */
static int keep_kind(struct snap_dynamic *d, const struct snap_dynamic *prev, int k,
                     const config_resource_list_t *list)
{
    size_t n = 0;
    for (size_t i = 0; i < list->n; i++)
        n += list->v[i].version != NULL;
    size_t nc = (n + DYN_CHUNK - 1) / DYN_CHUNK;
    d->chunks[k] = calloc(nc ? nc : 1, sizeof(*d->chunks[k]));
    if (d->chunks[k] == NULL)
        return -ENOMEM;
    const config_resource_t *v[DYN_CHUNK];
    size_t i = 0;
    for (size_t q = 0; q < nc; q++) {
        size_t m = 0;
        for (; i < list->n && m < DYN_CHUNK; i++)
            if (list->v[i].version)
                v[m++] = &list->v[i];
        const dynamic_chunk_t *was = prev && q < prev->n_chunks[k] ? prev->chunks[k][q] : NULL;
        dynamic_chunk_t *c;
        if (chunk_same(was, v, m)) {
            c = (dynamic_chunk_t *)was;
            atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
        } else if ((c = chunk_new(prev, k, d->n[k], v, m)) == NULL) {
            return -ENOMEM;
        }
        d->chunks[k][d->n_chunks[k]++] = c;
        d->n[k] += m;
    }
    return 0;
}

int snapshot_dynamic_keep(const config_resources_t *res, const struct snap_dynamic *prev,
                          struct snap_dynamic **out)
{
    *out = NULL;
    size_t total = 0;
    for (int k = 0; k < SNAP_DYN_KINDS && total == 0; k++)
        for (size_t i = 0; i < kind_list(res, k)->n; i++)
            total += kind_list(res, k)->v[i].version != NULL;
    if (total == 0)
        return 0;
    struct snap_dynamic *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    for (int k = 0; k < SNAP_DYN_KINDS; k++) {
        if (keep_kind(d, prev, k, kind_list(res, k)) < 0 || index_names(d, prev, k) < 0) {
            snapshot_dynamic_free(d);
            return -ENOMEM;
        }
    }
    *out = d;
    return 0;
}

void snapshot_dynamic_free(struct snap_dynamic *d)
{
    if (d == NULL)
        return;
    for (int k = 0; k < SNAP_DYN_KINDS; k++) {
        for (size_t q = 0; q < d->n_chunks[k]; q++)
            chunk_unref(d->chunks[k][q]);
        free(d->chunks[k]);
        free(d->by_name[k]);
    }
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
            const dynamic_chunk_t *c = d->chunks[k][j / DYN_CHUNK];
            const dynamic_entry_t *e = &c->e[j++ % DYN_CHUNK];
            list->v[i].kept = e->kept;
            list->v[i].msg = e->msg;
            /* Validated at use: the running snapshot's chunk, shared because it holds these very
             * holders (chunk_same), each validated; nothing to read from them. */
            list->v[i].validated = c->validated || e->kept->validated;
        }
    }
}

void snapshot_dynamic_validated(const struct snap_dynamic *d)
{
    for (int k = 0; d && k < SNAP_DYN_KINDS; k++) {
        for (size_t q = 0; q < d->n_chunks[k]; q++) {
            dynamic_chunk_t *c = d->chunks[k][q];
            if (c->validated) /* shared, and never written again */
                continue;
            for (size_t i = 0; i < c->n; i++)
                if (!c->e[i].kept->validated) /* a shared copy is never written again */
                    c->e[i].kept->validated = true;
            c->validated = true;
        }
    }
}

bool snapshot_dynamic_shared_at(const struct snap_dynamic *a, const struct snap_dynamic *b,
                                int kind, size_t j)
{
    return a && b && j < a->n[kind] && j < b->n[kind] &&
           a->chunks[kind][j / DYN_CHUNK] == b->chunks[kind][j / DYN_CHUNK];
}

int snapshot_dynamic_add(const struct snap_dynamic *d, config_resources_t *res)
{
    for (int k = 0; d && k < SNAP_DYN_KINDS; k++) {
        config_resource_list_t *list = (config_resource_list_t *)kind_list(res, k);
        for (size_t i = 0; i < d->n[k]; i++) {
            const dynamic_entry_t *e = entry_at(d, k, i);
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
        json_array_append_new(a, entry_json(kind, entry_at(d, kind, i)));
    return a;
}
