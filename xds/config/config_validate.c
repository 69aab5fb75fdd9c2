/* Field-level validation of config messages, whatever their source: the few validate.rules of
 * Envoy's protos that protect Remora from nonsense values, enum values, and the ranges of
 * Duration and Timestamp. The YAML loader checks each message as it fills it (so its errors
 * carry line numbers); the snapshot builder checks every resource it translates (config_validate),
 * so a binary message (xDS) meets the same rules as a YAML file. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "xds/config/config.h"
#include "xds/config/config_forms.h"

#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"

/* Deeper than any message a YAML file within CONFIG_YAML_MAX_DEPTH can make (an Any adds a
 * level without a YAML one); a binary message past it is refused rather than walked. */
#define VALIDATE_MAX_DEPTH 256

typedef enum {
    RULE_UINT_RANGE,   /* uint32 or UInt32Value within [min, max] when set */
    RULE_NONEMPTY,     /* string present and non-empty */
    RULE_DURATION_POS, /* Duration field, when set, > 0 */
    RULE_CIDR_PREFIX,  /* prefix_len <= 32 for IPv4 address_prefix, <= 128 otherwise */
} rule_kind_t;

typedef struct rule {
    const char *message;
    const char *field;
    rule_kind_t kind;
    uint32_t min, max;
} rule_t;

/* docs/config.md, "Value checks", lists these. Every Duration must also not be negative. */
static const rule_t config_rules[] = {
    {"envoy.config.core.v3.SocketAddress", "port_value", RULE_UINT_RANGE, 0, 65535},
    {"envoy.config.core.v3.Pipe", "mode", RULE_UINT_RANGE, 0, 0777},
    {"envoy.config.core.v3.CidrRange", "prefix_len", RULE_CIDR_PREFIX, 0, 128},
    {"envoy.config.listener.v3.FilterChainMatch", "destination_port", RULE_UINT_RANGE, 1, 65535},
    {"envoy.config.cluster.v3.Cluster", "name", RULE_NONEMPTY, 0, 0},
    {"envoy.config.cluster.v3.Cluster", "connect_timeout", RULE_DURATION_POS, 0, 0},
    {"envoy.config.cluster.v3.Cluster.OriginalDstLbConfig", "upstream_port_override",
     RULE_UINT_RANGE, 0, 65535},
    {"envoy.config.endpoint.v3.Endpoint.HealthCheckConfig", "port_value", RULE_UINT_RANGE, 0,
     65535},
    {"envoy.config.endpoint.v3.LbEndpoint", "load_balancing_weight", RULE_UINT_RANGE, 1,
     UINT32_MAX},
    {"envoy.config.endpoint.v3.LocalityLbEndpoints", "priority", RULE_UINT_RANGE, 0, 128},
};

static int violation(config_violation_t *v, const ProtobufCFieldDescriptor *f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int violation(config_violation_t *v, const ProtobufCFieldDescriptor *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    v->field = f;
    err_vset(v->what, sizeof(v->what), -EINVAL, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static const ProtobufCMessage *field_message(const ProtobufCMessage *msg,
                                             const ProtobufCFieldDescriptor *f)
{
    return *(ProtobufCMessage *const *)CONFIG_FIELD_PTR(msg, f->offset);
}

static int check_rule(const rule_t *r, const ProtobufCMessage *msg, config_violation_t *v)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(desc, r->field);
    if (f == NULL || !config_field_present(msg, f))
        return 0;
    if (r->kind == RULE_NONEMPTY) {
        const char *s = *(const char *const *)CONFIG_FIELD_PTR(msg, f->offset);
        return s == NULL || s[0] == '\0' ? violation(v, f, "must be a non-empty string") : 0;
    }
    if (r->kind == RULE_DURATION_POS) {
        const Google__Protobuf__Duration *d = (const void *)field_message(msg, f);
        return d->seconds <= 0 && d->nanos <= 0 ? violation(v, f, "must be greater than 0s") : 0;
    }
    uint32_t val;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) { /* a UInt32Value */
        const ProtobufCMessage *w = field_message(msg, f);
        val = *(const uint32_t *)CONFIG_FIELD_PTR(w, w->descriptor->fields[0].offset);
    } else {
        val = *(const uint32_t *)CONFIG_FIELD_PTR(msg, f->offset);
    }
    uint32_t max = r->max;
    if (r->kind == RULE_CIDR_PREFIX) {
        const ProtobufCFieldDescriptor *pf =
            protobuf_c_message_descriptor_get_field_by_name(desc, "address_prefix");
        const char *prefix = pf ? *(const char *const *)CONFIG_FIELD_PTR(msg, pf->offset) : NULL;
        if (prefix && strchr(prefix, '.') && !strchr(prefix, ':'))
            max = 32;
    }
    if (val < r->min || val > max)
        return violation(v, f, "%" PRIu32 " is out of range [%" PRIu32 ", %" PRIu32 "]", val,
                         r->min, max);
    return 0;
}

/* Every value of an enum field (one, or each of a repeated one) must be one its enum defines:
 * protobuf-c keeps whatever number a binary message carries. */
static int check_enum(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                      config_violation_t *v)
{
    const ProtobufCEnumDescriptor *ed = f->descriptor;
    const int *vals = CONFIG_FIELD_PTR(msg, f->offset);
    size_t n = 1;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        n = *(const size_t *)CONFIG_FIELD_PTR(msg, f->quantifier_offset);
        vals = *(int *const *)CONFIG_FIELD_PTR(msg, f->offset);
    }
    for (size_t i = 0; i < n; i++)
        if (protobuf_c_enum_descriptor_get_value(ed, vals[i]) == NULL)
            return violation(v, f, "unknown value %d for enum %s", vals[i], ed->short_name);
    return 0;
}

/* The ranges the proto3 JSON forms of Duration and Timestamp can express. */
static int check_time(const ProtobufCMessage *msg, config_wkt_t kind, config_violation_t *v)
{
    if (kind == CONFIG_WKT_DURATION) {
        const Google__Protobuf__Duration *d = (const Google__Protobuf__Duration *)msg;
        if (d->seconds < 0 || d->nanos < 0)
            return violation(v, NULL, "duration must not be negative");
        if (d->seconds > CONFIG_DURATION_MAX_SECONDS || d->nanos > 999999999)
            return violation(v, NULL, "duration is out of range (at most %llds, nanos below 1e9)",
                             CONFIG_DURATION_MAX_SECONDS);
    } else if (kind == CONFIG_WKT_TIMESTAMP) {
        const Google__Protobuf__Timestamp *t = (const Google__Protobuf__Timestamp *)msg;
        if (t->seconds < CONFIG_TIMESTAMP_MIN_SECONDS ||
            t->seconds > CONFIG_TIMESTAMP_MAX_SECONDS || t->nanos < 0 || t->nanos > 999999999)
            return violation(v, NULL, "timestamp is out of range (years 0001 to 9999)");
    }
    return 0;
}

int config_check_fields(const ProtobufCMessage *msg, config_violation_t *v)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    int rc = check_time(msg, config_wkt_kind(desc), v);
    for (unsigned i = 0; rc == 0 && i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        if (f->type == PROTOBUF_C_TYPE_ENUM && config_field_present(msg, f))
            rc = check_enum(msg, f, v);
    }
    for (size_t i = 0; rc == 0 && i < sizeof(config_rules) / sizeof(config_rules[0]); i++)
        if (strcmp(config_rules[i].message, desc->name) == 0)
            rc = check_rule(&config_rules[i], msg, v);
    return rc;
}

/* ---- the walk over a tree of messages ------------------------------------------------------ */

typedef struct validator {
    config_path_t path;
    char *err;
    size_t errlen;
} validator_t;

static int validate_message(validator_t *va, const ProtobufCMessage *msg, int depth);

static int report(validator_t *va, const char *what)
{
    if (va->path.len == 0)
        return err_set(va->err, va->errlen, -EINVAL, "%s", what);
    return err_set(va->err, va->errlen, -EINVAL, "%s: %s", va->path.s, what);
}

/* An Any of a type the registry knows is unpacked and checked like any other message, with the
 * path running on into its fields (into "value" for a type with its own JSON form), as the YAML
 * loader names them. An Any of another type is left to whoever reads it (an optional HTTP
 * filter may be of a type Remora does not know). */
static int validate_any(validator_t *va, const ProtobufCMessage *msg, int depth)
{
    const Google__Protobuf__Any *any = (const Google__Protobuf__Any *)msg;
    const ProtobufCMessageDescriptor *desc =
        any->type_url && any->type_url[0] ? config_type_lookup(any->type_url) : NULL;
    if (desc == NULL)
        return 0;
    ProtobufCMessage *inner =
        protobuf_c_message_unpack(desc, NULL, any->value.len, any->value.data);
    if (inner == NULL) {
        char what[300];
        snprintf(what, sizeof(what), "the Any's value is not a valid %s", desc->name);
        return report(va, what);
    }
    size_t old = va->path.len;
    if (config_wkt_kind(desc) != CONFIG_WKT_NONE)
        config_path_push(&va->path, "value");
    int rc = validate_message(va, inner, depth + 1);
    if (rc == 0)
        config_path_pop(&va->path, old);
    protobuf_c_message_free_unpacked(inner, NULL);
    return rc;
}

/* The messages of a repeated field, or the message values of a map<K, V> named by their keys. */
static int validate_repeated(validator_t *va, const ProtobufCMessage *msg,
                             const ProtobufCFieldDescriptor *f, int depth)
{
    size_t n = *(const size_t *)CONFIG_FIELD_PTR(msg, f->quantifier_offset);
    ProtobufCMessage *const *arr = *(ProtobufCMessage *const **)CONFIG_FIELD_PTR(msg, f->offset);
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    int map = config_is_map_entry(ed);
    if (map && ed->fields[1].type != PROTOBUF_C_TYPE_MESSAGE)
        return 0;
    for (size_t i = 0; i < n; i++) {
        const ProtobufCMessage *e = arr[i];
        size_t old = va->path.len;
        if (map && ed->fields[0].type == PROTOBUF_C_TYPE_STRING) {
            const char *key = *(const char *const *)CONFIG_FIELD_PTR(e, ed->fields[0].offset);
            config_path_push(&va->path, key ? key : "");
            e = field_message(e, &ed->fields[1]);
        } else if (map) {
            config_path_push_index(&va->path, i);
            e = field_message(e, &ed->fields[1]);
        } else {
            config_path_push_index(&va->path, i);
        }
        int rc = e ? validate_message(va, e, depth + 1) : 0;
        if (rc < 0)
            return rc;
        config_path_pop(&va->path, old);
    }
    return 0;
}

/* The messages under msg first, then msg's own fields, in the order the YAML loader meets
 * them: so the same mistake gets the same message from either. */
static int validate_message(validator_t *va, const ProtobufCMessage *msg, int depth)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    if (depth > VALIDATE_MAX_DEPTH)
        return report(va, "messages nested too deeply");
    config_wkt_t kind = config_wkt_kind(desc);
    if (kind == CONFIG_WKT_ANY)
        return validate_any(va, msg, depth);
    if (kind == CONFIG_WKT_STRUCT || kind == CONFIG_WKT_VALUE || kind == CONFIG_WKT_LIST)
        return 0; /* JSON values: nothing in them has a rule */
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE || !config_field_present(msg, f))
            continue;
        size_t old = config_path_push(&va->path, f->name);
        int rc = f->label == PROTOBUF_C_LABEL_REPEATED
                     ? validate_repeated(va, msg, f, depth)
                     : validate_message(va, field_message(msg, f), depth + 1);
        if (rc < 0)
            return rc;
        config_path_pop(&va->path, old);
    }
    config_violation_t v;
    if (config_check_fields(msg, &v) == 0)
        return 0;
    if (v.field)
        config_path_push(&va->path, v.field->name);
    return report(va, v.what);
}

int config_validate(const ProtobufCMessage *msg, const char *path, char *err, size_t errlen)
{
    validator_t *va = malloc(sizeof(*va));
    if (va == NULL)
        return err_set(err, errlen, -ENOMEM, "out of memory while validating the config");
    va->err = err;
    va->errlen = errlen;
    va->path.len = 0;
    va->path.s[0] = '\0';
    if (path && path[0])
        config_path_push(&va->path, path);
    int rc = validate_message(va, msg, 0);
    free(va);
    return rc;
}

uint64_t config_duration_ms(const struct Google__Protobuf__Duration *d, uint64_t dflt)
{
    if (d == NULL)
        return dflt;
    return (uint64_t)d->seconds * 1000 + (uint64_t)d->nanos / 1000000;
}
