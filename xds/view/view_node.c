/* A node's id and Istio metadata, read into what the view needs of it. */
#include "xds/view/view_node.h"

#include <errno.h>
#include <string.h>

#include "envoy/config/core/v3/base.pb-c.h"

/* The string value of metadata key `key` (borrowed from s), or NULL. */
static const char *meta_string(const Google__Protobuf__Struct *s, const char *key)
{
    for (size_t i = 0; s && i < s->n_fields; i++) {
        const Google__Protobuf__Struct__FieldsEntry *f = s->fields[i];
        if (f->key && strcmp(f->key, key) == 0 && f->value &&
            f->value->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE)
            return f->value->string_value;
    }
    return NULL;
}

int view_node_from_proto(const Envoy__Config__Core__V3__Node *node, view_node_t *out)
{
    memset(out, 0, sizeof(*out));
    if (node == NULL)
        return -EINVAL;
    /* Resets *out; an id that names no pod leaves it empty for the metadata to fill. */
    view_node_parse_id(node->id, out); /* may name no pod: the metadata may still say */
    const Google__Protobuf__Struct *md = node->metadata;
    const char *ns = meta_string(md, "NAMESPACE");
    if (ns && *ns && (out->namespace_ == NULL || strcmp(ns, out->namespace_) != 0)) {
        out->namespace_ = ns;
        out->pod = NULL; /* the id's pod was of another namespace: not this workload */
    }
    const char *gen = meta_string(md, "GENERATOR");
    out->proxyless = gen && strcmp(gen, "grpc") == 0;
    out->workload_name = meta_string(md, "WORKLOAD_NAME");
    out->service_account = meta_string(md, "SERVICE_ACCOUNT");
    return out->namespace_ ? 0 : -EINVAL;
}
