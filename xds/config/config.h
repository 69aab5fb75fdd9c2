/* Remora configuration: Envoy-v3-shaped protobuf-c messages loaded from YAML, resolved by type
 * URL, and rendered as JSON, all generically through the protobuf-c descriptors. */
#ifndef REMORA_XDS_CONFIG_H
#define REMORA_XDS_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "google/protobuf/any.pb-c.h"

/* Limits that make hostile YAML fail cleanly instead of exhausting stack, time or memory. */
#define CONFIG_YAML_MAX_DEPTH   64     /* nested mappings/sequences below the document root */
#define CONFIG_YAML_MAX_NODES   200000 /* nodes visited, counting each alias expansion */
#define CONFIG_YAML_MAX_FILE    (64 << 20)
#define CONFIG_YAML_MAX_ANCHORS 1000 /* libyaml resolves each alias by a linear anchor search */
#define CONFIG_YAML_MAX_ALIASES 10000

/* Parses YAML text into a new message of type desc, generically through protobuf-c descriptors.
 * text borrows (need not be NUL-terminated). source names the input in errors ("bootstrap.yaml").
 * On success returns 0 and *out is a new message owned by the caller, freed with
 * protobuf_c_message_free_unpacked(msg, NULL). On error returns -EINVAL (or -ENOMEM), *out is
 * NULL, and err holds "<source>:<line>: <field path>: <what is wrong>" (the path is left out when
 * the error concerns the document itself). err may be NULL when errlen is 0. */
int config_yaml_load(const char *text, size_t len, const char *source,
                     const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out, char *err,
                     size_t errlen);

/* Reads the file at path (borrowed) and loads it with config_yaml_load (desc and *out as
 * there), naming it by path in errors.
 * Returns -errno (e.g. -ENOENT) when the file cannot be read, with err saying so. */
int config_yaml_load_file(const char *path, const ProtobufCMessageDescriptor *desc,
                          ProtobufCMessage **out, char *err, size_t errlen);

/* Looks up a message descriptor by type URL ("type.googleapis.com/envoy.config.cluster.v3.Cluster",
 * any prefix up to the last '/') or by full name; NULL if unknown. The registry is the table of
 * every generated message in config_types.c. Returns a static descriptor. type_url borrowed. */
const ProtobufCMessageDescriptor *config_type_lookup(const char *type_url);

/* Unpacks an Any (borrowed) whose type must be `want` (the name after the type URL's last '/' is
 * checked; want borrowed). On success returns 0 and *out is a new message owned by the caller
 * (protobuf_c_message_free_unpacked); on error returns -EINVAL with *out NULL and err saying
 * why. */
int config_any_unpack(const Google__Protobuf__Any *any, const ProtobufCMessageDescriptor *want,
                      ProtobufCMessage **out, char *err, size_t errlen);

struct pb_arena;
/* config_any_unpack into an arena (pb_arena.h): on success *out is a new message that lives in
 * *arena (new, the caller's: pb_arena_free frees both; the message is read-only); on error both
 * are NULL. For a message kept as it came, as the xDS client keeps its resources. */
int config_any_unpack_arena(const Google__Protobuf__Any *any,
                            const ProtobufCMessageDescriptor *want, ProtobufCMessage **out,
                            struct pb_arena **arena, char *err, size_t errlen);

/* Checks msg (borrowed) and every message under it, Any values of registered types unpacked
 * and checked too, against the field rules every config source must meet (docs/config.md,
 * "Value checks"): negative or out-of-range Durations, ports, weights and the other rules
 * Remora keeps of Envoy's validate.rules, enum values no enum defines. path names msg in errors
 * ("static_resources.clusters[0]"; borrowed; NULL or "": none). Returns 0, or -EINVAL (-ENOMEM)
 * with err reading "<path>.<field>: <what is wrong>", e.g.
 * "static_resources.clusters[0].connect_timeout: duration must not be negative". */
int config_validate(const ProtobufCMessage *msg, const char *path, char *err, size_t errlen);

struct Google__Protobuf__Duration;

/* A Duration (borrowed; NULL: unset, giving dflt) in whole milliseconds. For messages that
 * passed config_validate: it neither checks for negative values nor overflows on valid ones. */
uint64_t config_duration_ms(const struct Google__Protobuf__Duration *d, uint64_t dflt);

/* Renders a message (borrowed) as JSON in the proto3 JSON shape with proto field names
 * (snake_case): enums by name, 64-bit integers as strings, bytes as base64, Duration as "1.5s",
 * Timestamp as RFC 3339, wrappers as plain values, Struct/Value/ListValue natively, Any expanded as
 * an object with "@type" first then the decoded fields (unknown type: "@type" + base64 "value"),
 * default-valued scalars and absent messages omitted. Fields Envoy marks sensitive (a
 * TlsCertificate's private_key, pkcs12 and password, ...) are redacted as Envoy does: strings in
 * them read "[redacted]", bytes the base64 of "[redacted]". Returns a new reference the caller
 * drops with json_decref (NULL only when out of memory). */
json_t *config_to_json(const ProtobufCMessage *msg);

#endif
