/* RDS: the route table an HTTP connection manager names by `rds`, taken from the route
 * configurations of the resource set being built, as Envoy resolves it over ADS. Until the set
 * has it, the table is empty: every request finds no route, as in Envoy before RDS delivers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "base/err.h"
#include "xds/snapshot/route.h"
#include "xds/snapshot/snapshot_build.h"

typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__Rds rds_msg_t;

int snapshot_rds_route_table(const snapshot_t *snap, const void *rds, route_table_t **out,
                             char *err, size_t errlen)
{
    const rds_msg_t *m = rds;
    *out = NULL;
    snap_build_t *b = snap->build;
    if (b == NULL)
        return err_set(err, errlen, -EINVAL,
                       "no resource set to take the route configuration from (rds is resolved "
                       "only while a snapshot is built)");
    int rc = snap_check_ads(m->config_source, false, "config_source", err, errlen);
    if (rc < 0)
        return rc;
    if (m->route_config_name == NULL || m->route_config_name[0] == '\0')
        return err_set(err, errlen, -EINVAL, "route_config_name is required");
    const char *name = m->route_config_name;
    const config_resource_t *r = snap_index_find(&b->route_configs, name);
    if (snap_refs_add(&b->snap->references.route_configs, name, r == NULL) < 0)
        return err_set(err, errlen, -ENOMEM, "out of memory");
    if (r == NULL) {
        /* Envoy's route table before RDS delivers one: no virtual host, so every request is
         * answered 404 with the NR flag. */
        Envoy__Config__Route__V3__RouteConfiguration empty =
            ENVOY__CONFIG__ROUTE__V3__ROUTE_CONFIGURATION__INIT;
        empty.name = (char *)name;
        return route_table_build_rds(&empty, snap, out, err, errlen);
    }
    char rerr[600];
    rc = route_table_build_rds(r->msg, snap, out, rerr, sizeof(rerr));
    if (rc < 0)
        return err_set(err, errlen, rc, "route configuration '%s' (%s[%zu]): %s", name, r->origin,
                       r->index, rerr);
    return 0;
}
