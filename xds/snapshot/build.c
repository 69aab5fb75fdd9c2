/* The ways in to a snapshot: from a Bootstrap message (a file, or a copy of the running one and
 * the xDS resources it kept, for a rebuild), through its set of resources, to
 * snapshot_build_resources; and the config dump of the messages a snapshot came from. */
#include <errno.h>
#include <stdbool.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "xds/config/config.h"
#include "xds/snapshot/resources.h"
#include "xds/snapshot/snapshot.h"
#include "xds/snapshot/snapshot_build.h"

typedef Envoy__Config__Bootstrap__V3__Bootstrap bootstrap_msg_t;

int snapshot_build(void *bootstrap, const snap_build_opts_t *opts, stats_store_t *stats,
                   unsigned nworkers, snapshot_t **out, char *err, size_t errlen)
{
    config_resources_t res;
    *out = NULL;
    int rc = config_resources_from_bootstrap(bootstrap, &res, err, errlen);
    if (rc < 0) {
        protobuf_c_message_free_unpacked(bootstrap, NULL);
        return rc;
    }
    rc = snapshot_build_resources(&res, bootstrap, opts, stats, nworkers, out, err, errlen);
    config_resources_free(&res);
    return rc;
}

int snapshot_load_file(const char *path, const snap_build_opts_t *opts, stats_store_t *stats,
                       unsigned nworkers, snapshot_t **out, char *err, size_t errlen)
{
    ProtobufCMessage *msg = NULL;
    *out = NULL;
    int rc = config_yaml_load_file(path, &envoy__config__bootstrap__v3__bootstrap__descriptor, &msg,
                                   err, errlen);
    if (rc < 0)
        return rc;
    return snapshot_build(msg, opts, stats, nworkers, out, err, errlen);
}

/* Envoy's admin.v3 `type` dump with the list of its dynamic resources under `field` (taken), or
 * NULL when the list is (NULL). */
static json_t *dynamic_dump(const char *type, const char *field, json_t *list)
{
    if (list == NULL)
        return NULL;
    json_t *o = json_object();
    char url[128];
    snprintf(url, sizeof(url), "type.googleapis.com/envoy.admin.v3.%s", type);
    json_object_set_new(o, "@type", json_string(url));
    json_object_set_new(o, field, list);
    return o;
}

/* Appends o (taken) to a when it is not NULL. */
static void append_dump(json_t *a, json_t *o)
{
    if (o)
        json_array_append_new(a, o);
}

char *snapshot_config_dump(const snapshot_t *snap)
{
    const struct snap_dynamic *d = snap->dynamic;
    const bootstrap_msg_t *b = snap->bootstrap;
    json_t *configs = json_array();
    json_t *boot = json_object();
    json_object_set_new(boot, "@type",
                        json_string("type.googleapis.com/envoy.admin.v3.BootstrapConfigDump"));
    json_object_set_new(boot, "bootstrap", config_to_json((const ProtobufCMessage *)b));
    json_array_append_new(configs, boot);

    json_t *ls = json_object(), *static_ls = json_array();
    json_object_set_new(ls, "@type",
                        json_string("type.googleapis.com/envoy.admin.v3.ListenersConfigDump"));
    json_t *cs = json_object(), *static_cs = json_array();
    json_object_set_new(cs, "@type",
                        json_string("type.googleapis.com/envoy.admin.v3.ClustersConfigDump"));
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = b->static_resources;
    for (size_t i = 0; sr && i < sr->n_listeners; i++) {
        json_t *e = json_object();
        json_object_set_new(e, "listener",
                            config_to_json((const ProtobufCMessage *)sr->listeners[i]));
        json_array_append_new(static_ls, e);
    }
    for (size_t i = 0; sr && i < sr->n_clusters; i++) {
        json_t *e = json_object();
        json_object_set_new(e, "cluster",
                            config_to_json((const ProtobufCMessage *)sr->clusters[i]));
        json_array_append_new(static_cs, e);
    }
    json_object_set_new(ls, "static_listeners", static_ls);
    json_object_set_new(cs, "static_clusters", static_cs);
    /* What came over xDS, in Envoy's order of dumps: clusters, endpoints, listeners, routes,
     * secrets. */
    json_t *dyn = snapshot_dynamic_json(d, SNAP_DYN_CLUSTERS);
    if (dyn)
        json_object_set_new(cs, "dynamic_active_clusters", dyn);
    dyn = snapshot_dynamic_json(d, SNAP_DYN_LISTENERS);
    if (dyn)
        json_object_set_new(ls, "dynamic_listeners", dyn);
    json_array_append_new(configs, cs);
    append_dump(configs, dynamic_dump("EndpointsConfigDump", "dynamic_endpoint_configs",
                                      snapshot_dynamic_json(d, SNAP_DYN_ENDPOINTS)));
    json_array_append_new(configs, ls);
    append_dump(configs, dynamic_dump("RoutesConfigDump", "dynamic_route_configs",
                                      snapshot_dynamic_json(d, SNAP_DYN_ROUTE_CONFIGS)));
    append_dump(configs, dynamic_dump("SecretsConfigDump", "dynamic_active_secrets",
                                      snapshot_dynamic_json(d, SNAP_DYN_SECRETS)));
    json_t *root = json_object();
    json_object_set_new(root, "configs", configs);
    char *s = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return s;
}

/* A copy of cur's Bootstrap message (new, the caller's), or NULL with err set. */
static ProtobufCMessage *copy_bootstrap(const snapshot_t *cur, char *err, size_t errlen)
{
    const ProtobufCMessage *msg = cur->bootstrap;
    if (msg == NULL) {
        snprintf(err, errlen, "the running config has no bootstrap to build from");
        return NULL;
    }
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    protobuf_c_message_pack(msg, buf);
    ProtobufCMessage *copy = protobuf_c_message_unpack(msg->descriptor, NULL, len, buf);
    explicit_bzero(buf, len); /* inline private keys */
    free(buf);
    if (copy == NULL)
        snprintf(err, errlen, "out of memory while copying the bootstrap");
    return copy;
}

/* Appends every resource of src's lists (borrowed, with their names and versions) to dst's. */
static int add_all(config_resources_t *dst, const config_resources_t *src)
{
    const config_resource_list_t *from[] = {&src->listeners, &src->clusters, &src->route_configs,
                                            &src->endpoints, &src->secrets};
    config_resource_list_t *to[] = {&dst->listeners, &dst->clusters, &dst->route_configs,
                                    &dst->endpoints, &dst->secrets};
    for (size_t k = 0; k < sizeof(from) / sizeof(from[0]); k++) {
        if (config_resources_reserve(to[k], from[k]->n) < 0)
            return -ENOMEM;
        for (size_t i = 0; i < from[k]->n; i++) {
            const config_resource_t *r = &from[k]->v[i];
            int rc = config_resources_add_xds(to[k], r->msg, r->origin, r->index, r->version);
            if (rc < 0)
                return rc;
            to[k]->v[to[k]->n - 1].name = r->name;
            to[k]->v[to[k]->n - 1].kept = r->kept; /* kept by reference, not copied */
        }
    }
    return 0;
}

/* Builds the snapshot that follows cur from cur's Bootstrap plus the xDS resources of either
 * dyn (a set, borrowed) or kept (a snapshot's copies, borrowed), with what cur was built with,
 * sharing what did not change with cur. Every build reads cur's Bootstrap in place (its first
 * build named its listeners; no build writes into it since); the snapshot keeps a reference to
 * cur's holder of it, unless it is a trial (dropped at once, on this thread). */
static int build_next(const snapshot_t *cur, const config_resources_t *dyn,
                      const struct snap_dynamic *kept, const snap_resolver_t *resolver, bool trial,
                      stats_store_t *stats, snapshot_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (cur->bootstrap == NULL) {
        snprintf(err, errlen, "the running config has no bootstrap to build from");
        return -EINVAL;
    }
    /* A Bootstrap without a holder (a snapshot of another build path): a copy of its own. */
    ProtobufCMessage *copy = NULL;
    if (!trial && cur->bootstrap_kept == NULL && (copy = copy_bootstrap(cur, err, errlen)) == NULL)
        return -ENOMEM;
    /* A trial links no runtime state. */
    snap_build_opts_t opts = {.resolver = resolver,
                              .filters = cur->filters,
                              .cluster_runtime = trial ? NULL : cur->cluster_runtime,
                              .cluster_states = trial ? NULL : cur->cluster_states};
    /* The xDS resources are borrowed for the build (which writes nothing into them: their
     * listeners have names already); the new snapshot keeps copies in turn (cur's, where they
     * did not change). The Bootstrap is cur's, validated when cur was built. */
    config_resources_t res;
    int rc = config_resources_from_bootstrap(copy ? copy : cur->bootstrap, &res, err, errlen);
    if (rc < 0) {
        if (copy)
            protobuf_c_message_free_unpacked(copy, NULL);
        return rc;
    }
    res.static_validated = true;
    /* A trial of clusters and load assignments alone leaves the bootstrap's listeners out: such
     * resources can take an error of theirs away (a route's unknown cluster), never add one,
     * and translating them for every resource that arrives would cost more than the resources
     * (their HTTP connection managers, routes and stats). */
    if (trial && dyn && dyn->listeners.n == 0 && dyn->route_configs.n == 0 && dyn->secrets.n == 0)
        res.listeners.n = 0;
    rc = dyn ? add_all(&res, dyn) : snapshot_dynamic_add(kept, &res);
    if (rc < 0) {
        config_resources_free(&res);
        if (copy)
            protobuf_c_message_free_unpacked(copy, NULL);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    rc = snapshot_build_from(&res, copy, &opts, cur, trial, stats, cur->nworkers, out, err, errlen);
    config_resources_free(&res);
    if (rc == 0 && copy == NULL && !trial) { /* cur's Bootstrap, shared */
        (*out)->bootstrap_kept = snap_kept_ref(cur->bootstrap_kept);
        (*out)->bootstrap = cur->bootstrap;
    }
    return rc;
}

int snapshot_rebuild(const snapshot_t *cur, const snap_resolver_t *resolver, stats_store_t *stats,
                     snapshot_t **out, char *err, size_t errlen)
{
    return build_next(cur, NULL, cur->dynamic, resolver, false, stats, out, err, errlen);
}

int snapshot_build_dynamic(const snapshot_t *cur, const config_resources_t *dyn,
                           const snap_resolver_t *resolver, stats_store_t *stats, snapshot_t **out,
                           char *err, size_t errlen)
{
    return build_next(cur, dyn, NULL, resolver, false, stats, out, err, errlen);
}

int snapshot_check_dynamic(const snapshot_t *cur, const config_resources_t *dyn,
                           stats_store_t *stats, char *err, size_t errlen)
{
    /* A secret is checked on its own too: a context naming it may still wait for another. */
    for (size_t i = 0; i < dyn->secrets.n; i++) {
        const config_resource_t *r = &dyn->secrets.v[i];
        char serr[600];
        int rc = snapshot_tls_check_secret(
            (const Envoy__Extensions__TransportSockets__Tls__V3__Secret *)r->msg, serr,
            sizeof(serr));
        if (rc < 0) {
            snprintf(err, errlen, "%s[%zu]: %s", r->origin, r->index, serr);
            return rc;
        }
    }
    snapshot_t *trial = NULL;
    int rc = build_next(cur, dyn, NULL, NULL, true, stats, &trial, err, errlen);
    snapshot_unref(trial);
    return rc;
}

int snapshot_trial_dynamic(const snapshot_t *cur, const config_resources_t *dyn,
                           stats_store_t *stats, snapshot_t **out, char *err, size_t errlen)
{
    return build_next(cur, dyn, NULL, NULL, true, stats, out, err, errlen);
}
