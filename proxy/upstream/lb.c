/* Load balancing over a cluster's endpoints: weighted round robin, least request (power of two
 * choices), random, and the original destination for passthrough clusters. */
#include "proxy/upstream/lb.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"

/* A snapshot cluster's view of its runtime state: which slot each of its endpoints counts in.
 * Immutable once built; what changes is in cs. */
struct lb_state {
    cluster_state_t *cs; /* reference held */
    uint64_t total_weight;
    uint32_t n_slots;         /* 1 + the highest slot of slots[]: what a worker's counts need */
    cluster_ep_state_t **eps; /* [endpoint]: reference held */
    uint32_t slots[];         /* [endpoint]: eps[i]->slot, read on every pick */
};

int cluster_lb_init(snap_cluster_t *c, cluster_state_t *cs)
{
    struct lb_state *st = calloc(1, sizeof(*st) + c->n_endpoints * sizeof(uint32_t));
    if (st)
        st->eps = calloc(c->n_endpoints ? c->n_endpoints : 1, sizeof(*st->eps));
    if (st == NULL || st->eps == NULL) {
        free(st);
        cluster_state_unref(cs);
        return -ENOMEM;
    }
    st->cs = cs;
    c->lb = st;
    c->shared = &cs->shared;
    for (size_t i = 0; i < c->n_endpoints; i++) {
        st->total_weight += c->endpoints[i].weight;
        if (cluster_state_endpoint(cs, &c->endpoints[i].addr, &st->eps[i]) < 0)
            return -ENOMEM;
        st->slots[i] = st->eps[i]->slot;
        if (st->slots[i] >= st->n_slots)
            st->n_slots = st->slots[i] + 1;
    }
    return 0;
}

void cluster_lb_free(snap_cluster_t *c)
{
    struct lb_state *st = c->lb;
    if (st == NULL)
        return;
    for (size_t i = 0; i < c->n_endpoints; i++)
        cluster_ep_unref(st->eps[i]);
    cluster_state_unref(st->cs);
    free(st->eps);
    free(st);
    c->lb = NULL;
    c->shared = NULL;
}

static int runtime_begin(void *states, unsigned nworkers, char *err, size_t errlen)
{
    cluster_states_t *t = states;
    if (cluster_states_nworkers(t) != nworkers)
        return err_set(err, errlen, -EINVAL, "cluster state is kept for %u workers, not %u",
                       cluster_states_nworkers(t), nworkers);
    cluster_states_sweep(t);
    return 0;
}

static int runtime_link(void *states, snap_cluster_t *c)
{
    cluster_state_t *cs = NULL;
    int rc = cluster_state_get(states, c->name, &cs);
    return rc < 0 ? rc : cluster_lb_init(c, cs);
}

static void *runtime_ref(void *states)
{
    return cluster_states_ref(states);
}

static void runtime_unref(void *states)
{
    cluster_states_unref(states);
}

const snap_cluster_runtime_t cluster_runtime = {
    .begin = runtime_begin,
    .link = runtime_link,
    .unlink = cluster_lb_free,
    .ref = runtime_ref,
    .unref = runtime_unref,
};

static uint64_t next_random(cluster_worker_state_t *s)
{
    /* xorshift64*: cheap and good enough to spread load. */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * 2685821657736338717ull;
}

static size_t pick_by_weight(const snap_cluster_t *c, uint64_t point)
{
    for (size_t i = 0; i < c->n_endpoints; i++) {
        if (point < c->endpoints[i].weight)
            return i;
        point -= c->endpoints[i].weight;
    }
    return c->n_endpoints - 1;
}

int cluster_pick(const snap_cluster_t *c, unsigned worker_index, const struct sockaddr *orig_dst,
                 struct sockaddr_storage *out, int *endpoint_index)
{
    *endpoint_index = -1;
    if (c->kind == CLUSTER_ORIGINAL_DST) {
        if (orig_dst == NULL || (orig_dst->sa_family != AF_INET && orig_dst->sa_family != AF_INET6))
            return -EHOSTUNREACH;
        size_t len = orig_dst->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                     : sizeof(struct sockaddr_in);
        memset(out, 0, sizeof(*out));
        memcpy(out, orig_dst, len);
        return 0;
    }
    const struct lb_state *st = c->lb;
    if (c->n_endpoints == 0 || st == NULL || st->total_weight == 0)
        return -EHOSTUNREACH;
    cluster_worker_state_t *s = &st->cs->workers[worker_index % st->cs->nworkers];
    /* A new endpoint's slot may lie past what this worker counted so far. */
    if (s->n_active < st->n_slots &&
        cluster_state_worker_reserve(st->cs, worker_index, st->n_slots) < 0)
        return -ENOMEM;
    size_t i;
    switch (c->lb_policy) {
    case LB_RANDOM:
        i = pick_by_weight(c, next_random(s) % st->total_weight);
        break;
    case LB_LEAST_REQUEST: {
        size_t a = pick_by_weight(c, next_random(s) % st->total_weight);
        size_t b = pick_by_weight(c, next_random(s) % st->total_weight);
        i = s->active[st->slots[b]] < s->active[st->slots[a]] ? b : a;
        break;
    }
    default:
        /* Weighted round robin: walk the cumulative weights; equal weights give plain RR. */
        i = pick_by_weight(c, s->rr_next++ % st->total_weight);
        break;
    }
    s->active[st->slots[i]]++;
    *endpoint_index = (int)i;
    memcpy(out, &c->endpoints[i].addr, sizeof(c->endpoints[i].addr)); /* by its family */
    return 0;
}

static bool has_endpoint(const snap_cluster_t *c, const snap_endpoint_t *e)
{
    for (size_t i = 0; i < c->n_endpoints; i++)
        if (c->endpoints[i].weight == e->weight && strcmp(c->endpoints[i].label, e->label) == 0)
            return true;
    return false;
}

bool cluster_same_endpoints(const snap_cluster_t *a, const snap_cluster_t *b)
{
    if (a->endpoints == b->endpoints && a->n_endpoints == b->n_endpoints)
        return true; /* one cluster shared by two snapshots */
    if (a->n_endpoints != b->n_endpoints)
        return false;
    for (size_t i = 0; i < a->n_endpoints; i++)
        if (!has_endpoint(b, &a->endpoints[i]) || !has_endpoint(a, &b->endpoints[i]))
            return false;
    return true;
}

/* Worker `worker_index`'s count for endpoint i of c, or NULL when it has never counted it. */
static uint32_t *active_count(const snap_cluster_t *c, unsigned worker_index, size_t i)
{
    const struct lb_state *st = c->lb;
    if (st == NULL || i >= c->n_endpoints)
        return NULL;
    cluster_worker_state_t *s = &st->cs->workers[worker_index % st->cs->nworkers];
    return st->slots[i] < s->n_active ? &s->active[st->slots[i]] : NULL;
}

void cluster_lb_release(const snap_cluster_t *c, unsigned worker_index, int endpoint_index)
{
    uint32_t *n = endpoint_index < 0 ? NULL : active_count(c, worker_index, (size_t)endpoint_index);
    if (n && *n > 0)
        (*n)--;
}

uint32_t cluster_lb_active(const snap_cluster_t *c, unsigned worker_index, size_t endpoint_index)
{
    const uint32_t *n = active_count(c, worker_index, endpoint_index);
    return n ? *n : 0;
}
