/* The xDS client's stats under Envoy's names: per type (listener_manager.lds.*,
 * cluster_manager.cds.*, xds.rds/eds/sds.*), per resource (http.<stat_prefix>.rds.<name>.*,
 * cluster.<name>.update_*, sds.<name>.*), control_plane.*, and the text readouts
 * cluster_manager.cds.version_text and listener_manager.lds.version_text. Main thread only. */
#ifndef REMORA_XDS_STATS_H
#define REMORA_XDS_STATS_H

#include <stdbool.h>

#include "base/stats.h"
#include "xds/ads/ads.h"
#include "xds/snapshot/snapshot.h"

typedef struct xds_stats xds_stats_t;

/* Defines the per-type stats in store (borrowed), counted through slots (borrowed); both must
 * outlive *out, which is new (xds_stats_free). Returns 0 or a negative error. */
int xds_stats_new(stats_store_t *store, stats_slots_t *slots, xds_stats_t **out);

/* Frees s (taken; NULL is fine). */
void xds_stats_free(xds_stats_t *s);

/* The connection to the control plane came up (up) or went down: control_plane.connected_state
 * (s borrowed, as in every call below). */
void xds_stats_connected(xds_stats_t *s, bool up);

/* The stream ended: update_failure of every type a (borrowed) subscribes. */
void xds_stats_stream_failed(xds_stats_t *s, const ads_t *a);

/* A set of type_url (borrowed) that passed resource by resource did not build:
 * update_rejected. */
void xds_stats_build_rejected(xds_stats_t *s, const char *type_url);

/* One response, as ads_on_response reported it in res (borrowed), with a's state after it
 * (borrowed): the type's update_attempt and update_success or update_rejected, its version
 * (listeners and clusters: the version gauge and version_text); and for route configurations,
 * endpoints and secrets, the stats of each resource the response changed, rejected or removed.
 * Endpoints count under the clusters of running or warming (borrowed; either may be NULL) that
 * take them, route configurations under the connection manager that names them. */
void xds_stats_response(xds_stats_t *s, const ads_t *a, const ads_result_t *res,
                        const snapshot_t *running, const snapshot_t *warming);

/* A resource of type_url (borrowed) asked for by name was given up on after its initial fetch
 * timeout: the type's init_fetch_timeout. */
void xds_stats_fetch_timeout(xds_stats_t *s, const char *type_url);

/* Calls fn(arg, name, value) for each text readout, sorted by name (s and all borrowed; name and
 * value valid for the call). */
void xds_stats_text_readouts(const xds_stats_t *s,
                             void (*fn)(void *arg, const char *name, const char *value), void *arg);

#endif
