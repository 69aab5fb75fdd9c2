/* The xDS client's protocol state machine: ADS over one gRPC stream, state of the world
 * (StreamAggregatedResources) or delta (DeltaAggregatedResources). It keeps what is subscribed,
 * the last good message of every resource and the last rejection, and says which request is owed
 * next: bytes of a response in, bytes of requests out, a resource set for the snapshot builder.
 * No sockets, no timers, no threads: the caller drives it (docs/xds.md). */
#ifndef REMORA_XDS_ADS_H
#define REMORA_XDS_ADS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "xds/snapshot/resources.h"

struct Envoy__Config__Core__V3__Node;

/* The resource types the client speaks, by type URL (every function takes these strings). */
#define ADS_TYPE_CLUSTER  "type.googleapis.com/envoy.config.cluster.v3.Cluster"
#define ADS_TYPE_ENDPOINT "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
#define ADS_TYPE_LISTENER "type.googleapis.com/envoy.config.listener.v3.Listener"
#define ADS_TYPE_ROUTE    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
#define ADS_TYPE_SECRET   "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

/* The gRPC methods of the two modes. */
#define ADS_METHOD_SOTW                                                                            \
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
#define ADS_METHOD_DELTA                                                                           \
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"

#define ADS_NAME_MAX  4096 /* bytes of a resource name; a longer one is rejected */
#define ADS_ERROR_MAX 4096 /* bytes of a NACK's error_detail.message, as Envoy cuts it */

typedef enum ads_mode {
    ADS_SOTW,  /* state of the world: every response of a type is that type's whole answer */
    ADS_DELTA, /* incremental: responses add, update and remove resources by name */
} ads_mode_t;

/* Checks one decoded resource (msg borrowed for the call) beyond the field rules the client
 * applies itself (config_validate, which msg has passed when this is called): what only the
 * caller knows, e.g. a trial build. Returns 0 to
 * accept it, or negative with err (errlen bytes) saying what is wrong; the client names the
 * resource around it. */
typedef int (*ads_validate_fn)(void *ctx, const char *type_url, const ProtobufCMessage *msg,
                               char *err, size_t errlen);

typedef struct ads_opts {
    ads_mode_t mode;
    /* ApiConfigSource.set_node_on_first_message_only: the node goes in the first request of each
     * stream only, instead of in every request. */
    bool node_on_first_message_only;
    ads_validate_fn validate; /* NULL: the field rules alone */
    void *validate_ctx;       /* borrowed; passed to validate */
} ads_opts_t;

typedef struct ads ads_t;

/* A list of names, each owned by the list. */
typedef struct ads_names {
    char **v;
    size_t n, cap;
} ads_names_t;

typedef enum ads_verdict {
    ADS_IGNORED, /* a type not subscribed: nothing changed, no request owed */
    ADS_ACKED,   /* every resource was accepted (or ignored): an ACK is owed */
    ADS_NACKED,  /* some were rejected, the valid ones applied: a NACK is owed */
} ads_verdict_t;

/* What one response did. */
typedef struct ads_result {
    const char *type_url; /* the response's type (static), or NULL for a type the client lacks */
    ads_verdict_t verdict;
    ads_names_t added;    /* resources new to the set */
    ads_names_t updated;  /* resources whose message changed */
    ads_names_t removed;  /* resources that left the set */
    ads_names_t rejected; /* resources rejected by name (kept at their last good message) */
    char *error;          /* the NACK's error_detail.message (owned), or NULL */
} ads_result_t;

/* One resource as /config_dump shows it. Pointers are borrowed from the client and valid until
 * its next call that changes state (ads_on_response, ads_subscribe, ads_reconnected, ads_free). */
typedef struct ads_resource_info {
    const char *type_url; /* static */
    const char *name;
    const ProtobufCMessage *msg; /* the last good message, or NULL (none yet, or removed) */
    const char *version;         /* the version that last delivered msg, or NULL */
    uint64_t updated_ms;         /* when msg last changed (the caller's clock), or 0 */
    const char *error;           /* why its last version was rejected, or NULL */
    const char *error_version;   /* the version of the response that was rejected, or NULL */
    uint64_t error_ms;           /* when, or 0 */
} ads_resource_info_t;

/* A type's subscription and the protocol's state for it; pointers as in ads_resource_info_t. */
typedef struct ads_type_status {
    bool subscribed;          /* ads_subscribe was called for the type */
    bool wildcard;            /* every resource of the type (listeners and clusters) */
    size_t names;             /* names subscribed explicitly */
    size_t resources;         /* resources held (a good message each) */
    const char *version_info; /* last ACKed: SotW version_info, delta system_version_info */
    const char *nonce;        /* of the last response on this stream ("" none) */
    const char *last_error;   /* the last NACK's message, or NULL since an ACK */
} ads_type_status_t;

/* A new client with nothing subscribed. node (borrowed; NULL: no node) is copied in. opts
 * borrowed. Returns NULL when out of memory. Free with ads_free. */
ads_t *ads_new(const struct Envoy__Config__Core__V3__Node *node, const ads_opts_t *opts);

/* Frees a (taken; NULL is fine) and every message it holds. */
void ads_free(ads_t *a);

/* The mode a (borrowed) speaks, and its gRPC method (a static string). */
ads_mode_t ads_mode(const ads_t *a);
const char *ads_method(const ads_t *a);

/* Replaces the names subscribed for type_url with names[0..n) (each borrowed, copied; duplicates
 * count once). Listeners and clusters are wildcard types: subscribing them at all subscribes to
 * every resource, and names add to that. Route configurations, endpoints and secrets are named:
 * only the names given are asked for, and the resources of names left out leave the set at once.
 * Marks a request owed when the subscription changed. Returns how many resources left the set or
 * came back to it (0 or more: a resource unsubscribed and subscribed again before the request
 * that dropped it went comes back, as the server still believes the client holds it), or -EINVAL
 * (a type the client lacks, an empty name, "*", a name over ADS_NAME_MAX) or -ENOMEM, with
 * nothing changed. */
int ads_subscribe(ads_t *a, const char *type_url, const char *const *names, size_t n);

/* Packs the next request owed, if any, into *buf (new, owned by the caller: free()) and *len.
 * Types go in the order Envoy subscribes them (clusters, endpoints, listeners, routes, secrets).
 * Returns 1 with a request, 0 when none is owed (*buf NULL), or -ENOMEM. Call until 0 after
 * every ads_subscribe, ads_on_response and ads_reconnected. */
int ads_next_request(ads_t *a, uint8_t **buf, size_t *len);

/* Takes in one response (buf borrowed, len bytes: a DiscoveryResponse in SotW mode, a
 * DeltaDiscoveryResponse in delta mode) at now_ms (the caller's clock, for /config_dump): takes a
 * resource whose bytes are those the held one came from as it is, decodes every other one,
 * checks it alone (type URL, decoding, name, the field rules, the caller's validate), applies the
 * valid ones and rejects the others, then owes an ACK or a NACK. out
 * (the caller's; filled, free with ads_result_free) says what changed. Returns 0; -EBADMSG when
 * the response itself does not decode (err says why; nothing changed): the caller ends the
 * stream; or -ENOMEM, after which the resources applied so far stay (each resource's state is
 * whole) and the caller ends the stream too, so the next one brings the rest. On error out is
 * empty. */
int ads_on_response(ads_t *a, const uint8_t *buf, size_t len, uint64_t now_ms, ads_result_t *out,
                    char *err, size_t errlen);

/* Frees what out (the caller's) holds and empties it. */
void ads_result_free(ads_result_t *out);

/* Whether out (borrowed) changed the resource set: added, updated or removed something. */
bool ads_result_changed(const ads_result_t *out);

/* A new stream replaces the old one: nonces and owed ACKs are forgotten, and every subscribed
 * type owes its first request again, carrying what the client holds (SotW: the last ACKed
 * version_info and no nonce; delta: initial_resource_versions). The node goes in the stream's
 * first request. */
void ads_reconnected(ads_t *a);

/* Appends the good messages a holds to res's lists (res the caller's; its lists grow; the
 * messages and names are borrowed from a, valid until a's next call that changes state):
 * listeners, clusters, route_configs, endpoints and secrets, each sorted by name and named
 * "lds['<name>']", "cds[...]", "rds[...]", "eds[...]", "sds[...]" in errors. Returns 0 or
 * -ENOMEM (res then holds part of them: free it with config_resources_free). */
int ads_resources(const ads_t *a, config_resources_t *res);

/* The resources of type_url a knows of, sorted by name, for /config_dump: held, rejected, or
 * subscribed and not received yet. *out is new (free() it; its pointers are borrowed as
 * ads_resource_info_t says), *n its length. Returns 0, -EINVAL for a type the client lacks, or
 * -ENOMEM. */
int ads_dump(const ads_t *a, const char *type_url, ads_resource_info_t **out, size_t *n);

/* Fills *out (the caller's) with what a knows of resource `name` of type_url (both borrowed).
 * Returns 0, or -ENOENT when a knows nothing of it (-EINVAL: a type the client lacks). */
int ads_find(const ads_t *a, const char *type_url, const char *name, ads_resource_info_t *out);

/* Fills *out (the caller's) with the state of type_url. Returns 0 or -EINVAL. */
int ads_type_status(const ads_t *a, const char *type_url, ads_type_status_t *out);

#endif
