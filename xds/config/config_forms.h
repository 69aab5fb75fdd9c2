/* proto3 JSON forms shared by config_yaml.c and config_json.c (internal to xds/config_*):
 * scalar text parsing, well-known type kinds, and descriptor facts protobuf-c leaves implicit. */
#ifndef REMORA_XDS_CONFIG_FORMS_H
#define REMORA_XDS_CONFIG_FORMS_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* google.protobuf types whose JSON form is not an object of their fields. */
typedef enum {
    CONFIG_WKT_NONE,
    CONFIG_WKT_DURATION,
    CONFIG_WKT_TIMESTAMP,
    CONFIG_WKT_WRAPPER, /* DoubleValue ... BytesValue: the plain value */
    CONFIG_WKT_STRUCT,
    CONFIG_WKT_VALUE,
    CONFIG_WKT_LIST,
    CONFIG_WKT_ANY,
} config_wkt_t;

config_wkt_t config_wkt_kind(const ProtobufCMessageDescriptor *desc);

/* Size of one element of a repeated field of this type in protobuf-c's arrays. */
size_t config_elt_size(ProtobufCType type);

/* Whether desc is the K/V entry protoc-c generates for a map<K,V> field. */
int config_is_map_entry(const ProtobufCMessageDescriptor *desc);

/* Text parsers over (s, n), not NUL-terminated; each returns 0 or -1 when malformed or out of
 * range, writing outputs only on success. Integers: decimal, '-' only when is_signed. */
int config_parse_int(const char *s, size_t n, int is_signed, int64_t min, uint64_t max,
                     uint64_t *out);
/* JSON-style numbers plus .inf/-.inf/.nan/Infinity/-Infinity/NaN. */
int config_parse_double(const char *s, size_t n, double *out);
/* Standard or URL-safe base64, padding optional; out->data is malloc'd (-ENOMEM if not). */
int config_base64_decode(const unsigned char *in, size_t len, ProtobufCBinaryData *out);
/* "1.5s", "-0.25s": at most 9 fractional digits, |seconds| <= 315576000000. */
int config_parse_duration(const char *s, size_t n, int64_t *sec, int32_t *nanos);
/* RFC 3339 in UTC: "2024-01-02T03:04:05.5Z". */
int config_parse_timestamp(const char *s, size_t n, int64_t *sec, int32_t *nanos);

#endif
