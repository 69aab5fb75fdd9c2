/* The bootstrap's dynamic_resources: where listeners and clusters come from besides the file.
 * Remora takes them over ADS only (one gRPC stream to a cluster of the bootstrap), as Envoy
 * writes it: ads_config with api_type GRPC or DELTA_GRPC (or the AGGREGATED_ forms), transport
 * V3, one envoy_grpc service; lds_config and cds_config as {ads: {}}. Everything else is refused
 * by name. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "xds/config/config.h"
#include "xds/snapshot/snapshot_ads.h"

typedef Envoy__Config__Core__V3__ConfigSource config_source_msg_t;
typedef Envoy__Config__Core__V3__ApiConfigSource api_source_msg_t;

static bool version_v3(Envoy__Config__Core__V3__ApiVersion v)
{
    return v == ENVOY__CONFIG__CORE__V3__API_VERSION__AUTO ||
           v == ENVOY__CONFIG__CORE__V3__API_VERSION__V3;
}

/* Envoy's initial_fetch_timeout when a ConfigSource leaves it out. */
#define INITIAL_FETCH_TIMEOUT_MS 15000

/* lds_config / cds_config: {ads: {}} and nothing else, with its initial_fetch_timeout in
 * *fetch_ms (15 s unset; 0: wait without end). */
static int parse_source(const config_source_msg_t *m, const char *what, bool *out,
                        uint64_t *fetch_ms, char *err, size_t errlen)
{
    *out = false;
    *fetch_ms = INITIAL_FETCH_TIMEOUT_MS;
    if (m == NULL)
        return 0;
    *fetch_ms = config_duration_ms(m->initial_fetch_timeout, INITIAL_FETCH_TIMEOUT_MS);
    if (m->config_source_specifier_case !=
        ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS)
        return err_set(err, errlen, -EINVAL,
                       "dynamic_resources.%s: only {ads: {}} is supported (resources over the "
                       "ads_config stream)",
                       what);
    if (!version_v3(m->resource_api_version))
        return err_set(err, errlen, -EINVAL,
                       "dynamic_resources.%s.resource_api_version: only V3 is supported", what);
    *out = true;
    return 0;
}

static int parse_api_source(const api_source_msg_t *m, snap_ads_t *ads, char *err, size_t errlen)
{
    switch (m->api_type) {
    case ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__GRPC:
    case ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__AGGREGATED_GRPC:
        ads->delta = false;
        break;
    case ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__DELTA_GRPC:
    case ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__AGGREGATED_DELTA_GRPC:
        ads->delta = true;
        break;
    default:
        return err_set(err, errlen, -EINVAL,
                       "dynamic_resources.ads_config.api_type: GRPC or DELTA_GRPC is required "
                       "(REST is not supported)");
    }
    if (!version_v3(m->transport_api_version))
        return err_set(err, errlen, -EINVAL,
                       "dynamic_resources.ads_config.transport_api_version: only V3 is supported");
    if (m->n_cluster_names > 0)
        return err_set(err, errlen, -EINVAL,
                       "dynamic_resources.ads_config.cluster_names: REST only; give grpc_services");
    if (m->n_grpc_services != 1)
        return err_set(err, errlen, -EINVAL,
                       "dynamic_resources.ads_config.grpc_services: exactly one is required");
    const Envoy__Config__Core__V3__GrpcService *g = m->grpc_services[0];
    if (g->target_specifier_case !=
            ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__TARGET_SPECIFIER_ENVOY_GRPC ||
        g->envoy_grpc->cluster_name == NULL || g->envoy_grpc->cluster_name[0] == '\0')
        return err_set(err, errlen, -EINVAL,
                       "dynamic_resources.ads_config.grpc_services[0]: envoy_grpc.cluster_name "
                       "is required");
    ads->cluster = strdup(g->envoy_grpc->cluster_name);
    if (g->envoy_grpc->authority && g->envoy_grpc->authority[0])
        ads->authority = strdup(g->envoy_grpc->authority);
    if (ads->cluster == NULL ||
        (g->envoy_grpc->authority && g->envoy_grpc->authority[0] && ads->authority == NULL))
        return -ENOMEM;
    ads->timeout_ms = config_duration_ms(g->timeout, 0);
    ads->node_first_only = m->set_node_on_first_message_only;
    return 0;
}

int snapshot_ads_parse(const void *dynamic_resources, snap_ads_t *ads, char *err, size_t errlen)
{
    const Envoy__Config__Bootstrap__V3__Bootstrap__DynamicResources *d = dynamic_resources;
    memset(ads, 0, sizeof(*ads));
    if (d == NULL)
        return 0;
    if ((d->lds_resources_locator && d->lds_resources_locator[0]) ||
        (d->cds_resources_locator && d->cds_resources_locator[0]))
        return err_set(err, errlen, -EINVAL,
                       "dynamic_resources: lds_resources_locator and cds_resources_locator "
                       "(xdstp) are not supported");
    int rc = parse_source(d->lds_config, "lds_config", &ads->lds, &ads->lds_fetch_ms, err, errlen);
    if (rc == 0)
        rc = parse_source(d->cds_config, "cds_config", &ads->cds, &ads->cds_fetch_ms, err, errlen);
    if (rc < 0)
        return rc;
    if (d->ads_config == NULL) {
        if (ads->lds || ads->cds)
            return err_set(err, errlen, -EINVAL,
                           "dynamic_resources: lds_config/cds_config {ads: {}} need ads_config");
        return 0;
    }
    ads->enabled = true;
    return parse_api_source(d->ads_config, ads, err, errlen);
}

void snapshot_ads_free(snap_ads_t *ads)
{
    free(ads->cluster);
    free(ads->authority);
    memset(ads, 0, sizeof(*ads));
}
