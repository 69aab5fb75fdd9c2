/* The resource set the snapshot builder takes: how a Bootstrap becomes one, the validation every
 * set goes through (the entry points that build from a Bootstrap are in build.c). */
#include "xds/snapshot/resources.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "base/err.h"
#include "xds/config/config.h"

typedef Envoy__Config__Bootstrap__V3__Bootstrap bootstrap_msg_t;

int config_resources_add(config_resource_list_t *list, ProtobufCMessage *msg, const char *origin,
                         size_t index)
{
    if (list->n == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 8;
        config_resource_t *v = realloc(list->v, cap * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        list->v = v;
        list->cap = cap;
    }
    list->v[list->n++] = (config_resource_t){.msg = msg, .origin = origin, .index = index};
    return 0;
}

int config_resources_reserve(config_resource_list_t *list, size_t more)
{
    if (list->cap - list->n >= more)
        return 0;
    config_resource_t *v = realloc(list->v, (list->n + more) * sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    list->v = v;
    list->cap = list->n + more;
    return 0;
}

int config_resources_add_xds(config_resource_list_t *list, ProtobufCMessage *msg,
                             const char *origin, size_t index, const char *version)
{
    int rc = config_resources_add(list, msg, origin, index);
    if (rc == 0)
        list->v[list->n - 1].version = version ? version : "";
    return rc;
}

int config_resources_add_named(config_resource_list_t *list, ProtobufCMessage *msg,
                               const char *origin, size_t index, const char *name)
{
    int rc = config_resources_add(list, msg, origin, index);
    if (rc == 0)
        list->v[list->n - 1].name = name;
    return rc;
}

/* Names longer than this are cut short in errors: a path must leave room for the field. */
#define WHERE_NAME_MAX 200

char *config_resource_where(const config_resource_t *r, char *buf, size_t len)
{
    if (r->name == NULL) {
        snprintf(buf, len, "%s[%zu]", r->origin, r->index);
        return buf;
    }
    size_t n = strlen(r->name);
    snprintf(buf, len, "%s['%.*s%s']", r->origin, (int)(n > WHERE_NAME_MAX ? WHERE_NAME_MAX : n),
             r->name, n > WHERE_NAME_MAX ? "..." : "");
    return buf;
}

int config_resources_from_bootstrap(void *bootstrap, config_resources_t *out, char *err,
                                    size_t errlen)
{
    bootstrap_msg_t *b = bootstrap;
    memset(out, 0, sizeof(*out));
    out->bootstrap = &b->base;
    out->node = b->node;
    out->admin = b->admin;
    out->runtime = b->layered_runtime;
    out->dynamic = b->dynamic_resources;
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = b->static_resources;
    int rc = 0;
    for (size_t i = 0; sr && rc == 0 && i < sr->n_listeners; i++)
        rc = config_resources_add(&out->listeners, &sr->listeners[i]->base,
                                  "static_resources.listeners", i);
    for (size_t i = 0; sr && rc == 0 && i < sr->n_clusters; i++)
        rc = config_resources_add(&out->clusters, &sr->clusters[i]->base,
                                  "static_resources.clusters", i);
    if (rc < 0) {
        config_resources_free(out);
        return err_set(err, errlen, rc, "out of memory while listing the config's resources");
    }
    return 0;
}

void config_resources_free(config_resources_t *res)
{
    config_resource_list_t *lists[] = {&res->listeners, &res->clusters, &res->route_configs,
                                       &res->endpoints, &res->secrets};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
        free(lists[i]->v);
    memset(res, 0, sizeof(*res));
}

/* The bootstrap's fields but static_resources, each as its own tree named by the field. */
static int validate_bootstrap(const ProtobufCMessage *b, char *err, size_t errlen)
{
    const ProtobufCMessageDescriptor *desc = b->descriptor;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED ||
            (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) || strcmp(f->name, "static_resources") == 0)
            continue; /* Bootstrap has neither repeated nor oneof messages among its settings */
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)((const char *)b + f->offset);
        int rc = m ? config_validate(m, f->name, err, errlen) : 0;
        if (rc < 0)
            return rc;
    }
    return 0;
}

int config_resources_validate(const config_resources_t *res, char *err, size_t errlen)
{
    int rc = 0;
    if (res->static_validated) {
        /* a copy of a validated snapshot's bootstrap: its static resources are skipped below */
    } else if (res->bootstrap) {
        rc = validate_bootstrap(res->bootstrap, err, errlen);
    } else {
        const struct {
            const void *msg;
            const char *name;
        } settings[] = {{res->node, "node"},
                        {res->admin, "admin"},
                        {res->runtime, "layered_runtime"},
                        {res->dynamic, "dynamic_resources"}};
        for (size_t i = 0; rc == 0 && i < sizeof(settings) / sizeof(settings[0]); i++)
            if (settings[i].msg)
                rc = config_validate(settings[i].msg, settings[i].name, err, errlen);
    }
    const config_resource_list_t *lists[] = {&res->listeners, &res->clusters, &res->route_configs,
                                             &res->endpoints, &res->secrets};
    for (size_t i = 0; rc == 0 && i < sizeof(lists) / sizeof(lists[0]); i++) {
        for (size_t j = 0; rc == 0 && j < lists[i]->n; j++) {
            const config_resource_t *r = &lists[i]->v[j];
            if (r->validated || (res->static_validated && r->version == NULL))
                continue;
            char where[256];
            rc = config_validate(r->msg, config_resource_where(r, where, sizeof(where)), err,
                                 errlen);
        }
    }
    return rc;
}
