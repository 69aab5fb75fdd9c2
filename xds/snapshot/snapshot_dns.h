/* Internal to xds/snapshot*.c: STRICT_DNS and LOGICAL_DNS clusters, their settings and targets
 * parsed into the structs of snapshot.h, and their endpoints made from resolved addresses. */
#ifndef REMORA_SNAPSHOT_DNS_H
#define REMORA_SNAPSHOT_DNS_H

#include <stddef.h>
#include <stdint.h>

#include "xds/snapshot/snapshot.h"

struct Envoy__Config__Cluster__V3__Cluster;

/* Parses the DNS settings of m (borrowed; what borrowed for the call) into a new c->dns (owned by
 * c, freed with snapshot_dns_free) for c->kind, and checks what Envoy checks: a LOGICAL_DNS cluster
 * has exactly one lb_endpoint, refresh rates are over 1 ms. On error returns negative with err
 * reading "<what>: <field>: <what is wrong>". */
int snapshot_dns_parse(const struct Envoy__Config__Cluster__V3__Cluster *m, snap_cluster_t *c,
                       const char *what, char *err, size_t errlen);

/* Adds an lb_endpoint to d (borrowed): host (borrowed, copied) is the host name as written, or NULL
 * when addr is an IP literal; addr (borrowed, copied) carries the port either way (family AF_UNSPEC
 * for a name). Returns 0 or -ENOMEM. */
int snapshot_dns_add_target(snap_dns_t *d, const char *host, const struct sockaddr_storage *addr,
                            uint32_t weight);

/* Makes c->endpoints (c borrowed; replacing what is there) from c->dns's targets: an IP literal as
 * it is, a name as resolver (borrowed; NULL: nothing resolved) knows it, with the target's port and
 * weight. STRICT_DNS takes every address, LOGICAL_DNS the first. Returns 0 or -ENOMEM. */
int snapshot_dns_endpoints(snap_cluster_t *c, const snap_resolver_t *resolver);

/* Takes d: frees it and its targets. NULL is a no-op. */
void snapshot_dns_free(snap_dns_t *d);

#endif
