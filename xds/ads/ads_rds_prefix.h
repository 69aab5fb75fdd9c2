/* The stat_prefix under which Envoy counts a route configuration's RDS updates: that of the
 * HTTP connection manager that takes it over RDS. */
#ifndef REMORA_ADS_RDS_PREFIX_H
#define REMORA_ADS_RDS_PREFIX_H

#include "xds/ads/ads.h"
#include "xds/snapshot/snapshot.h"

/* Finds the first HTTP connection manager whose rds names route configuration `name`, among
 * the static listeners of snap's bootstrap, then the listeners a holds (a, snap and name
 * borrowed; a or snap may be NULL), and sets *out to a new copy of its stat_prefix (the
 * caller frees it). Returns 1 when found, 0 when none takes it (*out NULL), or -ENOMEM. Costs
 * an unpack of every connection manager it passes: call it once per name. */
int ads_rds_stat_prefix(const ads_t *a, const snapshot_t *snap, const char *name, char **out);

#endif
