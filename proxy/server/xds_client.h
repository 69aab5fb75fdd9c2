/* The xDS client: the ADS stream to the control plane a bootstrap's dynamic_resources names, on
 * the main loop. It keeps one gRPC connection to the ADS cluster (reconnecting with backoff),
 * drives the protocol state machine (xds/ads/ads.h) with what arrives, builds the next snapshot
 * from the bootstrap and the resources held whenever they change, installs it through the host,
 * and subscribes to the route configurations, endpoints and secrets the config references. A bad
 * push is NACKed and the last good config keeps running; a dead control plane leaves the last
 * config running (docs/xds.md). Main thread only. */
#ifndef REMORA_XDS_CLIENT_H
#define REMORA_XDS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "proxy/core/host.h"

typedef struct xds_client xds_client_t;

/* Starts the client the running snapshot of host asks for (host borrowed; must outlive the
 * client). on_first(arg) (arg borrowed) is called once, when the first response of every type
 * subscribed at start has been taken in, or after the bootstrap's initial fetch timeout (the
 * longer of lds_config's and cds_config's initial_fetch_timeout, 15 s unless given),
 * whichever comes first: the server waits for it before it starts serving, as Envoy's init
 * manager does. When the bootstrap names no control plane, *out is NULL and on_first is never
 * called. Otherwise *out is owned by the caller, who ends it with xds_client_stop. Returns 0, or
 * negative with err saying why (err the caller's, errlen bytes). */
int xds_client_start(const host_t *host, void (*on_first)(void *arg), void *arg, xds_client_t **out,
                     char *err, size_t errlen);

/* Ends the stream and frees x (taken) once its handles have closed (a later turn of the loop).
 * NULL is ignored. */
void xds_client_stop(xds_client_t *x);

/* /config_dump: snap's dump (snap borrowed: the running config) with what x (borrowed) knows of
 * each xDS resource beside it, in Envoy's shape: `last_updated` on the ones held, and
 * `error_state` (the rejected version, when, why) on the ones whose last version was rejected.
 * A new string the caller frees, or NULL. */
char *xds_client_config_dump(const xds_client_t *x, const snapshot_t *snap);

/* Calls fn(arg, name, value) for each of x's text readouts (cluster_manager.cds.version_text,
 * listener_manager.lds.version_text: the last version accepted, "" before the first), sorted
 * by name. x and all borrowed for the call. */
void xds_client_text_readouts(const xds_client_t *x,
                              void (*fn)(void *arg, const char *name, const char *value),
                              void *arg);

#endif
