/* Endpoint selection for a cluster: the load balancer policies, with per-worker state hung off
 * the immutable snapshot so no two threads touch the same memory. */
#ifndef REMORA_CLUSTER_H
#define REMORA_CLUSTER_H

#include <sys/socket.h>

#include "xds/snapshot/snapshot.h"

/* Allocates the per-worker balancer state for c (sets c->lb). Main thread, at snapshot build. */
int cluster_lb_init(snap_cluster_t *c, unsigned nworkers);
void cluster_lb_free(snap_cluster_t *c);

/* Chooses an upstream address for a connection on worker `worker_index`. For ORIGINAL_DST
 * clusters it is orig_dst; otherwise an endpoint by the cluster's policy, and *endpoint_index
 * tells which (for cluster_lb_release). Returns 0, or -EHOSTUNREACH when there is no endpoint. */
int cluster_pick(const snap_cluster_t *c, unsigned worker_index, const struct sockaddr *orig_dst,
                 struct sockaddr_storage *out, int *endpoint_index);

/* Whether a and b (borrowed) have the same endpoints, each with the same weight, in any order:
 * what Envoy's membership_change counts. */
bool cluster_same_endpoints(const snap_cluster_t *a, const snap_cluster_t *b);

/* Ends a connection picked with cluster_pick (least-request bookkeeping). */
void cluster_lb_release(const snap_cluster_t *c, unsigned worker_index, int endpoint_index);

#endif
