/* Load balancing over a cluster's endpoints: weighted round robin, least request (power of two
 * choices), random, and the original destination for passthrough clusters. */
#include "proxy/upstream/lb.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* One worker's view; padded so workers never share a cache line. */
typedef struct lb_slot {
    uint64_t rr_next;
    uint64_t rng;
    uint32_t *active; /* per endpoint, for LEAST_REQUEST */
    char pad[40];
} lb_slot_t;

struct lb_state {
    unsigned nworkers;
    uint64_t total_weight;
    lb_slot_t slots[];
};

int cluster_lb_init(snap_cluster_t *c, unsigned nworkers)
{
    struct lb_state *st = calloc(1, sizeof(*st) + nworkers * sizeof(lb_slot_t));
    if (st == NULL)
        return -ENOMEM;
    st->nworkers = nworkers;
    for (size_t i = 0; i < c->n_endpoints; i++)
        st->total_weight += c->endpoints[i].weight;
    for (unsigned w = 0; w < nworkers; w++) {
        /* Different starting points per worker spread the first connections. */
        st->slots[w].rr_next = w;
        st->slots[w].rng = 0x9e3779b97f4a7c15ull * (w + 1) ^ (uint64_t)(uintptr_t)c;
        if (c->n_endpoints) {
            st->slots[w].active = calloc(c->n_endpoints, sizeof(uint32_t));
            if (st->slots[w].active == NULL) {
                c->lb = st;
                cluster_lb_free(c);
                return -ENOMEM;
            }
        }
    }
    c->lb = st;
    return 0;
}

void cluster_lb_free(snap_cluster_t *c)
{
    if (c->lb == NULL)
        return;
    for (unsigned w = 0; w < c->lb->nworkers; w++)
        free(c->lb->slots[w].active);
    free(c->lb);
    c->lb = NULL;
}

static uint64_t next_random(lb_slot_t *s)
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
    if (c->n_endpoints == 0 || c->lb == NULL || c->lb->total_weight == 0)
        return -EHOSTUNREACH;
    lb_slot_t *s = &c->lb->slots[worker_index % c->lb->nworkers];
    size_t i;
    switch (c->lb_policy) {
    case LB_RANDOM:
        i = pick_by_weight(c, next_random(s) % c->lb->total_weight);
        break;
    case LB_LEAST_REQUEST: {
        size_t a = pick_by_weight(c, next_random(s) % c->lb->total_weight);
        size_t b = pick_by_weight(c, next_random(s) % c->lb->total_weight);
        i = s->active[b] < s->active[a] ? b : a;
        break;
    }
    default:
        /* Weighted round robin: walk the cumulative weights; equal weights give plain RR. */
        i = pick_by_weight(c, s->rr_next++ % c->lb->total_weight);
        break;
    }
    s->active[i]++;
    *endpoint_index = (int)i;
    *out = c->endpoints[i].addr;
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
    if (a->n_endpoints != b->n_endpoints)
        return false;
    for (size_t i = 0; i < a->n_endpoints; i++)
        if (!has_endpoint(b, &a->endpoints[i]) || !has_endpoint(a, &b->endpoints[i]))
            return false;
    return true;
}

void cluster_lb_release(const snap_cluster_t *c, unsigned worker_index, int endpoint_index)
{
    if (endpoint_index < 0 || c->lb == NULL || (size_t)endpoint_index >= c->n_endpoints)
        return;
    lb_slot_t *s = &c->lb->slots[worker_index % c->lb->nworkers];
    if (s->active[endpoint_index] > 0)
        s->active[endpoint_index]--;
}
