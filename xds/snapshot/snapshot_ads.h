/* The bootstrap's dynamic_resources, read into snap_ads_t (xds/snapshot/snapshot_types.h). */
#ifndef REMORA_SNAPSHOT_ADS_H
#define REMORA_SNAPSHOT_ADS_H

#include <stddef.h>

#include "xds/snapshot/snapshot_types.h"

/* Reads dynamic_resources (an Envoy__Config__Bootstrap__V3__Bootstrap__DynamicResources*,
 * borrowed; NULL: none) into *ads (the caller's; its strings are new, freed by
 * snapshot_ads_free). Returns 0, or negative with err naming the field. */
int snapshot_ads_parse(const void *dynamic_resources, snap_ads_t *ads, char *err, size_t errlen);

/* Frees what snapshot_ads_parse put in ads (the caller's) and empties it. */
void snapshot_ads_free(snap_ads_t *ads);

#endif
