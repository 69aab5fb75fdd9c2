/* Cluster runtime state that outlives snapshots: the circuit-breaker counts of a cluster and its
 * load balancer's positions and per-endpoint counts, kept in a table by cluster name (and, within
 * a cluster, by endpoint address), so a new snapshot (certificate rotation, DNS change, later
 * every CDS/EDS push) neither resets them nor lets a limit be passed by connections that
 * started under the previous one. Plain C and atomics, no libuv: the snapshot builder (xds/)
 * links each cluster it builds to its state here. */
#ifndef REMORA_CLUSTER_STATE_H
#define REMORA_CLUSTER_STATE_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "xds/snapshot/snapshot.h"

/* The table, name -> state. Lookups and insertions happen only while a snapshot is built, on the
 * thread that builds snapshots with it (the main thread); references to what it holds are
 * dropped on any thread (a worker frees the last reference to an old snapshot). */
typedef struct cluster_states cluster_states_t;

/* One endpoint address of a cluster: its slot in every worker's per-endpoint counts. The slot
 * stays the endpoint's for as long as a snapshot lists the address, whatever its position in
 * each snapshot's endpoint list. */
typedef struct cluster_ep_state {
    snap_addr_t addr;
    uint32_t slot;
    _Atomic int refs; /* snapshot clusters listing it; 0: the table frees it at the next build */
    struct cluster_state *owner; /* the cluster's state, which outlives every reference to this */
} cluster_ep_state_t;

/* One worker's load-balancer state for a cluster: only that worker reads or writes it, so it
 * takes no atomics; aligned so no two workers share a cache line. */
typedef struct cluster_worker_state {
    alignas(64) uint64_t rr_next; /* round robin: the next point on the cumulative weights */
    uint64_t rng;                 /* random and least request: xorshift64* state */
    uint32_t *active;             /* [slot]: picks not yet released (least request) */
    uint32_t n_active;            /* slots active[] has room for; grown by the worker */
} cluster_worker_state_t;

typedef struct cluster_state {
    cluster_shared_t shared;      /* circuit breaking, across workers (atomics) */
    alignas(64) _Atomic int refs; /* snapshot clusters linked to it; 0: freed at the next build */
    /* Set by whoever drops the last reference to one of its endpoint entries: the next sweep
     * looks at its entries (and only then). */
    _Atomic bool eps_let_go;
    struct cluster_states *table; /* the table it is in, which outlives every reference to it */
    char *name;
    unsigned nworkers;
    /* Main thread only (the builder): the endpoint entries and the slots free for reuse. */
    cluster_ep_state_t **eps;
    size_t n_eps, cap_eps;
    uint32_t *free_slots; /* slots of swept endpoints, reused before new ones */
    size_t n_free, cap_free;
    uint32_t next_slot;         /* slots [0, next_slot) have been handed out */
    struct cluster_state *next; /* the table's list */
    cluster_worker_state_t workers[];
} cluster_state_t;

/* A new, empty table for snapshots of nworkers workers, with one reference for the caller.
 * Returns 0 or -ENOMEM. */
int cluster_states_new(unsigned nworkers, cluster_states_t **out);
/* Adds a reference to t and returns it: a new reference the caller drops with
 * cluster_states_unref. */
cluster_states_t *cluster_states_ref(cluster_states_t *t);
/* Drops a reference (taken from the caller); the last one frees the table with every state in it
 * (none may still be referenced then: each snapshot drops its clusters' states before its table).
 * Any thread. */
void cluster_states_unref(cluster_states_t *t);
/* t borrowed. */
unsigned cluster_states_nworkers(const cluster_states_t *t);

/* Builder thread: frees the states, and the endpoint entries of the others, that no snapshot
 * holds any more (t borrowed); a slot freed so is reused by the next new endpoint. A snapshot build
 * calls it once before linking its clusters. It costs nothing when no reference was let go since
 * the last sweep (the last reference to a state or an endpoint entry marks the table, and the
 * state, for it): a build that keeps every cluster and endpoint does not walk the table. */
void cluster_states_sweep(cluster_states_t *t);

/* Builder thread: the state of cluster `name` (borrowed; copied), the one already in t
 * (borrowed) or a
 * new one, with a reference for the caller (cluster_state_unref). Returns 0 or -ENOMEM. */
int cluster_state_get(cluster_states_t *t, const char *name, cluster_state_t **out);
/* Drops a reference taken with cluster_state_get (the caller's, taken). Any thread. */
void cluster_state_unref(cluster_state_t *s);

/* Builder thread: the entry of endpoint address addr (borrowed; copied) in s (borrowed), the one
 * already there or a new one with a free slot, with a reference for the caller (cluster_ep_unref).
 * Returns 0 or -ENOMEM. */
int cluster_state_endpoint(cluster_state_t *s, const snap_addr_t *addr, cluster_ep_state_t **out);
/* Drops a reference taken with cluster_state_endpoint (the caller's, taken). Any thread. */
void cluster_ep_unref(cluster_ep_state_t *e);

/* Whether a and b (borrowed) are the same IPv4 or IPv6 address and port. */
bool cluster_same_addr(const struct sockaddr *a, const struct sockaddr *b);

/* Worker `w`'s thread: makes room in its active[] (owned by s, borrowed) for slots [0, n_slots).
 * Returns 0 or -ENOMEM (active[] is left as it was). */
int cluster_state_worker_reserve(cluster_state_t *s, unsigned w, uint32_t n_slots);

#endif
