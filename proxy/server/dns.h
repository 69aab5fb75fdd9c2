/* Host names of STRICT_DNS and LOGICAL_DNS clusters, resolved on the main loop with libuv's
 * resolver (getaddrinfo on libuv's thread pool, off every data path): each name is looked up
 * again at its cluster's dns_refresh_rate, the addresses of its last good answer are kept, and
 * when a cluster's addresses change the next snapshot is built with them and installed, the way
 * a certificate rotation installs one. Main thread only. */
#ifndef REMORA_DNS_H
#define REMORA_DNS_H

#include <stdbool.h>

#include "proxy/core/host.h"

typedef struct dns dns_t;

/* Starts resolving the host names of the DNS clusters of host's running snapshot on host->loop;
 * host is borrowed and must outlive the resolver. Every name is looked up at the loop's next
 * turn; once each has had its first answer (addresses or failure), the snapshot is rebuilt with
 * the addresses, installed with host_install_snapshot, and on_ready(arg) is called, once (arg
 * borrowed). Defines nothing: it counts into the clusters' update_attempt, update_success and
 * update_failure. When the snapshot has no name to resolve, *out is NULL and on_ready is never
 * called. Otherwise *out is owned by the caller, who ends it with dns_stop. Returns 0 or
 * -ENOMEM. */
int dns_start(const host_t *host, void (*on_ready)(void *arg), void *arg, dns_t **out);

/* Stops refreshing: closes the timers, cancels lookups in flight, and frees d (taken) once
 * every handle is closed and every lookup has called back (a later turn of the host's loop).
 * NULL is ignored. */
void dns_stop(dns_t *d);

/* What a snapshot build asks for the addresses d holds (borrowed, valid until dns_stop), or
 * NULL when d is NULL: for snapshot_rebuild. */
const snap_resolver_t *dns_resolver(const dns_t *d);

/* Whether a lookup that ended with `status` (a libuv UV_EAI_* code) was an answer without
 * addresses (the name does not exist, or has none of the families asked for) rather than a
 * failure to get an answer. Envoy's resolver reports such answers as successful and empty:
 * a STRICT_DNS target then has no endpoints, while LOGICAL_DNS keeps its address. */
bool dns_status_is_empty_answer(int status);

#endif
