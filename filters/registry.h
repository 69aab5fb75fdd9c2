/* The one list of filters Remora ships, looked up by type URL (as Envoy does) or by name: what
 * the snapshot builder is given to find network filters (filter_registry), and what the HTTP
 * connection manager's config parser finds its HTTP filters by. */
#ifndef REMORA_FILTER_REGISTRY_H
#define REMORA_FILTER_REGISTRY_H

#include "proxy/http/http_filter.h"
#include "proxy/listener/network_filter.h"
#include "xds/snapshot/snapshot_types.h"

/* The network filters, for snap_build_opts_t.filters. Static. */
extern const snap_filter_registry_t filter_registry;

/* Looks up a network filter by type URL, or by filter name when type_url is NULL (both borrowed
 * for the call). Returns static ops, or NULL. */
const net_filter_ops_t *filter_network_lookup(const char *name, const char *type_url);

/* Looks up an HTTP filter by type URL, or by filter name when type_url is NULL (both borrowed
 * for the call). Returns static ops, or NULL. */
const http_filter_ops_t *filter_http_lookup(const char *name, const char *type_url);

#endif
