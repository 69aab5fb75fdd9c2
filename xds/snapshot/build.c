/* The ways in to a snapshot: from a Bootstrap message (a file, or a copy of the running one for
 * a rebuild), through its set of resources, to snapshot_build_resources; and the config dump of
 * the message a snapshot came from. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "xds/config/config.h"
#include "xds/snapshot/resources.h"
#include "xds/snapshot/snapshot.h"

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

char *snapshot_config_dump(const snapshot_t *snap)
{
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
    json_array_append_new(configs, cs);
    json_array_append_new(configs, ls);
    json_t *root = json_object();
    json_object_set_new(root, "configs", configs);
    char *s = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return s;
}

int snapshot_rebuild(const snapshot_t *cur, const snap_resolver_t *resolver, stats_store_t *stats,
                     snapshot_t **out, char *err, size_t errlen)
{
    *out = NULL;
    const ProtobufCMessage *msg = cur->bootstrap;
    if (msg == NULL) {
        snprintf(err, errlen, "the running config has no bootstrap to build from");
        return -EINVAL;
    }
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    protobuf_c_message_pack(msg, buf);
    ProtobufCMessage *copy = protobuf_c_message_unpack(msg->descriptor, NULL, len, buf);
    explicit_bzero(buf, len); /* inline private keys */
    free(buf);
    if (copy == NULL) {
        snprintf(err, errlen, "out of memory while copying the bootstrap");
        return -ENOMEM;
    }
    snap_build_opts_t opts = {.resolver = resolver,
                              .filters = cur->filters,
                              .cluster_runtime = cur->cluster_runtime,
                              .cluster_states = cur->cluster_states};
    return snapshot_build(copy, &opts, stats, cur->nworkers, out, err, errlen);
}
