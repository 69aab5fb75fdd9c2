/* proto3 JSON forms shared by the YAML loader and the JSON writer: scalar text parsing, the
 * well-known types, descriptor facts protobuf-c leaves implicit, and field paths. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xds/config/config_forms.h"

config_wkt_t config_wkt_kind(const ProtobufCMessageDescriptor *desc)
{
    if (strcmp(desc->package_name, "google.protobuf") != 0)
        return CONFIG_WKT_NONE;
    const char *n = desc->short_name;
    if (strcmp(n, "Duration") == 0)
        return CONFIG_WKT_DURATION;
    if (strcmp(n, "Timestamp") == 0)
        return CONFIG_WKT_TIMESTAMP;
    if (strcmp(n, "Struct") == 0)
        return CONFIG_WKT_STRUCT;
    if (strcmp(n, "Value") == 0)
        return CONFIG_WKT_VALUE;
    if (strcmp(n, "ListValue") == 0)
        return CONFIG_WKT_LIST;
    if (strcmp(n, "Any") == 0)
        return CONFIG_WKT_ANY;
    size_t len = strlen(n);
    if (len > 5 && strcmp(n + len - 5, "Value") == 0)
        return CONFIG_WKT_WRAPPER;
    return CONFIG_WKT_NONE;
}

/* Copies text into buf for strto* (which need a terminator); overlong numbers are malformed. */
static int copy_text(const char *s, size_t n, char *buf, size_t len)
{
    if (n == 0 || n >= len || memchr(s, 0, n))
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return 0;
}

int config_parse_int(const char *s, size_t n, int is_signed, int64_t min, uint64_t max,
                     uint64_t *out)
{
    char buf[40];
    if (copy_text(s, n, buf, sizeof(buf)) < 0)
        return -1;
    const char *p = buf[0] == '-' ? buf + 1 : buf;
    if (*p < '0' || *p > '9' || (buf[0] == '-' && !is_signed))
        return -1;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9')
            return -1;
    errno = 0;
    if (is_signed) {
        long long v = strtoll(buf, NULL, 10);
        if (errno || v < min || (v > 0 && (uint64_t)v > max))
            return -1;
        *out = (uint64_t)v;
    } else {
        unsigned long long v = strtoull(buf, NULL, 10);
        if (errno || v > max)
            return -1;
        *out = v;
    }
    return 0;
}

int config_parse_double(const char *s, size_t n, double *out)
{
    char buf[64];
    if (copy_text(s, n, buf, sizeof(buf)) < 0)
        return -1;
    if (strcmp(buf, ".inf") == 0 || strcmp(buf, "Infinity") == 0) {
        *out = INFINITY;
        return 0;
    }
    if (strcmp(buf, "-.inf") == 0 || strcmp(buf, "-Infinity") == 0) {
        *out = -INFINITY;
        return 0;
    }
    if (strcmp(buf, ".nan") == 0 || strcmp(buf, "NaN") == 0) {
        *out = NAN;
        return 0;
    }
    /* Only JSON-style numbers: strtod alone would also take hex, "inf" and "nan". */
    const char *p = buf[0] == '-' ? buf + 1 : buf;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p; p++)
        if (!strchr("0123456789.eE+-", *p))
            return -1;
    char *end;
    errno = 0;
    *out = strtod(buf, &end);
    return *end || errno == ERANGE ? -1 : 0;
}

static int base64_value(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

/* Standard or URL-safe base64, padding optional, as the proto3 JSON mapping accepts. */
int config_base64_decode(const unsigned char *in, size_t len, ProtobufCBinaryData *out)
{
    while (len > 0 && in[len - 1] == '=')
        len--;
    if (len % 4 == 1)
        return -1;
    uint8_t *data = malloc(len / 4 * 3 + 3);
    if (data == NULL)
        return -ENOMEM;
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = base64_value(in[i]);
        if (v < 0) {
            free(data);
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            data[n++] = (uint8_t)(acc >> bits);
        }
    }
    out->data = data;
    out->len = n;
    return 0;
}

/* "1.5s", "0.25s", "-3s": the proto3 JSON form of a Duration. */
int config_parse_duration(const char *s, size_t n, int64_t *sec, int32_t *nanos)
{
    char buf[40];
    if (copy_text(s, n, buf, sizeof(buf)) < 0)
        return -1;
    size_t len = strlen(buf);
    if (len < 2 || buf[len - 1] != 's')
        return -1;
    buf[--len] = '\0';
    int neg = buf[0] == '-';
    const char *p = buf + neg;
    int64_t secs = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        if (digits >= 12)
            return -1;
        secs = secs * 10 + (*p - '0');
    }
    int32_t ns = 0;
    int fdigits = 0;
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++, fdigits++) {
            if (fdigits >= 9)
                return -1;
            ns = ns * 10 + (*p - '0');
        }
        if (fdigits == 0)
            return -1;
        for (int i = fdigits; i < 9; i++)
            ns *= 10;
    }
    if (*p || digits == 0 || secs > CONFIG_DURATION_MAX_SECONDS)
        return -1;
    *sec = neg ? -secs : secs;
    *nanos = neg ? -ns : ns;
    return 0;
}

/* RFC 3339 in UTC ("2024-01-02T03:04:05.5Z"), the proto3 JSON form of a Timestamp. */
int config_parse_timestamp(const char *s, size_t n, int64_t *sec, int32_t *nanos)
{
    char buf[48];
    if (copy_text(s, n, buf, sizeof(buf)) < 0)
        return -1;
    struct tm tm = {0};
    const char *p = strptime(buf, "%Y-%m-%dT%H:%M:%S", &tm);
    if (p == NULL)
        return -1;
    int32_t ns = 0;
    if (*p == '.') {
        int fdigits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, fdigits++) {
            if (fdigits >= 9)
                return -1;
            ns = ns * 10 + (*p - '0');
        }
        if (fdigits == 0)
            return -1;
        for (int i = fdigits; i < 9; i++)
            ns *= 10;
    }
    if (strcmp(p, "Z") != 0)
        return -1;
    *sec = (int64_t)timegm(&tm);
    *nanos = ns;
    return 0;
}

size_t config_elt_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return sizeof(uint64_t);
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    default:
        return sizeof(uint32_t); /* 32-bit ints, float, enum */
    }
}

/* protoc-c marks map<K,V> fields as repeated K/V entry messages; only the shape tells them. */
int config_is_map_entry(const ProtobufCMessageDescriptor *desc)
{
    size_t len = strlen(desc->short_name);
    return desc->n_fields == 2 && len > 5 && strcmp(desc->short_name + len - 5, "Entry") == 0 &&
           strcmp(desc->fields[0].name, "key") == 0 && strcmp(desc->fields[1].name, "value") == 0;
}

int config_field_present(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)CONFIG_FIELD_PTR(msg, f->quantifier_offset) == f->id;
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return *(const size_t *)CONFIG_FIELD_PTR(msg, f->quantifier_offset) > 0;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE)
        return *(ProtobufCMessage *const *)CONFIG_FIELD_PTR(msg, f->offset) != NULL;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING)
        return *(const protobuf_c_boolean *)CONFIG_FIELD_PTR(msg, f->quantifier_offset);
    return 1;
}

/* Sets the path's length after a snprintf at old that returned n, cutting it short when the
 * text did not fit. Returns old, for config_path_pop. */
static size_t path_grown(config_path_t *p, size_t old, int n)
{
    p->len = n < 0 ? old : (size_t)n + old >= sizeof(p->s) ? sizeof(p->s) - 1 : old + (size_t)n;
    return old;
}

size_t config_path_push(config_path_t *p, const char *name)
{
    size_t old = p->len;
    return path_grown(p, old,
                      snprintf(p->s + old, sizeof(p->s) - old, "%s%s", old ? "." : "", name));
}

size_t config_path_push_index(config_path_t *p, size_t i)
{
    size_t old = p->len;
    return path_grown(p, old, snprintf(p->s + old, sizeof(p->s) - old, "[%zu]", i));
}

void config_path_pop(config_path_t *p, size_t old)
{
    p->len = old;
    p->s[old] = '\0';
}
