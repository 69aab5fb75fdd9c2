/* The resources a snapshot was built from that came over xDS: copies the snapshot keeps (the
 * xDS client's messages change with its next update), so /config_dump shows them in Envoy's
 * dynamic shapes and a rebuild (certificate rotation, DNS) builds from them again. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "xds/config/config.h"
#include "xds/snapshot/snapshot_build.h"

typedef struct dynamic_entry {
    ProtobufCMessage *msg; /* owned copy */
    const char *origin;    /* a static string, as in the set */
    size_t index;
    char *version; /* owned */
    char *name;    /* the name its source gave it (owned), or NULL */
} dynamic_entry_t;

struct snap_dynamic {
    dynamic_entry_t *v[SNAP_DYN_KINDS]; /* owned, one array per kind of resource */
    size_t n[SNAP_DYN_KINDS];
};

/* The set's list of each kind. */
static const config_resource_list_t *kind_list(const config_resources_t *res, int kind)
{
    const config_resource_list_t *lists[SNAP_DYN_KINDS] = {
        [SNAP_DYN_LISTENERS] = &res->listeners,
        [SNAP_DYN_CLUSTERS] = &res->clusters,
        [SNAP_DYN_ROUTE_CONFIGS] = &res->route_configs,
        [SNAP_DYN_ENDPOINTS] = &res->endpoints,
        [SNAP_DYN_SECRETS] = &res->secrets,
    };
    return lists[kind];
}

/* A deep copy of m (new), or NULL. The packed bytes may hold inline private keys. */
static ProtobufCMessage *copy_message(const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL)
        return NULL;
    protobuf_c_message_pack(m, buf);
    ProtobufCMessage *copy = protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
    explicit_bzero(buf, len);
    free(buf);
    return copy;
}

int snapshot_dynamic_keep(const config_resources_t *res, struct snap_dynamic **out)
{
    *out = NULL;
    size_t total = 0;
    for (int k = 0; k < SNAP_DYN_KINDS; k++)
        for (size_t i = 0; i < kind_list(res, k)->n; i++)
            total += kind_list(res, k)->v[i].version != NULL;
    if (total == 0)
        return 0;
    struct snap_dynamic *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    for (int k = 0; k < SNAP_DYN_KINDS; k++) {
        const config_resource_list_t *list = kind_list(res, k);
        d->v[k] = calloc(list->n ? list->n : 1, sizeof(*d->v[k]));
        if (d->v[k] == NULL)
            goto oom;
        for (size_t i = 0; i < list->n; i++) {
            const config_resource_t *r = &list->v[i];
            if (r->version == NULL)
                continue;
            dynamic_entry_t *e = &d->v[k][d->n[k]++];
            e->origin = r->origin;
            e->index = r->index;
            e->msg = copy_message(r->msg);
            e->version = strdup(r->version);
            e->name = r->name ? strdup(r->name) : NULL;
            if (e->msg == NULL || e->version == NULL || (r->name && e->name == NULL))
                goto oom;
        }
    }
    *out = d;
    return 0;
oom:
    snapshot_dynamic_free(d);
    return -ENOMEM;
}

void snapshot_dynamic_free(struct snap_dynamic *d)
{
    if (d == NULL)
        return;
    for (int k = 0; k < SNAP_DYN_KINDS; k++) {
        for (size_t i = 0; i < d->n[k]; i++) {
            if (d->v[k][i].msg)
                protobuf_c_message_free_unpacked(d->v[k][i].msg, NULL);
            free(d->v[k][i].version);
            free(d->v[k][i].name);
        }
        free(d->v[k]);
    }
    free(d);
}

void snapshot_dynamic_use(const struct snap_dynamic *d, config_resources_t *res)
{
    for (int k = 0; d && k < SNAP_DYN_KINDS; k++) {
        config_resource_list_t *list = (config_resource_list_t *)kind_list(res, k);
        size_t j = 0;
        for (size_t i = 0; i < list->n && j < d->n[k]; i++)
            if (list->v[i].version != NULL)
                list->v[i].msg = d->v[k][j++].msg;
    }
}

int snapshot_dynamic_add(const struct snap_dynamic *d, config_resources_t *res)
{
    for (int k = 0; d && k < SNAP_DYN_KINDS; k++) {
        config_resource_list_t *list = (config_resource_list_t *)kind_list(res, k);
        for (size_t i = 0; i < d->n[k]; i++) {
            const dynamic_entry_t *e = &d->v[k][i];
            int rc = config_resources_add_xds(list, e->msg, e->origin, e->index, e->version);
            if (rc < 0)
                return rc;
            list->v[list->n - 1].name = e->name;
        }
    }
    return 0;
}

/* m as the JSON of an Any: "@type" first, then its fields. */
static json_t *any_json(const ProtobufCMessage *m)
{
    json_t *o = json_object();
    char url[300];
    snprintf(url, sizeof(url), "type.googleapis.com/%s", m->descriptor->name);
    json_object_set_new(o, "@type", json_string(url));
    json_t *fields = config_to_json(m);
    json_object_update(o, fields);
    json_decref(fields);
    return o;
}

/* One entry of Envoy's admin.v3 config dump messages for kind (ListenersConfigDump's
 * DynamicListener, ClustersConfigDump's DynamicCluster, ...). */
static json_t *entry_json(int kind, const dynamic_entry_t *e)
{
    static const char *const field[SNAP_DYN_KINDS] = {
        [SNAP_DYN_LISTENERS] = "listener",
        [SNAP_DYN_CLUSTERS] = "cluster",
        [SNAP_DYN_ROUTE_CONFIGS] = "route_config",
        [SNAP_DYN_ENDPOINTS] = "endpoint_config",
        [SNAP_DYN_SECRETS] = "secret",
    };
    json_t *state = json_object();
    if (kind == SNAP_DYN_SECRETS)
        json_object_set_new(
            state, "name",
            json_string(
                ((const Envoy__Extensions__TransportSockets__Tls__V3__Secret *)e->msg)->name));
    if (e->version[0])
        json_object_set_new(state, "version_info", json_string(e->version));
    json_object_set_new(state, field[kind], any_json(e->msg));
    if (kind != SNAP_DYN_LISTENERS)
        return state;
    json_t *l = json_object(); /* a listener's state is one of several it may be in */
    const char *name = ((const Envoy__Config__Listener__V3__Listener *)e->msg)->name;
    json_object_set_new(l, "name", json_string(name ? name : ""));
    json_object_set_new(l, "active_state", state);
    return l;
}

json_t *snapshot_dynamic_json(const struct snap_dynamic *d, int kind)
{
    if (d == NULL || d->n[kind] == 0)
        return NULL;
    json_t *a = json_array();
    for (size_t i = 0; i < d->n[kind]; i++)
        json_array_append_new(a, entry_json(kind, &d->v[kind][i]));
    return a;
}
