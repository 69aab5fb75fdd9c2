/* Endpoint selection for a cluster: the load balancer policies. Their state (positions, counts
 * per endpoint) lives in the cluster's runtime state (proxy/upstream/cluster_state.h), per worker
 * so no two threads touch the same memory, and outlives the snapshot the cluster belongs to. */
#ifndef REMORA_CLUSTER_H
#define REMORA_CLUSTER_H

#include <sys/socket.h>

#include "proxy/upstream/cluster_state.h"
#include "xds/snapshot/snapshot.h"

/* The snapshot builder's way to the clusters' runtime state (xds/snapshot/snapshot_types.h):
 * its table is a cluster_states_t, and link and unlink are cluster_lb_init and
 * cluster_lb_free. Static. */
extern const snap_cluster_runtime_t cluster_runtime;

/* Links c (borrowed; the snapshot's) to its runtime state: takes cs (a reference from
 * cluster_state_get, in every case) and a reference to the entry of each of c's endpoints, and sets
 * c->lb and c->shared. Builder thread, at snapshot build. Returns 0 or -ENOMEM; cluster_lb_free
 * undoes either. */
int cluster_lb_init(snap_cluster_t *c, cluster_state_t *cs);
/* Drops what cluster_lb_init took (c borrowed). Any thread (the snapshot's last holder). */
void cluster_lb_free(snap_cluster_t *c);

/* Chooses an upstream address for a connection on worker `worker_index` (c and orig_dst
 * borrowed for the call; *out and *endpoint_index are the caller's). For ORIGINAL_DST
 * clusters it is orig_dst; otherwise an endpoint by the cluster's policy, and *endpoint_index
 * tells which (for cluster_lb_release). Returns 0, -EHOSTUNREACH when there is no endpoint, or
 * -ENOMEM when the worker's counts cannot grow to a new endpoint. */
int cluster_pick(const snap_cluster_t *c, unsigned worker_index, const struct sockaddr *orig_dst,
                 struct sockaddr_storage *out, int *endpoint_index);

/* Whether a and b (borrowed) have the same endpoints, each with the same weight, in any order:
 * what Envoy's membership_change counts. */
bool cluster_same_endpoints(const snap_cluster_t *a, const snap_cluster_t *b);

/* Ends a connection picked with cluster_pick (least-request bookkeeping); c borrowed. */
void cluster_lb_release(const snap_cluster_t *c, unsigned worker_index, int endpoint_index);

/* Worker `worker_index`'s picks of endpoint `endpoint_index` of c (borrowed) not yet released,
 * whichever snapshot they were made under. */
uint32_t cluster_lb_active(const snap_cluster_t *c, unsigned worker_index, size_t endpoint_index);

#endif
