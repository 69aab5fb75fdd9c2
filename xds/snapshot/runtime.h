/* Envoy's layered runtime, flattened: the bootstrap's layered_runtime layers become one table of
 * dotted keys ("envoy.resource_limits.listener.x.connection_limit"), later layers overriding
 * earlier ones, from which the snapshot reads the few keys Remora honours. */
#ifndef REMORA_XDS_RUNTIME_H
#define REMORA_XDS_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The keys Remora acts on; every other key is reported by runtime_unused_keys. */
#define RUNTIME_LISTENER_LIMIT_PREFIX "envoy.resource_limits.listener."
#define RUNTIME_LISTENER_LIMIT_SUFFIX ".connection_limit"
#define RUNTIME_GLOBAL_MAX_CX         "overload.global_downstream_max_connections"

/* No limit: what a limit key reads as when it is not set. */
#define RUNTIME_NO_LIMIT UINT64_MAX

typedef struct runtime_entry {
    char *key;         /* owned */
    const void *value; /* the google.protobuf.Value that set it, borrowed from the Bootstrap */
    const char *layer; /* name of the layer that set it, borrowed from the Bootstrap */
    bool used;         /* read by runtime_get_limit */
} runtime_entry_t;

/* Entries sorted by key, each key once (its value from the last layer that sets it). */
typedef struct runtime {
    runtime_entry_t *entries;
    size_t n;
} runtime_t;

/* Flattens `layered` (an Envoy__Config__Bootstrap__V3__LayeredRuntime*, borrowed; NULL: no
 * runtime) into *out, whose entries borrow values and layer names from it: the message must
 * outlive *out. Static layers are walked as Envoy walks them: nested Struct keys join with '.',
 * an empty Struct or one with numerator/denominator is one value, a list or null is an error.
 * admin_layer is accepted and adds nothing; disk_layer and rtds_layer are errors. On error
 * returns -EINVAL (or -ENOMEM) with err naming the layer and key, and *out empty. */
int runtime_build(const void *layered, runtime_t *out, char *err, size_t errlen);

/* Frees the entries (not the message they borrow from) and empties rt (borrowed). */
void runtime_free(runtime_t *rt);

/* The entry for key (borrowed for the call), or NULL; a pointer into rt, valid while rt is. */
const runtime_entry_t *runtime_find(const runtime_t *rt, const char *key);

/* Reads key as a connection limit into *limit, which stays as it is when the key is not set,
 * and marks the key used. rt and key are borrowed for the call. A limit is a non-negative whole
 * number, or a string of decimal digits (Envoy reads both); numbers past 2^64-1 mean no limit.
 * Returns 0, or -EINVAL with err naming the key and layer when the value is anything else. */
int runtime_get_limit(runtime_t *rt, const char *key, uint64_t *limit, char *err, size_t errlen);

/* runtime_get_limit for envoy.resource_limits.listener.<listener>.connection_limit; listener
 * borrowed for the call. */
int runtime_listener_limit(runtime_t *rt, const char *listener, uint64_t *limit, char *err,
                           size_t errlen);

/* Writes the keys no runtime_get_limit call read, ", "-separated, into buf (the caller's; cut short
 * with
 * ", ..." when it does not fit); rt borrowed. and returns how many there are. */
size_t runtime_unused_keys(const runtime_t *rt, char *buf, size_t len);

#endif
