/* The ADS client a snapshot's dynamic_resources asks for, and its named subscriptions. */
#include "xds/ads/ads_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"

int ads_client_new(const snapshot_t *snap, const char *version, ads_validate_fn validate, void *ctx,
                   ads_t **out, char *err, size_t errlen)
{
    *out = NULL;
    const Envoy__Config__Bootstrap__V3__Bootstrap *b = snap->bootstrap;
    Envoy__Config__Core__V3__Node node = ENVOY__CONFIG__CORE__V3__NODE__INIT;
    if (b && b->node)
        node = *b->node; /* a shallow copy: ads_new copies it deeply */
    /* Envoy sends its own name and build here; a control plane may key features on it. */
    node.user_agent_name = "remora";
    node.user_agent_version_type_case =
        ENVOY__CONFIG__CORE__V3__NODE__USER_AGENT_VERSION_TYPE_USER_AGENT_VERSION;
    node.user_agent_version = (char *)version;
    ads_opts_t opts = {.mode = snap->ads.delta ? ADS_DELTA : ADS_SOTW,
                       .node_on_first_message_only = snap->ads.node_first_only,
                       .validate = validate,
                       .validate_ctx = ctx};
    ads_t *a = ads_new(&node, &opts);
    if (a == NULL)
        return err_set(err, errlen, -ENOMEM, "out of memory");
    int rc = 0;
    if (snap->ads.cds)
        rc = ads_subscribe(a, ADS_TYPE_CLUSTER, NULL, 0);
    if (rc >= 0 && snap->ads.lds)
        rc = ads_subscribe(a, ADS_TYPE_LISTENER, NULL, 0);
    if (rc >= 0)
        rc = ads_follow_snapshot(a, snap, err, errlen);
    else
        err_set(err, errlen, rc, "cannot subscribe: %s", strerror(-rc));
    if (rc < 0) {
        ads_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

/* Subscribes type_url to the names of list (borrowed). */
static int follow(ads_t *a, const char *type_url, const snap_ref_list_t *list, char *err,
                  size_t errlen)
{
    const char **names = calloc(list->n ? list->n : 1, sizeof(*names));
    if (names == NULL)
        return err_set(err, errlen, -ENOMEM, "out of memory");
    for (size_t i = 0; i < list->n; i++)
        names[i] = list->v[i].name;
    int rc = ads_subscribe(a, type_url, names, list->n);
    free(names);
    if (rc < 0)
        return err_set(err, errlen, rc, "cannot subscribe to %s: %s", type_url, strerror(-rc));
    return 0;
}

int ads_follow_snapshot(ads_t *a, const snapshot_t *snap, char *err, size_t errlen)
{
    /* The snapshot's own lists, read in place: sorted, each name once (snap_refs_finish). */
    const snap_refs_t *refs = &snap->references;
    int rc = follow(a, ADS_TYPE_ROUTE, &refs->route_configs, err, errlen);
    if (rc == 0)
        rc = follow(a, ADS_TYPE_ENDPOINT, &refs->endpoints, err, errlen);
    if (rc == 0)
        rc = follow(a, ADS_TYPE_SECRET, &refs->secrets, err, errlen);
    return rc;
}
