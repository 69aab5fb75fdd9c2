/* Generic YAML loader: maps a libyaml document onto any protobuf-c message through its
 * descriptors (proto3 JSON mapping rules), with line-numbered errors and limits against hostile
 * input. No per-message code: the field rules are config_check_fields' (config_validate.c). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <yaml.h>

#include "xds/config/config.h"
#include "xds/config/config_forms.h"

#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"

typedef struct loader {
    const char *source;
    yaml_document_t *doc;
    char *err;
    size_t errlen;
    int failed;
    size_t nodes;
    config_path_t path;
} loader_t;

static int parse_message(loader_t *ld, yaml_node_t *node, const ProtobufCMessageDescriptor *desc,
                         ProtobufCMessage **out, int depth);
static int fill_message(loader_t *ld, yaml_node_t *node, ProtobufCMessage *msg, int depth);

/* ---- errors and paths --------------------------------------------------------------------- */

static unsigned long node_line(const yaml_node_t *node)
{
    return node ? (unsigned long)node->start_mark.line + 1 : 1;
}

__attribute__((format(printf, 4, 5))) static int fail(loader_t *ld, const yaml_node_t *node,
                                                      int code, const char *fmt, ...)
{
    /* Only the innermost error is kept: callers merely propagate the code while unwinding. */
    if (!ld->failed && ld->errlen > 0) {
        char what[768];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        if (ld->path.len > 0)
            snprintf(ld->err, ld->errlen, "%s:%lu: %s: %s", ld->source, node_line(node), ld->path.s,
                     what);
        else
            snprintf(ld->err, ld->errlen, "%s:%lu: %s", ld->source, node_line(node), what);
    }
    ld->failed = 1;
    return code;
}

static int fail_nomem(loader_t *ld, const yaml_node_t *node)
{
    return fail(ld, node, -ENOMEM, "out of memory");
}

static size_t path_push(loader_t *ld, const char *name)
{
    return config_path_push(&ld->path, name);
}

static size_t path_push_index(loader_t *ld, size_t i)
{
    return config_path_push_index(&ld->path, i);
}

static void path_pop(loader_t *ld, size_t old)
{
    config_path_pop(&ld->path, old);
}

/* Message name without its package, as users see it in the YAML ("Listener", "Bootstrap.Admin"). */
static const char *short_type(const ProtobufCMessageDescriptor *desc)
{
    size_t plen = strlen(desc->package_name);
    return plen && strncmp(desc->name, desc->package_name, plen) == 0 ? desc->name + plen + 1
                                                                      : desc->name;
}

static const char *describe(const yaml_node_t *node, char *buf, size_t len)
{
    if (node->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (node->type == YAML_SEQUENCE_NODE)
        return "a sequence";
    int n = (int)(node->data.scalar.length > 40 ? 40 : node->data.scalar.length);
    snprintf(buf, len, "'%.*s%s'", n, (const char *)node->data.scalar.value,
             node->data.scalar.length > 40 ? "..." : "");
    return buf;
}

/* Every node visit is counted so that aliases (which libyaml shares, not copies) cannot turn a
 * small file into an exponential or cyclic walk. */
static int enter(loader_t *ld, yaml_node_t *node, int depth)
{
    if (depth > CONFIG_YAML_MAX_DEPTH)
        return fail(ld, node, -EINVAL, "nesting deeper than %d levels", CONFIG_YAML_MAX_DEPTH);
    if (++ld->nodes > CONFIG_YAML_MAX_NODES)
        return fail(ld, node, -EINVAL, "document expands to more than %d nodes (alias bomb?)",
                    CONFIG_YAML_MAX_NODES);
    return 0;
}

/* ---- scalars ------------------------------------------------------------------------------ */

static int scalar_is(const yaml_node_t *node, const char *s)
{
    size_t n = strlen(s);
    return node->data.scalar.length == n && memcmp(node->data.scalar.value, s, n) == 0;
}

static int is_null(const yaml_node_t *node)
{
    if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    return node->data.scalar.length == 0 || scalar_is(node, "~") || scalar_is(node, "null") ||
           scalar_is(node, "Null") || scalar_is(node, "NULL");
}

/* ---- validation ------------------------------------------------------------------------- */

#define SCALAR(node)        (const char *)(node)->data.scalar.value, (node)->data.scalar.length
#define FIELD_PTR(msg, off) CONFIG_FIELD_PTR(msg, off)

/* The field rules every config source meets (config_check_fields), checked as each message is
 * filled so that an error names the line: the field's own line when the YAML set it (lines[],
 * indexed like the descriptor's fields; NULL for a scalar Duration), else the mapping's. */
static int check_fields(loader_t *ld, yaml_node_t *node, const ProtobufCMessage *msg,
                        const unsigned long *lines)
{
    config_violation_t v;
    if (config_check_fields(msg, &v) == 0)
        return 0;
    yaml_node_t where = *node;
    if (v.field) {
        size_t idx = (size_t)(v.field - msg->descriptor->fields);
        if (lines && lines[idx])
            where.start_mark.line = lines[idx] - 1;
        path_push(ld, v.field->name);
    }
    return fail(ld, &where, -EINVAL, "%s", v.what);
}

/* ---- fields -------------------------------------------------------------------------------- */

static const char *type_name(ProtobufCType type)
{
    static const char *const names[] = {
        [PROTOBUF_C_TYPE_INT32] = "an int32",     [PROTOBUF_C_TYPE_SINT32] = "an int32",
        [PROTOBUF_C_TYPE_SFIXED32] = "an int32",  [PROTOBUF_C_TYPE_INT64] = "an int64",
        [PROTOBUF_C_TYPE_SINT64] = "an int64",    [PROTOBUF_C_TYPE_SFIXED64] = "an int64",
        [PROTOBUF_C_TYPE_UINT32] = "a uint32",    [PROTOBUF_C_TYPE_FIXED32] = "a uint32",
        [PROTOBUF_C_TYPE_UINT64] = "a uint64",    [PROTOBUF_C_TYPE_FIXED64] = "a uint64",
        [PROTOBUF_C_TYPE_FLOAT] = "a number",     [PROTOBUF_C_TYPE_DOUBLE] = "a number",
        [PROTOBUF_C_TYPE_BOOL] = "true or false", [PROTOBUF_C_TYPE_ENUM] = "an enum value",
        [PROTOBUF_C_TYPE_STRING] = "a string",    [PROTOBUF_C_TYPE_BYTES] = "base64 bytes",
        [PROTOBUF_C_TYPE_MESSAGE] = "a mapping",
    };
    return (unsigned)type < sizeof(names) / sizeof(names[0]) && names[type] ? names[type] : "?";
}

static int bad_enum(loader_t *ld, yaml_node_t *node, const ProtobufCEnumDescriptor *ed)
{
    char list[384] = "";
    size_t used = 0;
    for (unsigned i = 0; i < ed->n_values && used < sizeof(list) - 1; i++) {
        int n =
            snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", ed->values[i].name);
        used = n < 0 ? used : used + (size_t)n;
    }
    char buf[64];
    return fail(ld, node, -EINVAL, "unknown value %s for enum %s (expected one of %s)",
                describe(node, buf, sizeof(buf)), ed->short_name, list);
}

/* An enum value by name (ROUND_ROBIN) or number, into slot. */
static int parse_enum(loader_t *ld, yaml_node_t *node, const ProtobufCEnumDescriptor *ed,
                      void *slot)
{
    const ProtobufCEnumValue *ev = NULL;
    char name[128];
    uint64_t u;
    if (node->data.scalar.length < sizeof(name) &&
        snprintf(name, sizeof(name), "%.*s", (int)node->data.scalar.length,
                 (const char *)node->data.scalar.value) > 0 &&
        strlen(name) == node->data.scalar.length)
        ev = protobuf_c_enum_descriptor_get_value_by_name(ed, name);
    if (ev == NULL && config_parse_int(SCALAR(node), 1, INT32_MIN, INT32_MAX, &u) == 0)
        ev = protobuf_c_enum_descriptor_get_value(ed, (int)(int64_t)u);
    if (ev == NULL)
        return bad_enum(ld, node, ed);
    *(int *)slot = ev->value;
    return 0;
}

/* Parses one scalar (or submessage) into slot, which has the field's element type. Writes slot
 * only on success, so a failed parse leaves the message freeable. */
static int parse_value(loader_t *ld, yaml_node_t *node, const ProtobufCFieldDescriptor *f,
                       void *slot, int depth)
{
    if (f->type == PROTOBUF_C_TYPE_MESSAGE)
        return parse_message(ld, node, f->descriptor, (ProtobufCMessage **)slot, depth);
    int rc = enter(ld, node, depth);
    if (rc < 0)
        return rc;
    char buf[64];
    if (node->type != YAML_SCALAR_NODE)
        return fail(ld, node, -EINVAL, "expected %s, got %s", type_name(f->type),
                    describe(node, buf, sizeof(buf)));
    uint64_t u;
    double d;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if (config_parse_int(SCALAR(node), 1, INT32_MIN, INT32_MAX, &u) < 0)
            break;
        *(int32_t *)slot = (int32_t)(int64_t)u;
        return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (config_parse_int(SCALAR(node), 0, 0, UINT32_MAX, &u) < 0)
            break;
        *(uint32_t *)slot = (uint32_t)u;
        return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (config_parse_int(SCALAR(node), 1, INT64_MIN, INT64_MAX, &u) < 0)
            break;
        *(int64_t *)slot = (int64_t)u;
        return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (config_parse_int(SCALAR(node), 0, 0, UINT64_MAX, &u) < 0)
            break;
        *(uint64_t *)slot = u;
        return 0;
    case PROTOBUF_C_TYPE_FLOAT:
        if (config_parse_double(SCALAR(node), &d) < 0 ||
            (isfinite(d) && fabs(d) > 3.4028234663852886e38))
            break;
        *(float *)slot = (float)d;
        return 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        if (config_parse_double(SCALAR(node), &d) < 0)
            break;
        *(double *)slot = d;
        return 0;
    case PROTOBUF_C_TYPE_BOOL:
        if (!scalar_is(node, "true") && !scalar_is(node, "false"))
            break;
        *(protobuf_c_boolean *)slot = scalar_is(node, "true");
        return 0;
    case PROTOBUF_C_TYPE_ENUM:
        return parse_enum(ld, node, f->descriptor, slot);
    case PROTOBUF_C_TYPE_STRING: {
        size_t len = node->data.scalar.length;
        if (memchr(node->data.scalar.value, 0, len))
            return fail(ld, node, -EINVAL, "string contains a NUL character");
        char *s = malloc(len + 1);
        if (s == NULL)
            return fail_nomem(ld, node);
        memcpy(s, node->data.scalar.value, len);
        s[len] = '\0';
        *(char **)slot = s;
        return 0;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData bd = {0, NULL};
        rc = node->data.scalar.length
                 ? config_base64_decode(node->data.scalar.value, node->data.scalar.length, &bd)
                 : 0;
        if (rc == -ENOMEM)
            return fail_nomem(ld, node);
        if (rc < 0)
            return fail(ld, node, -EINVAL, "expected base64 bytes, got %s",
                        describe(node, buf, sizeof(buf)));
        *(ProtobufCBinaryData *)slot = bd;
        return 0;
    }
    default:
        return fail(ld, node, -EINVAL, "unsupported field type %d", (int)f->type);
    }
    return fail(ld, node, -EINVAL, "expected %s, got %s", type_name(f->type),
                describe(node, buf, sizeof(buf)));
}

static int set_map(loader_t *ld, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                   yaml_node_t *node, int depth)
{
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    char buf[64];
    if (node->type != YAML_MAPPING_NODE)
        return fail(ld, node, -EINVAL, "expected a mapping, got %s",
                    describe(node, buf, sizeof(buf)));
    int rc = enter(ld, node, depth);
    if (rc < 0)
        return rc;
    size_t count = (size_t)(node->data.mapping.pairs.top - node->data.mapping.pairs.start);
    if (count == 0)
        return 0;
    ProtobufCMessage **arr = calloc(count, sizeof(*arr));
    if (arr == NULL)
        return fail_nomem(ld, node);
    size_t *n = FIELD_PTR(msg, f->quantifier_offset);
    *(ProtobufCMessage ***)FIELD_PTR(msg, f->offset) = arr;
    *n = 0;
    for (size_t i = 0; i < count; i++) {
        yaml_node_pair_t *pair = &node->data.mapping.pairs.start[i];
        yaml_node_t *key = yaml_document_get_node(ld->doc, pair->key);
        yaml_node_t *val = yaml_document_get_node(ld->doc, pair->value);
        if (key->type != YAML_SCALAR_NODE)
            return fail(ld, key, -EINVAL, "map keys must be scalars, got %s",
                        describe(key, buf, sizeof(buf)));
        snprintf(buf, sizeof(buf), "%.*s",
                 (int)(key->data.scalar.length > 48 ? 48 : key->data.scalar.length),
                 (const char *)key->data.scalar.value);
        size_t old = path_push(ld, buf);
        ProtobufCMessage *e = calloc(1, ed->sizeof_message);
        if (e == NULL)
            return fail_nomem(ld, key);
        ed->message_init(e);
        rc = parse_value(ld, key, &ed->fields[0], FIELD_PTR(e, ed->fields[0].offset), depth + 1);
        if (rc == 0)
            rc =
                parse_value(ld, val, &ed->fields[1], FIELD_PTR(e, ed->fields[1].offset), depth + 1);
        if (rc < 0) {
            protobuf_c_message_free_unpacked(e, NULL);
            return rc;
        }
        path_pop(ld, old);
        arr[(*n)++] = e;
    }
    return 0;
}

static int set_repeated(loader_t *ld, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                        yaml_node_t *node, int depth)
{
    char buf[64];
    if (node->type != YAML_SEQUENCE_NODE)
        return fail(ld, node, -EINVAL, "expected a sequence, got %s",
                    describe(node, buf, sizeof(buf)));
    int rc = enter(ld, node, depth);
    if (rc < 0)
        return rc;
    size_t count = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    if (count == 0)
        return 0;
    size_t esz = config_elt_size(f->type);
    char *arr = calloc(count, esz);
    if (arr == NULL)
        return fail_nomem(ld, node);
    /* The count grows with each parsed element so free_unpacked sees only complete ones. */
    size_t *n = FIELD_PTR(msg, f->quantifier_offset);
    *(void **)FIELD_PTR(msg, f->offset) = arr;
    *n = 0;
    int value_msg =
        f->type == PROTOBUF_C_TYPE_MESSAGE && config_wkt_kind(f->descriptor) == CONFIG_WKT_VALUE;
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *item = yaml_document_get_node(ld->doc, node->data.sequence.items.start[i]);
        size_t old = path_push_index(ld, i);
        if (is_null(item) && !value_msg)
            return fail(ld, item, -EINVAL, "null is not allowed in a list");
        rc = parse_value(ld, item, f, arr + i * esz, depth + 1);
        if (rc < 0)
            return rc;
        path_pop(ld, old);
        (*n)++;
    }
    return 0;
}

static int set_field(loader_t *ld, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                     yaml_node_t *node, int depth)
{
    int value_msg =
        f->type == PROTOBUF_C_TYPE_MESSAGE && config_wkt_kind(f->descriptor) == CONFIG_WKT_VALUE;
    /* proto3 JSON: null leaves a field unset, except a google.protobuf.Value, which holds it. */
    if (is_null(node) && !(value_msg && f->label != PROTOBUF_C_LABEL_REPEATED))
        return 0;
    uint32_t *which = NULL;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        which = FIELD_PTR(msg, f->quantifier_offset);
        if (*which != 0 && *which != f->id) {
            const ProtobufCFieldDescriptor *other =
                protobuf_c_message_descriptor_get_field(msg->descriptor, *which);
            return fail(ld, node, -EINVAL,
                        "'%s' is already set and only one of them may be (oneof conflict)",
                        other ? other->name : "?");
        }
    }
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && config_is_map_entry(f->descriptor))
            return set_map(ld, msg, f, node, depth);
        return set_repeated(ld, msg, f, node, depth);
    }
    int rc = parse_value(ld, node, f, FIELD_PTR(msg, f->offset), depth);
    if (rc < 0)
        return rc;
    if (which)
        *which = f->id;
    else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE &&
             f->type != PROTOBUF_C_TYPE_STRING)
        *(protobuf_c_boolean *)FIELD_PTR(msg, f->quantifier_offset) = 1;
    return 0;
}

/* ---- messages ------------------------------------------------------------------------------ */

/* The lowerCamelCase json_name protoc derives from a field name: '_' drops and uppercases the
 * next lowercase letter ("typed_config" -> "typedConfig"). */
static int json_name_equal(const char *field, const char *key)
{
    int upper = 0;
    for (; *field; field++) {
        if (*field == '_') {
            upper = 1;
            continue;
        }
        char c = upper && *field >= 'a' && *field <= 'z' ? (char)(*field - 'a' + 'A') : *field;
        upper = 0;
        if (c != *key++)
            return 0;
    }
    return *key == '\0';
}

static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *desc,
                                                  const char *key)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(desc, key);
    for (unsigned i = 0; f == NULL && i < desc->n_fields; i++)
        if (json_name_equal(desc->fields[i].name, key))
            f = &desc->fields[i];
    return f;
}

/* The ordinary mapping-to-message path; skip_type ignores Any's "@type" key. */
static int fill_fields(loader_t *ld, yaml_node_t *node, ProtobufCMessage *msg, int depth,
                       int skip_type)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    char buf[64];
    if (node->type != YAML_MAPPING_NODE)
        return fail(ld, node, -EINVAL, "expected a mapping for %s, got %s", short_type(desc),
                    describe(node, buf, sizeof(buf)));
    /* Line of each field set, for duplicate keys and for rule errors; 0 = not set. */
    unsigned long *lines = calloc(desc->n_fields + 1, sizeof(*lines));
    if (lines == NULL)
        return fail_nomem(ld, node);
    int rc = 0;
    for (yaml_node_pair_t *pair = node->data.mapping.pairs.start;
         rc == 0 && pair < node->data.mapping.pairs.top; pair++) {
        yaml_node_t *key = yaml_document_get_node(ld->doc, pair->key);
        yaml_node_t *val = yaml_document_get_node(ld->doc, pair->value);
        if (key->type != YAML_SCALAR_NODE) {
            rc = fail(ld, key, -EINVAL, "mapping keys must be scalars, got %s",
                      describe(key, buf, sizeof(buf)));
            break;
        }
        if (skip_type && scalar_is(key, "@type"))
            continue;
        char name[128];
        const ProtobufCFieldDescriptor *f = NULL;
        snprintf(name, sizeof(name), "%.*s",
                 (int)(key->data.scalar.length > 100 ? 100 : key->data.scalar.length),
                 (const char *)key->data.scalar.value);
        if (key->data.scalar.length < 100 &&
            !memchr(key->data.scalar.value, 0, key->data.scalar.length))
            f = find_field(desc, name);
        size_t old = path_push(ld, f ? f->name : name);
        if (f == NULL) {
            rc = fail(ld, key, -EINVAL, "unknown field (%s has no field '%s')", short_type(desc),
                      name);
        } else if (lines[f - desc->fields]) {
            rc = fail(ld, key, -EINVAL, "field given twice (first on line %lu)",
                      lines[f - desc->fields]);
        } else {
            lines[f - desc->fields] = node_line(key);
            rc = set_field(ld, msg, f, val, depth + 1);
        }
        if (rc == 0)
            path_pop(ld, old);
    }
    if (rc == 0)
        rc = check_fields(ld, node, msg, lines);
    free(lines);
    return rc;
}

/* google.protobuf.Value takes its kind from the YAML node itself. */
static int fill_value(loader_t *ld, yaml_node_t *node, ProtobufCMessage *msg, int depth)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    const char *kind = "string_value";
    double d;
    if (is_null(node)) {
        const ProtobufCFieldDescriptor *f = find_field(desc, "null_value");
        *(uint32_t *)FIELD_PTR(msg, f->quantifier_offset) = f->id;
        *(int *)FIELD_PTR(msg, f->offset) = 0;
        return 0;
    }
    if (node->type == YAML_MAPPING_NODE)
        kind = "struct_value";
    else if (node->type == YAML_SEQUENCE_NODE)
        kind = "list_value";
    else if (node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
             (scalar_is(node, "true") || scalar_is(node, "false")))
        kind = "bool_value";
    else if (node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
             config_parse_double(SCALAR(node), &d) == 0 && isfinite(d))
        kind = "number_value";
    return set_field(ld, msg, find_field(desc, kind), node, depth);
}

static int fill_any(loader_t *ld, yaml_node_t *node, ProtobufCMessage *msg, int depth)
{
    char buf[64];
    if (node->type != YAML_MAPPING_NODE)
        return fail(ld, node, -EINVAL, "expected a mapping with '@type' for Any, got %s",
                    describe(node, buf, sizeof(buf)));
    yaml_node_t *type = NULL, *value = NULL, *other = NULL;
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
         p++) {
        yaml_node_t *key = yaml_document_get_node(ld->doc, p->key);
        if (key->type == YAML_SCALAR_NODE && scalar_is(key, "@type"))
            type = yaml_document_get_node(ld->doc, p->value);
        else if (key->type == YAML_SCALAR_NODE && scalar_is(key, "value"))
            value = yaml_document_get_node(ld->doc, p->value);
        else if (other == NULL)
            other = key;
    }
    if (type == NULL)
        return fail(ld, node, -EINVAL, "Any needs an '@type' key naming the packed type");
    if (type->type != YAML_SCALAR_NODE || type->data.scalar.length == 0 ||
        type->data.scalar.length > 255 ||
        memchr(type->data.scalar.value, 0, type->data.scalar.length))
        return fail(ld, type, -EINVAL, "@type must be a type URL string");
    char *url = strndup((const char *)type->data.scalar.value, type->data.scalar.length);
    if (url == NULL)
        return fail_nomem(ld, type);
    const ProtobufCMessageDescriptor *desc = config_type_lookup(url);
    if (desc == NULL) {
        int rc = fail(ld, type, -EINVAL, "unknown type '%s' in @type", url);
        free(url);
        return rc;
    }
    ProtobufCMessage *inner = calloc(1, desc->sizeof_message);
    if (inner == NULL) {
        free(url);
        return fail_nomem(ld, node);
    }
    desc->message_init(inner);
    int rc;
    /* Types with their own JSON form nest it under "value", as the proto3 JSON mapping says. */
    if (config_wkt_kind(desc) != CONFIG_WKT_NONE) {
        if (other)
            rc = fail(ld, other, -EINVAL,
                      "unknown field: an Any of %s takes only '@type' and 'value'", desc->name);
        else if (value == NULL)
            rc = fail(ld, node, -EINVAL, "an Any of %s needs a 'value' key", desc->name);
        else {
            size_t old = path_push(ld, "value");
            rc = fill_message(ld, value, inner, depth + 1);
            if (rc == 0)
                path_pop(ld, old);
        }
    } else {
        rc = fill_fields(ld, node, inner, depth, 1);
    }
    if (rc < 0) {
        protobuf_c_message_free_unpacked(inner, NULL);
        free(url);
        return rc;
    }
    /* Packed exactly as an xDS server would send it, so both paths build identical snapshots. */
    size_t size = protobuf_c_message_get_packed_size(inner);
    uint8_t *data = size ? malloc(size) : NULL;
    if (size && data == NULL) {
        protobuf_c_message_free_unpacked(inner, NULL);
        free(url);
        return fail_nomem(ld, node);
    }
    if (size)
        protobuf_c_message_pack(inner, data);
    protobuf_c_message_free_unpacked(inner, NULL);
    Google__Protobuf__Any *any = (Google__Protobuf__Any *)msg;
    any->type_url = url;
    any->value.data = data;
    any->value.len = size;
    return 0;
}

static int fill_message(loader_t *ld, yaml_node_t *node, ProtobufCMessage *msg, int depth)
{
    int rc = enter(ld, node, depth);
    if (rc < 0)
        return rc;
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    char buf[64];
    config_wkt_t kind = config_wkt_kind(desc);
    switch (kind) {
    case CONFIG_WKT_DURATION:
    case CONFIG_WKT_TIMESTAMP:
        if (node->type == YAML_SCALAR_NODE) {
            Google__Protobuf__Duration *d = (Google__Protobuf__Duration *)msg;
            Google__Protobuf__Timestamp *t = (Google__Protobuf__Timestamp *)msg;
            if (kind == CONFIG_WKT_DURATION
                    ? config_parse_duration(SCALAR(node), &d->seconds, &d->nanos)
                    : config_parse_timestamp(SCALAR(node), &t->seconds, &t->nanos))
                return fail(ld, node, -EINVAL, "invalid %s %s (expected e.g. %s)", desc->short_name,
                            describe(node, buf, sizeof(buf)),
                            kind == CONFIG_WKT_DURATION ? "\"1.5s\"" : "\"2024-01-02T03:04:05Z\"");
            return check_fields(ld, node, msg, NULL);
        }
        break;
    case CONFIG_WKT_WRAPPER:
        if (node->type != YAML_SCALAR_NODE)
            return fail(ld, node, -EINVAL, "expected a plain value for %s, got %s",
                        desc->short_name, describe(node, buf, sizeof(buf)));
        return parse_value(ld, node, &desc->fields[0], FIELD_PTR(msg, desc->fields[0].offset),
                           depth);
    case CONFIG_WKT_STRUCT:
    case CONFIG_WKT_LIST:
        return set_field(ld, msg, &desc->fields[0], node, depth);
    case CONFIG_WKT_VALUE:
        return fill_value(ld, node, msg, depth);
    case CONFIG_WKT_ANY:
        return fill_any(ld, node, msg, depth);
    case CONFIG_WKT_NONE:
        break;
    }
    return fill_fields(ld, node, msg, depth, 0);
}

static int parse_message(loader_t *ld, yaml_node_t *node, const ProtobufCMessageDescriptor *desc,
                         ProtobufCMessage **out, int depth)
{
    ProtobufCMessage *msg = calloc(1, desc->sizeof_message);
    if (msg == NULL)
        return fail_nomem(ld, node);
    desc->message_init(msg);
    int rc = fill_message(ld, node, msg, depth);
    if (rc < 0) {
        protobuf_c_message_free_unpacked(msg, NULL);
        return rc;
    }
    *out = msg;
    return 0;
}

/* ---- documents ----------------------------------------------------------------------------- */

static int syntax_error(loader_t *ld, const yaml_parser_t *parser, const char *text, size_t len)
{
    if (parser->error == YAML_MEMORY_ERROR)
        return fail_nomem(ld, NULL);
    yaml_node_t where;
    memset(&where, 0, sizeof(where));
    where.start_mark = parser->problem_mark;
    if (parser->error == YAML_READER_ERROR) {
        /* Reader errors (bad encoding) carry only a byte offset. */
        size_t line = 0;
        for (size_t i = 0; i < parser->problem_offset && i < len; i++)
            line += text[i] == '\n';
        where.start_mark.line = line;
    }
    const char *problem = parser->problem ? parser->problem : "syntax error";
    if (parser->context)
        return fail(ld, &where, -EINVAL, "invalid YAML: %s (%s at line %lu)", problem,
                    parser->context, (unsigned long)parser->context_mark.line + 1);
    return fail(ld, &where, -EINVAL, "invalid YAML: %s", problem);
}

/* A streaming pass over the events before libyaml builds the document: libyaml's scanner spends
 * time quadratic in flow nesting and its loader a linear search per alias, so absurd nesting and
 * anchor counts are refused here, after reading only as far as the first offending event. The
 * depth allowed is twice the loader's, so ordinary over-nesting still gets a field path. */
static int prescan(loader_t *ld, const char *text, size_t len)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return fail_nomem(ld, NULL);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int depth = 0, anchors = 0, aliases = 0, rc = 0;
    for (int done = 0; !done && rc == 0;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = syntax_error(ld, &parser, text, len);
            break;
        }
        yaml_node_t where;
        memset(&where, 0, sizeof(where));
        where.start_mark = ev.start_mark;
        const yaml_char_t *anchor = NULL;
        switch (ev.type) {
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            anchor = ev.type == YAML_SEQUENCE_START_EVENT ? ev.data.sequence_start.anchor
                                                          : ev.data.mapping_start.anchor;
            if (++depth > 2 * CONFIG_YAML_MAX_DEPTH)
                rc = fail(ld, &where, -EINVAL, "nesting deeper than %d levels",
                          CONFIG_YAML_MAX_DEPTH);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            break;
        case YAML_SCALAR_EVENT:
            anchor = ev.data.scalar.anchor;
            break;
        case YAML_ALIAS_EVENT:
            if (++aliases > CONFIG_YAML_MAX_ALIASES)
                rc = fail(ld, &where, -EINVAL, "more than %d aliases", CONFIG_YAML_MAX_ALIASES);
            break;
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        default:
            break;
        }
        if (anchor && ++anchors > CONFIG_YAML_MAX_ANCHORS)
            rc = fail(ld, &where, -EINVAL, "more than %d anchors", CONFIG_YAML_MAX_ANCHORS);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return rc;
}

int config_yaml_load(const char *text, size_t len, const char *source,
                     const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out, char *err,
                     size_t errlen)
{
    loader_t ld = {.source = source ? source : "<yaml>", .err = err, .errlen = errlen};
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    int rc = prescan(&ld, text, len);
    if (rc < 0)
        return rc;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return fail_nomem(&ld, NULL);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    yaml_document_t doc, extra;
    if (!yaml_parser_load(&parser, &doc)) {
        rc = syntax_error(&ld, &parser, text, len);
        yaml_parser_delete(&parser);
        return rc;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root == NULL || is_null(root)) {
        rc = fail(&ld, root, -EINVAL, "empty document (expected a %s mapping)", short_type(desc));
    } else if (!yaml_parser_load(&parser, &extra)) {
        rc = syntax_error(&ld, &parser, text, len);
    } else {
        yaml_node_t *next = yaml_document_get_root_node(&extra);
        if (next)
            rc = fail(&ld, next, -EINVAL, "a second YAML document (only one is allowed)");
        yaml_document_delete(&extra);
    }
    if (rc == 0) {
        ld.doc = &doc;
        rc = parse_message(&ld, root, desc, out, 0);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

int config_yaml_load_file(const char *path, const ProtobufCMessageDescriptor *desc,
                          ProtobufCMessage **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int rc = -errno;
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(-rc));
        return rc;
    }
    size_t cap = 65536, len = 0;
    char *text = malloc(cap);
    int rc = text ? 0 : -ENOMEM;
    while (rc == 0) {
        if (len == cap) {
            char *bigger = cap >= CONFIG_YAML_MAX_FILE ? NULL : realloc(text, cap * 2);
            if (bigger == NULL) {
                rc = cap >= CONFIG_YAML_MAX_FILE ? -EFBIG : -ENOMEM;
                break;
            }
            text = bigger;
            cap *= 2;
        }
        size_t n = fread(text + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            rc = ferror(f) ? -EIO : 0;
            break;
        }
    }
    fclose(f);
    if (rc < 0)
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-rc));
    else
        rc = config_yaml_load(text, len, path, desc, out, err, errlen);
    free(text);
    return rc;
}
