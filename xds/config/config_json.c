/* Renders any protobuf-c message as proto3-style JSON through its descriptor, for /config_dump
 * and for humans: Any payloads are decoded by type URL, well-known types use their JSON forms. */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xds/config/config.h"
#include "xds/config/config_forms.h"

#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"

/* Messages decoded from the wire can nest Struct or Any without bound; past this depth a
 * placeholder string stands in, so rendering never exhausts the stack. */
#define JSON_MAX_DEPTH 100

#define FIELD_PTR(msg, off) ((const void *)((const char *)(msg) + (off)))

static json_t *message_json(const ProtobufCMessage *msg, int depth);
static json_t *redacted_message_json(const ProtobufCMessage *msg, int depth);

/* Fields Envoy marks sensitive (udpa.annotations.sensitive): secrets that /config_dump must not
 * show. They render the way Envoy redacts them: every string in them "[redacted]", every bytes
 * value the base64 of "[redacted]", other scalars left out. */
#define REDACTED "[redacted]"
static const struct {
    const char *message;
    const char *field;
} sensitive_fields[] = {
    {"envoy.extensions.transport_sockets.tls.v3.TlsCertificate", "private_key"},
    {"envoy.extensions.transport_sockets.tls.v3.TlsCertificate", "pkcs12"},
    {"envoy.extensions.transport_sockets.tls.v3.TlsCertificate", "password"},
    {"envoy.extensions.transport_sockets.tls.v3.TlsSessionTicketKeys", "keys"},
    {"envoy.extensions.transport_sockets.tls.v3.PrivateKeyProvider", "typed_config"},
};

static bool is_sensitive(const ProtobufCMessageDescriptor *desc, const ProtobufCFieldDescriptor *f)
{
    for (size_t i = 0; i < sizeof(sensitive_fields) / sizeof(sensitive_fields[0]); i++)
        if (strcmp(sensitive_fields[i].field, f->name) == 0 &&
            strcmp(sensitive_fields[i].message, desc->name) == 0)
            return true;
    return false;
}

static int is_package(const ProtobufCMessageDescriptor *desc, const char *short_name)
{
    return strcmp(desc->package_name, "google.protobuf") == 0 &&
           strcmp(desc->short_name, short_name) == 0;
}

/* Wrappers (UInt32Value, BoolValue, ...) are the google.protobuf "*Value" messages other than
 * Value and ListValue, which have JSON forms of their own. */
static int is_wrapper(const ProtobufCMessageDescriptor *desc)
{
    size_t len = strlen(desc->short_name);
    return strcmp(desc->package_name, "google.protobuf") == 0 && len > 5 &&
           strcmp(desc->short_name + len - 5, "Value") == 0 &&
           strcmp(desc->short_name, "Value") != 0 && strcmp(desc->short_name, "ListValue") != 0;
}

static int has_json_form(const ProtobufCMessageDescriptor *desc)
{
    return is_wrapper(desc) || is_package(desc, "Duration") || is_package(desc, "Timestamp") ||
           is_package(desc, "Struct") || is_package(desc, "Value") ||
           is_package(desc, "ListValue") || is_package(desc, "Any");
}

/* Strings decoded from the wire are not checked for UTF-8; jansson refuses those, so invalid
 * bytes become U+FFFD instead of dropping the field. */
static json_t *string_json(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    if (j || s == NULL)
        return j;
    char *copy = malloc(len * 3 + 1);
    if (copy == NULL)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        size_t k = 1;
        unsigned char c = (unsigned char)s[i];
        if (c >= 0xc2 && c <= 0xf4)
            k = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
        json_t *seq = k > 1 && i + k <= len ? json_stringn(s + i, k) : NULL;
        if (seq) {
            json_decref(seq);
            memcpy(copy + n, s + i, k);
            n += k;
            i += k;
        } else if (c < 0x80 && c != 0) {
            copy[n++] = (char)c;
            i++;
        } else {
            memcpy(copy + n, "\xef\xbf\xbd", 3);
            n += 3;
            i++;
        }
    }
    j = json_stringn(copy, n);
    free(copy);
    return j;
}

static json_t *base64_json(const uint8_t *data, size_t len)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((len + 2) / 3 * 4 + 1);
    if (out == NULL)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < len)
            v |= data[i + 2];
        out[n++] = tbl[(v >> 18) & 63];
        out[n++] = tbl[(v >> 12) & 63];
        out[n++] = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
        out[n++] = i + 2 < len ? tbl[v & 63] : '=';
    }
    json_t *j = json_stringn(out, n);
    free(out);
    return j;
}

static json_t *double_json(double d)
{
    if (isnan(d))
        return json_string("NaN");
    if (isinf(d))
        return json_string(d > 0 ? "Infinity" : "-Infinity");
    return json_real(d);
}

/* Fractional seconds with trailing zeros trimmed: 1.5s, 0.25s, 3600s. */
static int format_fraction(char *buf, size_t len, int32_t nanos)
{
    if (nanos == 0)
        return snprintf(buf, len, "%s", "");
    char digits[16];
    snprintf(digits, sizeof(digits), "%09" PRId32, nanos);
    size_t n = 9;
    while (n > 1 && digits[n - 1] == '0')
        n--;
    return snprintf(buf, len, ".%.*s", (int)n, digits);
}

static json_t *duration_json(const Google__Protobuf__Duration *d)
{
    int neg = d->seconds < 0 || d->nanos < 0;
    uint64_t sec = d->seconds < 0 ? -(uint64_t)d->seconds : (uint64_t)d->seconds;
    int32_t nanos = d->nanos < 0 ? (d->nanos == INT32_MIN ? INT32_MAX : -d->nanos) : d->nanos;
    char frac[16], buf[48];
    format_fraction(frac, sizeof(frac), nanos % 1000000000);
    snprintf(buf, sizeof(buf), "%s%" PRIu64 "%ss", neg ? "-" : "", sec, frac);
    return json_string(buf);
}

static json_t *timestamp_json(const Google__Protobuf__Timestamp *t)
{
    struct tm tm;
    time_t secs = (time_t)t->seconds;
    char frac[16], date[40], buf[64];
    if (t->seconds < CONFIG_TIMESTAMP_MIN_SECONDS || t->seconds > CONFIG_TIMESTAMP_MAX_SECONDS ||
        gmtime_r(&secs, &tm) == NULL)
        return json_integer(t->seconds); /* outside RFC 3339's years 0001-9999 */
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    format_fraction(frac, sizeof(frac), t->nanos >= 0 ? t->nanos % 1000000000 : 0);
    snprintf(buf, sizeof(buf), "%s%sZ", date, frac);
    return json_string(buf);
}

/* One element of a field's type, at p. */
static json_t *value_json(const ProtobufCFieldDescriptor *f, const void *p, int depth)
{
    char buf[32];
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        /* proto3 JSON writes 64-bit integers as strings: doubles would lose precision. */
        snprintf(buf, sizeof(buf), "%" PRId64, *(const int64_t *)p);
        return json_string(buf);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        snprintf(buf, sizeof(buf), "%" PRIu64, *(const uint64_t *)p);
        return json_string(buf);
    case PROTOBUF_C_TYPE_FLOAT:
        return double_json(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
        return double_json(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int *)p);
        return ev ? json_string(ev->name) : json_integer(*(const int *)p);
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return s ? string_json(s, strlen(s)) : json_string("");
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *bd = p;
        return base64_json(bd->data, bd->data ? bd->len : 0);
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        return message_json(*(ProtobufCMessage *const *)p, depth + 1);
    }
    return json_null();
}

/* One element of a sensitive field (or of anything inside one); NULL: left out. */
static json_t *redacted_value_json(const ProtobufCFieldDescriptor *f, const void *p, int depth)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        return json_string(REDACTED);
    case PROTOBUF_C_TYPE_BYTES:
        return base64_json((const uint8_t *)REDACTED, strlen(REDACTED));
    case PROTOBUF_C_TYPE_MESSAGE:
        return redacted_message_json(*(ProtobufCMessage *const *)p, depth + 1);
    default:
        return NULL;
    }
}

static json_t *map_json(const ProtobufCMessage *const *entries, size_t n, int depth)
{
    json_t *obj = json_object();
    for (size_t i = 0; obj && i < n; i++) {
        const ProtobufCMessageDescriptor *ed = entries[i]->descriptor;
        json_t *key =
            value_json(&ed->fields[0], FIELD_PTR(entries[i], ed->fields[0].offset), depth);
        json_t *val =
            value_json(&ed->fields[1], FIELD_PTR(entries[i], ed->fields[1].offset), depth);
        char buf[32];
        const char *k = json_string_value(key);
        if (k == NULL && json_is_integer(key)) {
            snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(key));
            k = buf;
        } else if (k == NULL) {
            k = json_is_true(key) ? "true" : "false";
        }
        json_object_set_new(obj, k, val ? val : json_null());
        json_decref(key);
    }
    return obj;
}

static int is_default(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return *(const uint64_t *)p == 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)p == 0 && !signbit(*(const double *)p);
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)p == 0 && !signbit(*(const float *)p);
    case PROTOBUF_C_TYPE_BOOL:
        return !*(const protobuf_c_boolean *)p;
    case PROTOBUF_C_TYPE_STRING:
        return *(char *const *)p == NULL || **(char *const *)p == '\0';
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)p)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(ProtobufCMessage *const *)p == NULL;
    default:
        return *(const uint32_t *)p == 0;
    }
}

/* redact: msg is inside a sensitive field, so every value is redacted. */
static json_t *fields_json(const ProtobufCMessage *msg, int depth, bool redact)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    json_t *obj = json_object();
    for (unsigned i = 0; obj && i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        const void *p = FIELD_PTR(msg, f->offset);
        json_t *(*elt_json)(const ProtobufCFieldDescriptor *, const void *, int) =
            redact || is_sensitive(desc, f) ? redacted_value_json : value_json;
        json_t *v;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)FIELD_PTR(msg, f->quantifier_offset);
            const char *arr = *(const char *const *)p;
            if (n == 0 || arr == NULL)
                continue;
            if (f->type == PROTOBUF_C_TYPE_MESSAGE && config_is_map_entry(f->descriptor)) {
                v = elt_json == value_json
                        ? map_json((const ProtobufCMessage *const *)arr, n, depth)
                        : json_string(REDACTED);
            } else {
                v = json_array();
                for (size_t k = 0; v && k < n; k++) {
                    json_t *e = elt_json(f, arr + k * config_elt_size(f->type), depth);
                    if (e)
                        json_array_append_new(v, e);
                }
                if (json_array_size(v) == 0) {
                    json_decref(v);
                    continue;
                }
            }
        } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            /* A set oneof member is shown even at its default: which one is set matters. */
            if (*(const uint32_t *)FIELD_PTR(msg, f->quantifier_offset) != f->id)
                continue;
            v = f->type == PROTOBUF_C_TYPE_MESSAGE && *(ProtobufCMessage *const *)p == NULL
                    ? json_object()
                    : elt_json(f, p, depth);
        } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE &&
                   f->type != PROTOBUF_C_TYPE_STRING) {
            if (!*(const protobuf_c_boolean *)FIELD_PTR(msg, f->quantifier_offset))
                continue;
            v = elt_json(f, p, depth);
        } else {
            if (is_default(f, p))
                continue;
            v = elt_json(f, p, depth);
        }
        if (v)
            json_object_set_new(obj, f->name, v);
    }
    return obj;
}

/* redact: the Any is inside a sensitive field. */
static json_t *any_json(const Google__Protobuf__Any *any, int depth, bool redact)
{
    json_t *obj = json_object();
    if (obj == NULL)
        return NULL;
    const char *url = any->type_url ? any->type_url : "";
    json_object_set_new(obj, "@type", string_json(url, strlen(url)));
    const ProtobufCMessageDescriptor *desc = config_type_lookup(url);
    ProtobufCMessage *inner =
        desc ? protobuf_c_message_unpack(desc, NULL, any->value.len, any->value.data) : NULL;
    if (inner == NULL) {
        json_object_set_new(obj, "value",
                            redact ? base64_json((const uint8_t *)REDACTED, strlen(REDACTED))
                                   : base64_json(any->value.data, any->value.len));
        return obj;
    }
    json_t *body =
        redact ? redacted_message_json(inner, depth + 1) : message_json(inner, depth + 1);
    protobuf_c_message_free_unpacked(inner, NULL);
    if (body == NULL)
        return obj;
    if (has_json_form(desc) || !json_is_object(body)) {
        json_object_set_new(obj, "value", body);
        return obj;
    }
    const char *key;
    json_t *val;
    json_object_foreach(body, key, val) json_object_set(obj, key, val);
    json_decref(body);
    return obj;
}

static json_t *message_json(const ProtobufCMessage *msg, int depth)
{
    if (msg == NULL)
        return json_null();
    if (depth > JSON_MAX_DEPTH)
        return json_string("<nesting too deep>");
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    if (strcmp(desc->package_name, "google.protobuf") != 0)
        return fields_json(msg, depth, false);
    if (is_wrapper(desc))
        return value_json(&desc->fields[0], FIELD_PTR(msg, desc->fields[0].offset), depth);
    if (is_package(desc, "Duration"))
        return duration_json((const Google__Protobuf__Duration *)msg);
    if (is_package(desc, "Timestamp"))
        return timestamp_json((const Google__Protobuf__Timestamp *)msg);
    if (is_package(desc, "Any"))
        return any_json((const Google__Protobuf__Any *)msg, depth, false);
    if (is_package(desc, "Struct") || is_package(desc, "ListValue")) {
        /* Their single field (map fields / repeated values) is the whole JSON value. */
        const ProtobufCFieldDescriptor *f = &desc->fields[0];
        size_t n = *(const size_t *)FIELD_PTR(msg, f->quantifier_offset);
        const char *arr = *(const char *const *)FIELD_PTR(msg, f->offset);
        if (is_package(desc, "Struct"))
            return map_json((const ProtobufCMessage *const *)arr, arr ? n : 0, depth);
        json_t *list = json_array();
        for (size_t k = 0; list && arr && k < n; k++)
            json_array_append_new(list, value_json(f, arr + k * sizeof(ProtobufCMessage *), depth));
        return list;
    }
    if (is_package(desc, "Value")) {
        const Google__Protobuf__Value *v = (const Google__Protobuf__Value *)msg;
        switch (v->kind_case) {
        case GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE:
            return double_json(v->number_value);
        case GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE:
            return value_json(protobuf_c_message_descriptor_get_field(desc, v->kind_case),
                              &v->string_value, depth);
        case GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE:
            return json_boolean(v->bool_value);
        case GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE:
            return message_json((const ProtobufCMessage *)v->struct_value, depth + 1);
        case GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE:
            return message_json((const ProtobufCMessage *)v->list_value, depth + 1);
        default:
            return json_null();
        }
    }
    return fields_json(msg, depth, false);
}

/* A message inside a sensitive field. Well-known types other than Any and the string and bytes
 * wrappers hold no text worth keeping: they become "[redacted]" whole. */
static json_t *redacted_message_json(const ProtobufCMessage *msg, int depth)
{
    if (msg == NULL)
        return NULL;
    if (depth > JSON_MAX_DEPTH)
        return json_string("<nesting too deep>");
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    if (strcmp(desc->package_name, "google.protobuf") != 0)
        return fields_json(msg, depth, true);
    if (is_package(desc, "Any"))
        return any_json((const Google__Protobuf__Any *)msg, depth, true);
    if (is_wrapper(desc) && desc->fields[0].type != PROTOBUF_C_TYPE_STRING &&
        desc->fields[0].type != PROTOBUF_C_TYPE_BYTES)
        return NULL;
    if (is_wrapper(desc))
        return redacted_value_json(&desc->fields[0], FIELD_PTR(msg, desc->fields[0].offset), depth);
    return json_string(REDACTED);
}

json_t *config_to_json(const ProtobufCMessage *msg)
{
    return message_json(msg, 0);
}
