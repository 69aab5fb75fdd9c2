/* Which HTTP connection manager takes a route configuration over RDS: Envoy counts a route
 * configuration's updates under the stat_prefix of the connection manager that subscribed it
 * (http.<stat_prefix>.rds.<route_config_name>.*), which only the listeners' messages tell. */
#include "xds/ads/ads_rds_prefix.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "xds/config/config.h"

typedef Envoy__Config__Listener__V3__Listener listener_msg_t;
typedef Envoy__Config__Listener__V3__FilterChain chain_msg_t;
typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager
    hcm_msg_t;

/* The stat_prefix (a new string in *out) of chain's (borrowed; NULL: none) connection manager
 * when it takes `name` over RDS: 1; 0 when it does not; -ENOMEM. */
static int chain_prefix(const chain_msg_t *chain, const char *name, char **out)
{
    for (size_t i = 0; chain && i < chain->n_filters; i++) {
        const Envoy__Config__Listener__V3__Filter *f = chain->filters[i];
        if (f->config_type_case != ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG)
            continue;
        ProtobufCMessage *m = NULL;
        char err[256];
        if (config_any_unpack(
                f->typed_config,
                &envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor,
                &m, err, sizeof(err)) < 0)
            continue;
        const hcm_msg_t *h = (const hcm_msg_t *)m;
        int rc = 0;
        /* rds shares a union with route_config: only the case says which one is there. */
        bool by_rds =
            h->route_specifier_case ==
                ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS &&
            h->rds && h->rds->route_config_name;
        if (by_rds && strcmp(h->rds->route_config_name, name) == 0) {
            *out = strdup(h->stat_prefix ? h->stat_prefix : "");
            rc = *out ? 1 : -ENOMEM;
        }
        protobuf_c_message_free_unpacked(m, NULL);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int listener_prefix(const listener_msg_t *l, const char *name, char **out)
{
    int rc = chain_prefix(l->default_filter_chain, name, out);
    for (size_t i = 0; rc == 0 && i < l->n_filter_chains; i++)
        rc = chain_prefix(l->filter_chains[i], name, out);
    return rc;
}

int ads_rds_stat_prefix(const ads_t *a, const snapshot_t *snap, const char *name, char **out)
{
    *out = NULL;
    const Envoy__Config__Bootstrap__V3__Bootstrap *b = snap ? snap->bootstrap : NULL;
    int rc = 0;
    for (size_t i = 0; rc == 0 && b && b->static_resources && i < b->static_resources->n_listeners;
         i++)
        rc = listener_prefix(b->static_resources->listeners[i], name, out);
    if (rc != 0 || a == NULL)
        return rc;
    ads_resource_info_t *info = NULL;
    size_t n = 0;
    if (ads_dump(a, ADS_TYPE_LISTENER, &info, &n) < 0)
        return 0; /* listeners not subscribed: nothing more to look at */
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (info[i].msg)
            rc = listener_prefix((const listener_msg_t *)info[i].msg, name, out);
    free(info);
    return rc;
}
