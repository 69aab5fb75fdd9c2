/* The ADS client as a snapshot asks for it: its node, its mode and its subscriptions, made from
 * the bootstrap's node and dynamic_resources, and kept in step with the names the running
 * config references (route configurations, endpoints, secrets). */
#ifndef REMORA_ADS_CONFIG_H
#define REMORA_ADS_CONFIG_H

#include <stddef.h>

#include "xds/ads/ads.h"
#include "xds/snapshot/snapshot.h"

/* A new client (*out, the caller's: ads_free) for snap's dynamic_resources (snap borrowed;
 * snap->ads.enabled): the bootstrap's node with user_agent_name "remora" and version (borrowed,
 * copied), the mode of ads_config, set_node_on_first_message_only, validate (with ctx,
 * borrowed; NULL: the field rules alone) checking each resource before it is taken, and
 * listeners and clusters subscribed when lds_config and cds_config say so, then what snap
 * references. Returns 0, or negative with err saying why. */
int ads_client_new(const snapshot_t *snap, const char *version, ads_validate_fn validate, void *ctx,
                   ads_t **out, char *err, size_t errlen);

/* Subscribes a (borrowed) to exactly the route configurations, endpoints and secrets snap
 * (borrowed) references, and no others. Returns 0, or negative with err saying why. */
int ads_follow_snapshot(ads_t *a, const snapshot_t *snap, char *err, size_t errlen);

#endif
