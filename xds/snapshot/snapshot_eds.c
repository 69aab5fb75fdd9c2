/* EDS clusters: which ClusterLoadAssignment of the resource set an EDS cluster takes its
 * endpoints from (eds_cluster_config.service_name, else the cluster's name), as Envoy resolves
 * it over ADS. The endpoints themselves are read by the same code as a STATIC cluster's
 * load_assignment (snapshot.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "base/err.h"
#include "xds/snapshot/snapshot_build.h"

typedef Envoy__Config__Endpoint__V3__ClusterLoadAssignment cla_msg_t;

int snapshot_eds_assignment(snap_build_t *b, const Envoy__Config__Cluster__V3__Cluster *m,
                            snap_cluster_t *c, const cla_msg_t **la, char *where, size_t wlen,
                            const char *what, char *err, size_t errlen)
{
    *la = NULL;
    const Envoy__Config__Cluster__V3__Cluster__EdsClusterConfig *eds = m->eds_cluster_config;
    char cerr[300];
    if (snap_check_ads(eds ? eds->eds_config : NULL, true, "eds_cluster_config.eds_config", cerr,
                       sizeof(cerr)) < 0)
        return err_set(err, errlen, -EINVAL, "%s: %s", what, cerr);
    /* Envoy does not read load_assignment for an EDS cluster; a config that gives one expects
     * it to count, so it is refused rather than left unread. */
    if (m->load_assignment)
        return err_set(err, errlen, -EINVAL,
                       "%s: an EDS cluster takes its endpoints over EDS, not from load_assignment",
                       what);
    const char *service =
        eds && eds->service_name && *eds->service_name ? eds->service_name : m->name;
    c->eds_service = strdup(service);
    if (c->eds_service == NULL)
        return -ENOMEM;
    const config_resource_t *r = snap_index_find_next(&b->endpoints, service, &b->endpoints_next);
    if (snap_refs_add_borrowed(&b->snap->references.endpoints, c->eds_service, r == NULL) < 0 ||
        snap_share_dep(b, SNAP_DYN_ENDPOINTS, service, r) < 0)
        return -ENOMEM;
    if (r == NULL) {
        /* Not an error: Envoy keeps the cluster warming until the assignment arrives. */
        c->awaiting_assignment = true;
        snprintf(where, wlen, "%s", what);
        return 0;
    }
    *la = (const cla_msg_t *)r->msg;
    snprintf(where, wlen, "%s: load assignment '%s' (%s[%zu])", what, service, r->origin, r->index);
    return 0;
}
