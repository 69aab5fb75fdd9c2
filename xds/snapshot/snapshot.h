/* The running configuration: an immutable, reference-counted snapshot of listeners, filter
 * chains and clusters, translated from Envoy v3 messages (a YAML bootstrap today, xDS later)
 * through one path. Workers read it without locks; nothing in it changes after publication:
 * what traffic changes (circuit-breaker counts, load-balancer state) is in each cluster's
 * runtime state, which the snapshot links to and which outlives it. */
#ifndef REMORA_SNAPSHOT_H
#define REMORA_SNAPSHOT_H

#include <stddef.h>
#include <sys/socket.h>

#include "base/stats.h"
#include "xds/snapshot/snapshot_types.h"

/* Builds a snapshot from a Bootstrap message. Takes `bootstrap` (a
 * Envoy__Config__Bootstrap__V3__Bootstrap*) in every case. opts (borrowed; NULL: nothing) names
 * the network filters, the clusters' runtime state and the DNS addresses it is built with.
 * Defines its stats in `stats` (borrowed; must outlive the snapshot). On error returns negative
 * and err says what and where ("listener 'x': filter chain 0: ..."). The new snapshot has one
 * reference. */
int snapshot_build(void *bootstrap, const snap_build_opts_t *opts, stats_store_t *stats,
                   unsigned nworkers, snapshot_t **out, char *err, size_t errlen);

/* Builds a new snapshot from a copy of cur's Bootstrap message and the xDS resources cur kept
 * (cur borrowed), reading every DataSource file again and taking DNS addresses from resolver
 * (borrowed; NULL: none), with what cur was built with (its filters, its clusters' runtime state):
 * how a certificate rotation or a DNS change makes the next config. A cluster whose files read
 * the same bytes and whose addresses are the same is cur's, shared with cur (its endpoints, TLS
 * contexts, stat ids, runtime link), not built again. Same contract otherwise as snapshot_build. */
int snapshot_rebuild(const snapshot_t *cur, const snap_resolver_t *resolver, stats_store_t *stats,
                     snapshot_t **out, char *err, size_t errlen);

/* Keeps the addresses of addrs[0..n) that `family` takes (AUTO: the IPv6 ones if any, else the
 * IPv4 ones; V4_PREFERRED the reverse; ALL: both), in their order, at the front of addrs
 * (borrowed, rewritten in place). Other address families are dropped. Returns how many. */
size_t snapshot_dns_select(snap_dns_family_t family, struct sockaddr_storage *addrs, size_t n);

/* Loads a YAML bootstrap file (path borrowed) and builds it with opts (borrowed). Same
 * contract otherwise as snapshot_build: *out is new, the caller drops it with snapshot_unref. */
int snapshot_load_file(const char *path, const snap_build_opts_t *opts, stats_store_t *stats,
                       unsigned nworkers, snapshot_t **out, char *err, size_t errlen);

/* Adds a reference to snap and returns it: a new reference the caller drops with
 * snapshot_unref. */
snapshot_t *snapshot_ref(snapshot_t *snap);
/* Drops one reference taken from the caller; the last one frees snap. NULL is a no-op. */
void snapshot_unref(snapshot_t *snap);

/* Fills *out with copies of the names of the resources snap's listeners and clusters take from
 * the resource set it was built from (snap borrowed): route configurations over RDS, cluster
 * load assignments over EDS, secrets over SDS, each list sorted by name and with no name twice,
 * each name marked missing when the set lacked it. What an xDS client subscribes to. *out is
 * new, owned by the caller (snapshot_refs_free). Returns how many names are missing (0: the
 * snapshot awaits nothing), or -ENOMEM with *out empty. */
int snapshot_references(const snapshot_t *snap, snap_refs_t *out);

/* Frees what refs owns (refs borrowed) and empties it. */
void snapshot_refs_free(snap_refs_t *refs);

/* Borrowed pointer into snap (valid while snap is), or NULL; name borrowed for the call. */
const snap_cluster_t *snapshot_find_cluster(const snapshot_t *snap, const char *name);

/* The EDS cluster of snap (borrowed) taking load assignment `service` (borrowed) when snap says
 * that is the only one (snap->eds_own_names: every EDS cluster takes its own name's): the
 * cluster of that name if it takes it, else NULL. Borrowed from snap. */
const snap_cluster_t *snapshot_eds_cluster(const snapshot_t *snap, const char *service);

/* Whether a and b (both borrowed) are copies of one built cluster, shared between snapshots
 * because its inputs did not change: the same name, endpoints, stat ids and runtime state. A
 * "no" says nothing (a cluster built again may well be equal). */
bool snapshot_cluster_shared(const snap_cluster_t *a, const snap_cluster_t *b);
/* How many of b's clusters from place i on are a's, shared at the same places as one block (i
 * the start of a block of SNAP_SHARE_BLOCK places, both a and b borrowed): its size when a and
 * b hold the same block there, else 0. Lets a walk over b skip what an update left alone. */
size_t snapshot_clusters_shared_from(const snapshot_t *a, const snapshot_t *b, size_t i);

/* Borrowed pointer into snap (valid while snap is), or NULL; name borrowed for the call. */
const snap_listener_t *snapshot_find_listener(const snapshot_t *snap, const char *name);

/* Whether listeners a and b (both borrowed) want the same listening socket: the same address
 * as configured (port 0 included) and the same bind_to_port. A listener whose socket would
 * differ is replaced (new sockets, the old ones drained), not updated in place. */
bool snapshot_listener_same_socket(const snap_listener_t *a, const snap_listener_t *b);

/* The active config as JSON (Envoy's config_dump shape: the bootstrap's resources as static,
 * those that came over xDS as dynamic); snap borrowed. Returns a new malloc'd
 * string the caller frees with free(), or NULL. */
char *snapshot_config_dump(const snapshot_t *snap);

/* Formats an address (sa, borrowed) as "ip:port" into buf (the caller's, len bytes). */
void snapshot_format_addr(const struct sockaddr *sa, char *buf, size_t len);

#endif
