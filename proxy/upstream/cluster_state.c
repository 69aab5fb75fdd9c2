/* The per-process table of cluster runtime state: found by name at each snapshot build, held by
 * the snapshots that link to it, and freed by the builder once no snapshot holds it any more.
 *
 * References are atomic because the last one to a snapshot may go on any worker; everything
 * else in the table is the builder's. An entry whose count fell to zero is never freed by the
 * thread that dropped it: only the builder frees (cluster_states_sweep), and only the builder
 * takes new references, so an entry it finds at zero is either revived by it or freed by it,
 * never both. The thread that drops a last reference also marks the table (and, for an
 * endpoint entry, its cluster's state), so the builder's sweep walks the table only after
 * something was let go, and the endpoint entries only of the states marked. Clusters are found by
 * name through a hash table (a build looks up each of its clusters it does not share with the
 * last snapshot); endpoints, a handful per cluster, by a linear scan. */
#include "proxy/upstream/cluster_state.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

struct cluster_states {
    _Atomic int refs;
    /* A state or an endpoint entry lost its last reference since the last sweep. */
    _Atomic bool let_go;
    unsigned nworkers;
    cluster_state_t *states; /* newest first */
    /* By name: open addressing with linear probing; cap a power of two, at most half full.
     * Rebuilt whole when it grows or a sweep frees states. */
    cluster_state_t **by_name;
    size_t cap, n;
};

static uint64_t name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

/* Fills t->by_name again, at least `want` slots, from t->states. Returns 0 or -ENOMEM (the
 * table is then left as it was). */
static int reindex(cluster_states_t *t, size_t want)
{
    size_t n = 0, cap = 16;
    for (cluster_state_t *s = t->states; s; s = s->next)
        n++;
    while (cap < want || cap < 2 * n + 2)
        cap *= 2;
    cluster_state_t **v = calloc(cap, sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    for (cluster_state_t *s = t->states; s; s = s->next) {
        size_t i = name_hash(s->name) & (cap - 1);
        while (v[i])
            i = (i + 1) & (cap - 1);
        v[i] = s;
    }
    free(t->by_name);
    t->by_name = v;
    t->cap = cap;
    t->n = n;
    return 0;
}

bool cluster_same_addr(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}

int cluster_states_new(unsigned nworkers, cluster_states_t **out)
{
    cluster_states_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    atomic_init(&t->refs, 1);
    t->nworkers = nworkers ? nworkers : 1;
    *out = t;
    return 0;
}

cluster_states_t *cluster_states_ref(cluster_states_t *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

unsigned cluster_states_nworkers(const cluster_states_t *t)
{
    return t->nworkers;
}

/* Whether nothing holds x any more: every write of the threads that held it is visible. */
static bool unheld(_Atomic int *refs)
{
    return atomic_load_explicit(refs, memory_order_acquire) == 0;
}

static void state_free(cluster_state_t *s)
{
    for (size_t i = 0; i < s->n_eps; i++)
        free(s->eps[i]);
    for (unsigned w = 0; w < s->nworkers; w++)
        free(s->workers[w].active);
    free(s->eps);
    free(s->free_slots);
    free(s->name);
    free(s);
}

void cluster_states_unref(cluster_states_t *t)
{
    if (t == NULL || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    while (t->states) {
        cluster_state_t *s = t->states;
        t->states = s->next;
        state_free(s);
    }
    free(t->by_name);
    free(t);
}

/* Frees s's endpoint entries that no snapshot lists any more; their slots go to the free list.
 * Their counts are zero: every pick from them was made, and released, under a snapshot that
 * held the entry. */
static void sweep_endpoints(cluster_state_t *s)
{
    size_t kept = 0;
    for (size_t i = 0; i < s->n_eps; i++) {
        cluster_ep_state_t *e = s->eps[i];
        if (!unheld(&e->refs)) {
            s->eps[kept++] = e;
            continue;
        }
        if (s->n_free == s->cap_free) {
            size_t cap = s->cap_free ? s->cap_free * 2 : 8;
            uint32_t *v = realloc(s->free_slots, cap * sizeof(*v));
            if (v == NULL) { /* keep the entry: it is found again, or swept next time */
                s->eps[kept++] = e;
                continue;
            }
            s->free_slots = v;
            s->cap_free = cap;
        }
        s->free_slots[s->n_free++] = e->slot;
        free(e);
    }
    s->n_eps = kept;
}

/* Marks *flag: a last reference was dropped (release: the dropping thread's writes to what it
 * let go come before the mark the sweep reads). */
static void mark_let_go(_Atomic bool *flag)
{
    atomic_store_explicit(flag, true, memory_order_release);
}

void cluster_states_sweep(cluster_states_t *t)
{
    /* Cleared before the walk: a reference let go during it marks the table again, for the
     * next sweep. */
    if (!atomic_exchange_explicit(&t->let_go, false, memory_order_acq_rel))
        return;
    bool freed = false;
    for (cluster_state_t **sp = &t->states; *sp;) {
        cluster_state_t *s = *sp;
        if (unheld(&s->refs)) {
            *sp = s->next;
            state_free(s);
            freed = true;
            continue;
        }
        if (atomic_exchange_explicit(&s->eps_let_go, false, memory_order_acq_rel))
            sweep_endpoints(s);
        sp = &s->next;
    }
    if (freed && reindex(t, 0) < 0) { /* no table to trust: lookups scan the list */
        free(t->by_name);
        t->by_name = NULL;
        t->cap = t->n = 0;
    }
}

static cluster_state_t *state_new(cluster_states_t *t, const char *name)
{
    size_t size = sizeof(cluster_state_t) + t->nworkers * sizeof(cluster_worker_state_t);
    size = (size + 63) / 64 * 64; /* aligned_alloc wants a multiple of the alignment */
    cluster_state_t *s = aligned_alloc(64, size);
    if (s == NULL)
        return NULL;
    memset(s, 0, size);
    s->name = strdup(name);
    if (s->name == NULL) {
        free(s);
        return NULL;
    }
    s->nworkers = t->nworkers;
    s->table = t;
    for (unsigned w = 0; w < s->nworkers; w++) {
        /* Different starting points per worker spread the first connections. */
        s->workers[w].rr_next = w;
        s->workers[w].rng = 0x9e3779b97f4a7c15ull * (w + 1) ^ (uint64_t)(uintptr_t)s;
    }
    return s;
}

/* The state named `name` in t, or NULL. */
static cluster_state_t *find_state(const cluster_states_t *t, const char *name)
{
    if (t->by_name == NULL) {
        cluster_state_t *s = t->states;
        while (s && strcmp(s->name, name) != 0)
            s = s->next;
        return s;
    }
    size_t mask = t->cap - 1;
    for (size_t i = name_hash(name) & mask; t->by_name[i]; i = (i + 1) & mask)
        if (strcmp(t->by_name[i]->name, name) == 0)
            return t->by_name[i];
    return NULL;
}

int cluster_state_get(cluster_states_t *t, const char *name, cluster_state_t **out)
{
    cluster_state_t *s = find_state(t, name);
    if (s == NULL) {
        s = state_new(t, name);
        if (s == NULL)
            return -ENOMEM;
        s->next = t->states;
        t->states = s;
        if (t->by_name && 2 * (t->n + 1) <= t->cap) {
            size_t i = name_hash(name) & (t->cap - 1);
            while (t->by_name[i])
                i = (i + 1) & (t->cap - 1);
            t->by_name[i] = s;
            t->n++;
        } else if (reindex(t, 2 * t->cap) < 0) {
            free(t->by_name); /* the list has it: lookups scan until the next sweep */
            t->by_name = NULL;
            t->cap = t->n = 0;
        }
    }
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    *out = s;
    return 0;
}

void cluster_state_unref(cluster_state_t *s)
{
    if (s == NULL)
        return;
    cluster_states_t *t = s->table; /* read first: once let go, s is the builder's to free */
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_release) == 1)
        mark_let_go(&t->let_go);
}

int cluster_state_endpoint(cluster_state_t *s, const snap_addr_t *addr, cluster_ep_state_t **out)
{
    for (size_t i = 0; i < s->n_eps; i++) {
        if (cluster_same_addr(&s->eps[i]->addr.sa, &addr->sa)) {
            atomic_fetch_add_explicit(&s->eps[i]->refs, 1, memory_order_relaxed);
            *out = s->eps[i];
            return 0;
        }
    }
    if (s->n_eps == s->cap_eps) {
        size_t cap = s->cap_eps ? s->cap_eps * 2 : 8;
        cluster_ep_state_t **v = realloc(s->eps, cap * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        s->eps = v;
        s->cap_eps = cap;
    }
    cluster_ep_state_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return -ENOMEM;
    e->addr = *addr;
    e->owner = s;
    e->slot = s->n_free ? s->free_slots[--s->n_free] : s->next_slot++;
    atomic_init(&e->refs, 1);
    s->eps[s->n_eps++] = e;
    *out = e;
    return 0;
}

void cluster_ep_unref(cluster_ep_state_t *e)
{
    if (e == NULL)
        return;
    /* Read first: once let go, e is the builder's to free; its state is not, as the caller holds
     * that too (a cluster drops its endpoint entries before its state). */
    cluster_state_t *s = e->owner;
    if (atomic_fetch_sub_explicit(&e->refs, 1, memory_order_release) == 1) {
        mark_let_go(&s->eps_let_go);
        mark_let_go(&s->table->let_go);
    }
}

int cluster_state_worker_reserve(cluster_state_t *s, unsigned w, uint32_t n_slots)
{
    cluster_worker_state_t *ws = &s->workers[w % s->nworkers];
    if (n_slots <= ws->n_active)
        return 0;
    uint32_t n = ws->n_active ? ws->n_active : 8;
    while (n < n_slots)
        n *= 2;
    uint32_t *v = realloc(ws->active, n * sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    memset(v + ws->n_active, 0, (n - ws->n_active) * sizeof(*v));
    ws->active = v;
    ws->n_active = n;
    return 0;
}
