/* Clusters shared between consecutive snapshots: a cluster whose inputs did not change (its
 * Cluster resource, the load assignment and secrets it takes, the files its TLS context reads,
 * its DNS answers) is not built again; the new snapshot holds a copy of the previous one's
 * cluster (its own struct, so route tables and filters keep pointing into the snapshot that
 * holds them) whose pointers go to the same endpoints, TLS contexts and runtime link, owned by
 * the share all copies hold a reference to. And the tables that find clusters and listeners by
 * name. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xds/snapshot/snapshot.h"
#include "xds/snapshot/snapshot_build.h"
#include "xds/snapshot/snapshot_dns.h"
#include "xds/snapshot/snapshot_tls.h"

/* A resource the cluster took from the set, as it was then. */
typedef struct snap_dep {
    int kind;          /* SNAP_DYN_ENDPOINTS or SNAP_DYN_SECRETS */
    char *name;        /* owned */
    snap_kept_t *kept; /* a reference; NULL: the set lacked it */
} snap_dep_t;

struct snap_cluster_share {
    _Atomic int refs; /* the snapshots' copies of the cluster */
    snap_kept_t *src; /* its Cluster's copy (a reference); NULL: a static cluster */
    stats_store_t *stats;
    const snap_cluster_runtime_t *runtime; /* NULL: not linked */
    void *states;                          /* a reference, when linked */
    snap_dep_t *deps;                      /* owned */
    size_t n_deps, cap_deps;
};

int snap_share_new(snap_cluster_t *c, snap_kept_t *src, stats_store_t *stats)
{
    struct snap_cluster_share *sh = calloc(1, sizeof(*sh));
    if (sh == NULL)
        return -ENOMEM;
    atomic_init(&sh->refs, 1);
    sh->src = snap_kept_ref(src);
    sh->stats = stats;
    c->share = sh;
    return 0;
}

int snap_share_dep(snap_build_t *b, int kind, const char *name, const config_resource_t *r)
{
    struct snap_cluster_share *sh = b->share;
    if (sh == NULL)
        return 0;
    if (sh->n_deps == sh->cap_deps) {
        size_t cap = sh->cap_deps ? sh->cap_deps * 2 : 2;
        snap_dep_t *v = realloc(sh->deps, cap * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        sh->deps = v;
        sh->cap_deps = cap;
    }
    char *copy = strdup(name);
    if (copy == NULL)
        return -ENOMEM;
    sh->deps[sh->n_deps++] =
        (snap_dep_t){.kind = kind, .name = copy, .kept = r ? snap_kept_ref(r->kept) : NULL};
    return 0;
}

void snap_share_linked(snap_cluster_t *c, const snap_cluster_runtime_t *runtime, void *states)
{
    c->share->runtime = runtime;
    c->share->states = runtime->ref(states);
}

void snap_cluster_release(snap_cluster_t *c)
{
    struct snap_cluster_share *sh = c->share;
    if (sh == NULL || atomic_fetch_sub_explicit(&sh->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (sh->runtime) {
        sh->runtime->unlink(c);
        sh->runtime->unref(sh->states); /* after the cluster dropped its state */
    }
    snapshot_tls_free(c->tls);
    snapshot_dns_free(c->dns);
    free(c->eds_service);
    free(c->endpoints);
    free(c->name);
    free(c->stat_name);
    for (size_t i = 0; i < sh->n_deps; i++) {
        free(sh->deps[i].name);
        snap_kept_unref(sh->deps[i].kept);
    }
    free(sh->deps);
    snap_kept_unref(sh->src);
    free(sh);
}

void snap_cluster_mark_plain(snap_cluster_t *c)
{
    const struct snap_cluster_share *sh = c->share;
    c->plain_src = c->plain_eds = NULL;
    if (sh == NULL || sh->src == NULL || c->tls || c->dns || sh->n_deps > 1)
        return;
    if (sh->n_deps == 1) {
        const snap_dep_t *d = &sh->deps[0];
        /* The name it borrows into the snapshot's references must be the one it looked up. */
        if (d->kind != SNAP_DYN_ENDPOINTS || d->kept == NULL || c->eds_service == NULL ||
            strcmp(d->name, c->eds_service) != 0)
            return;
        c->plain_eds = d->kept;
    }
    c->plain_src = sh->src;
}

int snap_cluster_reuse_plain(snap_build_t *b, const snap_cluster_t *old, const config_resource_t *r,
                             const stats_store_t *stats, snap_cluster_t *c)
{
    const snapshot_t *s = b->snap, *prev = b->prev;
    if (old->plain_src == NULL || old->plain_src != r->kept || prev->stats != stats)
        return 0;
    /* prev's clusters are all linked to prev's runtime table (a build links or shares only with
     * its own): one check for all of them. A build without (a trial) takes any. */
    if (s->cluster_runtime &&
        (prev->cluster_runtime != s->cluster_runtime || prev->cluster_states != s->cluster_states))
        return 0;
    if (old->plain_eds) {
        const snap_index_t *eds = &b->endpoints;
        if (b->endpoints_next >= eds->n || eds->v[b->endpoints_next].r->kept != old->plain_eds)
            return 0;
        /* The set names each resource once: the holder old took, at the place the next
         * assignment is, is what old's eds_service finds. */
        if (snap_refs_add_borrowed(&b->snap->references.endpoints, old->eds_service, false) < 0)
            return -ENOMEM;
        b->endpoints_next++;
    }
    *c = *old; /* its reference: its block's (snap_share_block_end) */
    return 1;
}

/* What releasing a cluster's share reads of the cluster (snap_cluster_release and the runtime's
 * unlink, cluster_lb_free): kept per place by a block, 80 bytes of the cluster's 360. */
typedef struct share_rec {
    struct snap_cluster_share *share;
    tls_context_config_t *tls;
    snap_dns_t *dns;
    char *eds_service, *name, *stat_name;
    snap_endpoint_t *endpoints;
    size_t n_endpoints;
    struct lb_state *lb;
    cluster_shared_t *shared;
} share_rec_t;

struct snap_share_block {
    _Atomic int refs; /* the snapshots holding it */
    size_t n;
    share_rec_t rec[SNAP_SHARE_BLOCK]; /* each a reference to its share */
};

static void block_unref(struct snap_share_block *k)
{
    if (k == NULL || atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < k->n; i++) {
        const share_rec_t *r = &k->rec[i];
        snap_cluster_t c = {.share = r->share,
                            .tls = r->tls,
                            .dns = r->dns,
                            .eds_service = r->eds_service,
                            .name = r->name,
                            .stat_name = r->stat_name,
                            .endpoints = r->endpoints,
                            .n_endpoints = r->n_endpoints,
                            .lb = r->lb,
                            .shared = r->shared};
        snap_cluster_release(&c);
    }
    free(k);
}

int snap_share_block_end(snapshot_t *s, const snapshot_t *prev, size_t from, uint64_t counted,
                         size_t total)
{
    size_t n = s->n_clusters - from, q = from / SNAP_SHARE_BLOCK;
    if (s->share_blocks == NULL) {
        size_t nb = (total + SNAP_SHARE_BLOCK - 1) / SNAP_SHARE_BLOCK;
        s->share_blocks = calloc(nb ? nb : 1, sizeof(*s->share_blocks));
    }
    struct snap_share_block *k = NULL;
    if (s->share_blocks && counted == 0 && prev && q < prev->n_share_blocks &&
        prev->share_blocks[q]->n == n) {
        k = prev->share_blocks[q]; /* the same shares at the same places */
        atomic_fetch_add_explicit(&k->refs, 1, memory_order_relaxed);
    } else if (s->share_blocks && (k = malloc(sizeof(*k))) != NULL) {
        atomic_init(&k->refs, 1);
        k->n = n;
        for (size_t i = 0; i < n; i++) {
            const snap_cluster_t *c = &s->clusters[from + i];
            if (!(counted >> i & 1))
                atomic_fetch_add_explicit(&c->share->refs, 1, memory_order_relaxed);
            k->rec[i] = (share_rec_t){c->share, c->tls,       c->dns,       c->eds_service,
                                      c->name,  c->stat_name, c->endpoints, c->n_endpoints,
                                      c->lb,    c->shared};
        }
    }
    if (k == NULL) {
        for (size_t i = 0; i < n; i++)
            if (counted >> i & 1)
                snap_cluster_release(&s->clusters[from + i]);
        s->n_clusters = from;
        return -ENOMEM;
    }
    s->share_blocks[s->n_share_blocks++] = k;
    return 0;
}

void snap_share_blocks_free(snapshot_t *s)
{
    for (size_t q = 0; q < s->n_share_blocks; q++)
        block_unref(s->share_blocks[q]);
    free(s->share_blocks);
}

bool snap_cluster_built_from(const snap_cluster_t *c, const snap_kept_t *src)
{
    return src != NULL && c->share != NULL && c->share->src == src;
}

size_t snapshot_clusters_shared_from(const snapshot_t *a, const snapshot_t *b, size_t i)
{
    size_t q = i / SNAP_SHARE_BLOCK;
    if (i % SNAP_SHARE_BLOCK || q >= a->n_share_blocks || q >= b->n_share_blocks ||
        a->share_blocks[q] != b->share_blocks[q])
        return 0;
    return a->share_blocks[q]->n; /* every holder of a block has its shares at its places */
}

bool snapshot_cluster_shared(const snap_cluster_t *a, const snap_cluster_t *b)
{
    return a->share != NULL && a->share == b->share;
}

bool snap_cluster_same_stats(const snap_cluster_t *was, const snap_cluster_t *c,
                             const stats_store_t *st)
{
    return was->share && was->share->stats == st && (was->tls != NULL) == (c->tls != NULL) &&
           strcmp(was->stat_name, c->stat_name) == 0;
}

/* Whether the file d was read from (borrowed; none: inline) holds d's bytes still. */
static bool same_file(const tls_config_data_t *d)
{
    if (d->filename == NULL)
        return true;
    int fd = open(d->filename, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    char *buf = malloc(d->len + 1);
    size_t got = 0;
    ssize_t n = 1;
    /* One byte more than d holds: a longer file is a changed one. */
    while (buf && got < d->len + 1 && n > 0) {
        n = read(fd, buf + got, d->len + 1 - got);
        if (n < 0 && errno == EINTR)
            n = 1;
        else if (n > 0)
            got += (size_t)n;
    }
    close(fd);
    bool same = buf && n >= 0 && got == d->len && memcmp(buf, d->data, d->len) == 0;
    if (buf)
        explicit_bzero(buf, got); /* a private key */
    free(buf);
    return same;
}

static bool same_tls_files(const tls_context_config_t *t)
{
    return t == NULL ||
           (same_file(&t->cert_chain) && same_file(&t->private_key) && same_file(&t->trusted_ca));
}

/* Whether resolver (borrowed) gives old's DNS targets (old borrowed) the endpoints old has.
 * -ENOMEM when out of memory. */
static int same_dns(const snap_cluster_t *old, const snap_resolver_t *resolver)
{
    if (old->dns == NULL)
        return 1;
    snap_cluster_t now = *old;
    now.endpoints = NULL;
    now.n_endpoints = 0;
    if (snapshot_dns_endpoints(&now, resolver) < 0)
        return -ENOMEM;
    bool same = now.n_endpoints == old->n_endpoints &&
                (old->n_endpoints == 0 || memcmp(now.endpoints, old->endpoints,
                                                 old->n_endpoints * sizeof(*old->endpoints)) == 0);
    free(now.endpoints);
    return same;
}

/* Whether every resource old took from its set (sh's) is the same copy in b's set. */
static bool same_deps(snap_build_t *b, const struct snap_cluster_share *sh)
{
    for (size_t i = 0; i < sh->n_deps; i++) {
        const snap_dep_t *d = &sh->deps[i];
        const snap_index_t *eds = &b->endpoints;
        const config_resource_t *r;
        if (d->kind == SNAP_DYN_ENDPOINTS && d->kept && b->endpoints_next < eds->n &&
            eds->v[b->endpoints_next].r->kept == d->kept)
            /* The holder d took, where the next assignment is: the set names each resource
             * once, and this one by d's name (its message's), so it is what the name finds. */
            r = eds->v[b->endpoints_next++].r;
        else if (d->kind == SNAP_DYN_ENDPOINTS)
            r = snap_index_find_next(eds, d->name, &b->endpoints_next);
        else
            r = snap_index_find(&b->secrets, d->name);
        if ((r ? r->kept : NULL) != d->kept || (r && r->kept == NULL))
            return false;
    }
    return true;
}

/* prev's (borrowed) cluster named `name` (borrowed; h its snap_name_hash; src the holder of the
 * Cluster resource it comes from, or NULL), or NULL. Clusters come in the same order build after
 * build, so the one at the same place i is tried first: by its resource's holder when it was
 * built from the same one (no string read), else by name. */
const snap_cluster_t *snap_prev_cluster(const snapshot_t *prev, size_t i, const char *name,
                                        uint64_t h, const snap_kept_t *src)
{
    if (i < prev->n_clusters &&
        (snap_cluster_built_from(&prev->clusters[i], src) ||
         (prev->clusters[i].name && strcmp(prev->clusters[i].name, name) == 0)))
        return &prev->clusters[i];
    if (prev->cluster_names.cap == 0) /* made by hand, not built */
        return snapshot_find_cluster(prev, name);
    long j = snap_name_index_find_hashed(&prev->cluster_names, prev->clusters,
                                         sizeof(*prev->clusters), name, h);
    return j < 0 ? NULL : &prev->clusters[j];
}

int snap_cluster_reuse(snap_build_t *b, const snap_cluster_t *old, const config_resource_t *r,
                       const snap_resolver_t *resolver, stats_store_t *stats, snap_cluster_t *c)
{
    const struct snap_cluster_share *sh = old->share;
    const snapshot_t *s = b->snap;
    if (sh == NULL || sh->stats != stats)
        return 0;
    /* The same Cluster: the same shared copy for one over xDS (the copy old holds cannot have
     * been freed and another made at its address), the same static resource of the same
     * bootstrap otherwise (b->prev's, copied: the build's set says so). */
    if (r->kept ? sh->src != r->kept : (sh->src != NULL || !b->res->static_validated))
        return 0;
    /* Linked to the runtime state this build links to; a build without (a trial) takes any. */
    if (s->cluster_runtime &&
        (sh->runtime != s->cluster_runtime || sh->states != s->cluster_states))
        return 0;
    if (!same_deps(b, sh) || !same_tls_files(old->tls))
        return 0;
    int rc = same_dns(old, resolver);
    if (rc <= 0)
        return rc;
    snap_refs_t *refs = &b->snap->references;
    for (size_t i = 0; i < sh->n_deps; i++) {
        const snap_dep_t *d = &sh->deps[i];
        snap_ref_list_t *list = d->kind == SNAP_DYN_ENDPOINTS ? &refs->endpoints : &refs->secrets;
        if (snap_refs_add_borrowed(list, d->name, d->kept == NULL) < 0) /* the share's */
            return -ENOMEM;
    }
    *c = *old;
    atomic_fetch_add_explicit(&c->share->refs, 1, memory_order_relaxed);
    return 1;
}

_Static_assert(offsetof(snap_cluster_t, name) == 0, "snap_name_index_t reads the name first");
_Static_assert(offsetof(snap_listener_t, name) == 0, "snap_name_index_t reads the name first");

static const char *name_at(const void *base, size_t stride, size_t i)
{
    return *(char *const *)((const char *)base + i * stride);
}

int snap_name_index_init(snap_name_index_t *ix, size_t n)
{
    size_t cap = 8;
    while (cap < 2 * n + 1)
        cap *= 2;
    ix->slot = calloc(2 * cap, sizeof(*ix->slot));
    if (ix->slot == NULL)
        return -ENOMEM;
    ix->hash = ix->slot + cap;
    ix->cap = cap;
    return 0;
}

long snap_name_index_add(snap_name_index_t *ix, const void *base, size_t stride, size_t i)
{
    return snap_name_index_add_hashed(ix, base, stride, i,
                                      snap_name_hash(name_at(base, stride, i)));
}

long snap_name_index_add_hashed(snap_name_index_t *ix, const void *base, size_t stride, size_t i,
                                uint64_t hash)
{
    const char *name = name_at(base, stride, i);
    size_t mask = ix->cap - 1, h = hash & mask;
    for (; ix->slot[h]; h = (h + 1) & mask)
        if (ix->hash[h] == (uint32_t)hash &&
            strcmp(name_at(base, stride, ix->slot[h] - 1), name) == 0)
            return (long)ix->slot[h] - 1;
    ix->slot[h] = (uint32_t)(i + 1);
    ix->hash[h] = (uint32_t)hash;
    return -1;
}

long snap_name_index_find(const snap_name_index_t *ix, const void *base, size_t stride,
                          const char *name)
{
    if (ix->cap == 0 || name == NULL)
        return -1;
    return snap_name_index_find_hashed(ix, base, stride, name, snap_name_hash(name));
}

long snap_name_index_find_hashed(const snap_name_index_t *ix, const void *base, size_t stride,
                                 const char *name, uint64_t hash)
{
    if (ix->cap == 0)
        return -1;
    size_t mask = ix->cap - 1;
    for (size_t h = hash & mask; ix->slot[h]; h = (h + 1) & mask)
        if (ix->hash[h] == (uint32_t)hash &&
            strcmp(name_at(base, stride, ix->slot[h] - 1), name) == 0)
            return (long)ix->slot[h] - 1;
    return -1;
}

const snap_cluster_t *snapshot_find_cluster(const snapshot_t *snap, const char *name)
{
    if (snap->cluster_names.cap == 0) { /* made by hand, not built */
        for (size_t i = 0; i < snap->n_clusters; i++)
            if (strcmp(snap->clusters[i].name, name) == 0)
                return &snap->clusters[i];
        return NULL;
    }
    long i =
        snap_name_index_find(&snap->cluster_names, snap->clusters, sizeof(*snap->clusters), name);
    return i < 0 ? NULL : &snap->clusters[i];
}

const snap_listener_t *snapshot_find_listener(const snapshot_t *snap, const char *name)
{
    if (snap->listener_names.cap == 0) { /* made by hand, not built */
        for (size_t i = 0; i < snap->n_listeners; i++)
            if (strcmp(snap->listeners[i].name, name) == 0)
                return &snap->listeners[i];
        return NULL;
    }
    long i = snap_name_index_find(&snap->listener_names, snap->listeners, sizeof(*snap->listeners),
                                  name);
    return i < 0 ? NULL : &snap->listeners[i];
}

const snap_cluster_t *snapshot_eds_cluster(const snapshot_t *snap, const char *service)
{
    const snap_cluster_t *c = snapshot_find_cluster(snap, service);
    return c && c->eds_own_name ? c : NULL;
}
