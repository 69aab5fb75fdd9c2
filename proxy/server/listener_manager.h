/* The listener manager, as Envoy's: which listeners run, their listening sockets (one per
 * worker, SO_REUSEPORT, bound here so that bind errors name the listener), what each new snapshot
 * adds, removes and changes, and the open-connection counts behind the runtime connection
 * limits. Main thread only; the workers see only the listen sets and counts it hands them. */
#ifndef REMORA_LISTENER_MANAGER_H
#define REMORA_LISTENER_MANAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "base/stats.h"
#include "proxy/core/worker.h"
#include "xds/snapshot/snapshot.h"

typedef struct listener_manager listener_manager_t;

/* A manager for nworkers workers, counting into stats (borrowed) through the main thread's
 * slots (borrowed); both must outlive it. *out is new, freed with listener_manager_free.
 * Returns 0 or -ENOMEM. */
int listener_manager_new(unsigned nworkers, stats_store_t *stats, stats_slots_t *slots,
                         listener_manager_t **out);

/* Brings the running listeners to snap's (borrowed), by name:
 * - a listener snap adds gets nworkers new sockets (port 0: the port the first one got);
 * - one it removes stops: it drains (listener_removed, total_listeners_draining);
 * - one whose socket would differ (snapshot_listener_same_socket) is replaced: new sockets, the
 *   old ones drain (listener_modified);
 * - one with the same socket and another config stays, its connections untouched
 *   (listener_modified, listener_in_place_updated).
 * The sockets for worker w are added to sockets[w] (the caller's lists, nworkers of them; each
 * socket taken by the list, to hand to that worker with snap). A listener that cannot bind is
 * logged with its name and counted (listener_create_failure); with strict (at start) it fails
 * the call, otherwise the rest still installs: an added listener is left out, a replaced one
 * keeps its old sockets, and the next snapshot tries again. Returns 0, or with strict a
 * negative error with err set. */
int listener_manager_update(listener_manager_t *lm, const snapshot_t *snap, bool strict,
                            worker_socket_t **sockets, char *err, size_t errlen);

/* Binds l's (borrowed) sockets now, one per worker as listener_manager_update would, and keeps
 * them for the next update, which takes them for l (same name and socket) instead of binding
 * again; what that update does not take, it closes. How an xDS client makes the bind part of
 * accepting a listener. Nothing is bound for a listener that binds no port, or that runs with
 * the same socket already (it keeps its own); a newer reservation of the same name replaces an
 * older one. Returns 0, or a negative errno with err saying "cannot bind '<address>': <why>". */
int listener_manager_reserve(listener_manager_t *lm, const snap_listener_t *l, char *err,
                             size_t errlen);

/* Frees the draining listeners whose every worker listener is gone (sockets closed, last
 * connection counted out), and the counts of names no listener holds; sets the gauges. lm
 * borrowed. */
void listener_manager_sweep(listener_manager_t *lm);

/* Calls fn(arg, name, addr) for each running listener, in the running snapshot's order: addr is
 * where it accepts (the bound port for port 0; the configured address without a socket). All
 * borrowed for the call. */
void listener_manager_list(const listener_manager_t *lm,
                           void (*fn)(void *arg, const char *name, const struct sockaddr *addr),
                           void *arg);

/* Open connections, over all workers, of the listeners that count toward
 * overload.global_downstream_max_connections: for worker_start (borrowed; lives as long as
 * lm). */
_Atomic int64_t *listener_manager_global_count(listener_manager_t *lm);

/* Frees lm (taken) with every listen set and count, once no worker runs and no socket it
 * handed out is left (the workers are joined). NULL is ignored. */
void listener_manager_free(listener_manager_t *lm);

#endif
