/* What the files of xds/config/ share (internal to them): proto3 JSON forms (scalar text parsing,
 * well-known type kinds), descriptor facts protobuf-c leaves implicit, field paths as users see
 * them, and the per-message validation rules. */
#ifndef REMORA_XDS_CONFIG_FORMS_H
#define REMORA_XDS_CONFIG_FORMS_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* The storage of a field inside a message. */
#define CONFIG_FIELD_PTR(msg, off) ((void *)((char *)(msg) + (off)))

/* google.protobuf.Duration's range (about 10,000 years) and Timestamp's (years 0001-9999). */
#define CONFIG_DURATION_MAX_SECONDS  315576000000LL
#define CONFIG_TIMESTAMP_MIN_SECONDS (-62135596800LL)
#define CONFIG_TIMESTAMP_MAX_SECONDS 253402300799LL

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

/* Which well-known type desc (borrowed) is. */
config_wkt_t config_wkt_kind(const ProtobufCMessageDescriptor *desc);

/* Size of one element of a repeated field of this type in protobuf-c's arrays. */
size_t config_elt_size(ProtobufCType type);

/* Whether desc (borrowed) is the K/V entry protoc-c generates for a map<K,V> field. */
int config_is_map_entry(const ProtobufCMessageDescriptor *desc);

/* Text parsers over (s, n), borrowed, not NUL-terminated, into the caller's outputs; each returns 0
 * or -1 when malformed or out of range, writing outputs only on success. Integers: decimal, '-'
 * only when is_signed. */
int config_parse_int(const char *s, size_t n, int is_signed, int64_t min, uint64_t max,
                     uint64_t *out);
/* JSON-style numbers plus .inf/-.inf/.nan/Infinity/-Infinity/NaN. */
int config_parse_double(const char *s, size_t n, double *out);
/* Standard or URL-safe base64 (in borrowed), padding optional; out->data is malloc'd, owned by
 * the caller (free()) (-ENOMEM if not). */
int config_base64_decode(const unsigned char *in, size_t len, ProtobufCBinaryData *out);
/* "1.5s", "-0.25s": at most 9 fractional digits, |seconds| <= CONFIG_DURATION_MAX_SECONDS. */
int config_parse_duration(const char *s, size_t n, int64_t *sec, int32_t *nanos);
/* RFC 3339 in UTC: "2024-01-02T03:04:05.5Z". */
int config_parse_timestamp(const char *s, size_t n, int64_t *sec, int32_t *nanos);

/* A field path as errors show it: "static_resources.clusters[0].connect_timeout". A path too
 * long for the buffer is cut short, never overrun. */
#define CONFIG_PATH_MAX 1024
typedef struct config_path {
    size_t len;
    char s[CONFIG_PATH_MAX]; /* NUL-terminated */
} config_path_t;

/* Appends ".name" (just "name" to an empty path; name borrowed, copied) or "[i]" to p (borrowed);
 * each returns the length to give config_path_pop to undo it. */
size_t config_path_push(config_path_t *p, const char *name);
size_t config_path_push_index(config_path_t *p, size_t i);
/* Cuts p (borrowed) back to length old. */
void config_path_pop(config_path_t *p, size_t old);

/* Whether field f of msg (both borrowed) holds a value: the selected member of a oneof, a set
 * message, a proto3 `optional` scalar that has one, any other scalar or repeated field. A oneof
 * member that is not selected shares its storage with the one that is: never read it. */
int config_field_present(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f);

/* What config_check_fields found wrong. */
typedef struct config_violation {
    const ProtobufCFieldDescriptor *field; /* the field it concerns; NULL: the message itself */
    char what[256];                        /* "must be greater than 0s" */
} config_violation_t;

/* Checks msg's own fields (not the messages under it; msg borrowed) against the rules Remora
 * keeps of Envoy's validate.rules (the table in config_validate.c), enum values against their
 * enum, and a Duration or Timestamp against its range. Returns 0, or -EINVAL with *v (the caller's;
 * its field borrowed from msg's static descriptor) saying which field and why. The YAML loader runs
 * it on each message it fills; config_validate runs it on every message of a tree. */
int config_check_fields(const ProtobufCMessage *msg, config_violation_t *v);

#endif
