/* The serving half of ADS: the control plane's protocol state machine, state of the world
 * (StreamAggregatedResources) and delta (DeltaAggregatedResources), transport-free like the
 * client's (xds/ads). Resources are encoded once and shared by reference; views group what a set
 * of sidecars may see; a stream takes request bytes and hands out the next response owed,
 * already encoded, when the transport can take it. No sockets, timers or threads: the caller
 * drives it from one thread (docs/xds-server.md). */
#ifndef REMORA_XDS_SERVER_ADS_SERVER_H
#define REMORA_XDS_SERVER_ADS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

struct Envoy__Config__Core__V3__Node;

/* The resource types served, in the order responses go (make-before-break: a cluster before
 * its endpoints, both before the listeners whose routes name them, secrets last). */
typedef enum ads_srv_type {
    ADS_SRV_CDS,
    ADS_SRV_EDS,
    ADS_SRV_LDS,
    ADS_SRV_RDS,
    ADS_SRV_SDS,
    ADS_SRV_NTYPES,
} ads_srv_type_t;

#define ADS_SRV_NAME_MAX  4096   /* bytes of a resource name in a request or a resource */
#define ADS_SRV_NAMES_MAX 100000 /* names one stream may subscribe to per type */

typedef enum ads_srv_mode {
    ADS_SRV_SOTW,  /* DiscoveryRequest / DiscoveryResponse */
    ADS_SRV_DELTA, /* DeltaDiscoveryRequest / DeltaDiscoveryResponse */
} ads_srv_mode_t;

/* The type URL of t (static), or NULL for a type out of range. */
const char *ads_srv_type_url(ads_srv_type_t t);

/* The type of type_url (borrowed), or -1 for one the server does not serve. */
int ads_srv_type_of(const char *type_url);

/* The mode of a gRPC method path (borrowed; "/envoy.service.discovery.v3.Aggregated
 * DiscoveryService/StreamAggregatedResources" or ".../DeltaAggregatedResources"), or -1. */
int ads_srv_mode_of_method(const char *path);

/* ---- resources: encoded once, shared by reference ----------------------------------------- */

typedef struct ads_srv_resource ads_srv_resource_t;

/* A new resource (one reference, the caller's) of type t named `name` (borrowed, copied; 1 to
 * ADS_SRV_NAME_MAX bytes) whose encoded message is bytes[0..len) (borrowed, copied once into the
 * Any every response carries). Its version is its content hash, in hex. Returns NULL for a bad
 * type or name (errno EINVAL) or when out of memory (ENOMEM). */
ads_srv_resource_t *ads_srv_resource_new(ads_srv_type_t t, const char *name, const uint8_t *bytes,
                                         size_t len);

/* The same from a message (borrowed): its type from its descriptor (a Cluster,
 * ClusterLoadAssignment, Listener, RouteConfiguration or Secret), its name from its name field
 * (cluster_name for endpoints), packed once. NULL as above. */
ads_srv_resource_t *ads_srv_resource_from_message(const ProtobufCMessage *msg);

/* Takes one more reference to r (borrowed) and returns it. Thread-safe, as is unref. */
ads_srv_resource_t *ads_srv_resource_ref(ads_srv_resource_t *r);

/* Drops one reference to r (taken; NULL is fine); the last frees it. */
void ads_srv_resource_unref(ads_srv_resource_t *r);

/* What r (borrowed) is; the strings and bytes are borrowed from r and live as long as it. */
ads_srv_type_t ads_srv_resource_type(const ads_srv_resource_t *r);
const char *ads_srv_resource_name(const ads_srv_resource_t *r);
const char *ads_srv_resource_version(const ads_srv_resource_t *r); /* 16 hex digits */
uint64_t ads_srv_resource_hash(const ads_srv_resource_t *r);       /* of the message bytes */
const uint8_t *ads_srv_resource_bytes(const ads_srv_resource_t *r, size_t *len);

/* ---- views: what a group of sidecars may see ---------------------------------------------- */

typedef struct ads_srv_view ads_srv_view_t;

/* A new empty view (one reference, the caller's); NULL when out of memory. */
ads_srv_view_t *ads_srv_view_new(void);

/* Takes one more reference to v (borrowed) and returns it; drops one (v taken; NULL is fine).
 * A view is freed with its last reference; the streams on it hold one each. */
ads_srv_view_t *ads_srv_view_ref(ads_srv_view_t *v);
void ads_srv_view_unref(ads_srv_view_t *v);

/* Replaces, as one generation, the resources of v (borrowed): of every type when all_types is
 * true, else of the types that res[0..n) holds (each borrowed; the view takes its own reference).
 * Two resources of one type and name are -EINVAL, nothing changed; -ENOMEM likewise. Then every
 * stream served a replaced type from v whose subscriptions a change touches (a name added, removed,
 * or of another hash) owes a response for that type, and a stream that owed nothing before is told
 * through its owed hook, from inside this call (the hook must not free a stream or change a view).
 * A resource equal by content hash to the one it replaces counts as unchanged. Returns the number
 * of (type, name) pairs that changed (0 or more). */
int ads_srv_view_replace(ads_srv_view_t *v, ads_srv_resource_t *const *res, size_t n,
                         bool all_types);

/* The resource of type t named name (borrowed) in v, borrowed (valid until v's next replace), or
 * NULL. */
const ads_srv_resource_t *ads_srv_view_find(const ads_srv_view_t *v, ads_srv_type_t t,
                                            const char *name);

/* How many resources of type t v holds; the generation (replaces that changed something). */
size_t ads_srv_view_count(const ads_srv_view_t *v, ads_srv_type_t t);
uint64_t ads_srv_view_generation(const ads_srv_view_t *v);

/* ---- streams: one ADS call each ------------------------------------------------------------ */

typedef struct ads_srv_stream ads_srv_stream_t;

/* Counters, added to as things happen; every one only grows. */
typedef struct ads_srv_counters {
    uint64_t requests;                       /* requests taken (decoded and valid) */
    uint64_t requests_bad;                   /* refused: not decoding, or breaking the protocol */
    uint64_t requests_ignored;               /* a type not served, or a stale SotW nonce */
    uint64_t acks, nacks;                    /* answers to the newest response of a type */
    uint64_t stale_nonces;                   /* answers to an older response, ignored */
    uint64_t responses[ADS_SRV_NTYPES];      /* responses built, per type */
    uint64_t resources_sent[ADS_SRV_NTYPES]; /* resources in them, per type */
    uint64_t removed_sent[ADS_SRV_NTYPES];   /* delta removed_resources names, per type */
    uint64_t bytes_sent;                     /* bytes of responses built */
} ads_srv_counters_t;

typedef struct ads_srv_stream_opts {
    ads_srv_mode_t mode;
    /* Called when the stream goes from owing nothing to owing a response because its view
     * changed (not from the stream's own calls: after each of those the caller asks anyway).
     * NULL: the caller polls ads_srv_stream_owes. */
    void (*owed)(void *ctx, ads_srv_stream_t *s);
    void *ctx;                  /* borrowed; passed to owed */
    ads_srv_counters_t *totals; /* borrowed, may be NULL: counted into besides the stream's own */
} ads_srv_stream_opts_t;

/* A new stream, on no view yet (opts borrowed). NULL when out of memory. Free with
 * ads_srv_stream_free. */
ads_srv_stream_t *ads_srv_stream_new(const ads_srv_stream_opts_t *opts);

/* Frees s (taken; NULL is fine) and lets go of its view and resources. */
void ads_srv_stream_free(ads_srv_stream_t *s);

/* Takes one request (buf borrowed, len bytes: a DiscoveryRequest in SotW mode, a
 * DeltaDiscoveryRequest in delta mode): the node of the stream's first one, subscriptions, and
 * an ACK or NACK when it answers the newest response of its type. Returns 0 (also for a request
 * ignored: a type not served, a stale SotW nonce), -EBADMSG when it does not decode, -EPROTO when
 * it breaks the protocol (no node in the first request, another node id later, no type_url, a
 * name over ADS_SRV_NAME_MAX, more than ADS_SRV_NAMES_MAX names) or -ENOMEM; on error err
 * (errlen bytes, the caller's) says why, nothing changed, and the caller ends the stream
 * (INVALID_ARGUMENT). */
int ads_srv_stream_on_request(ads_srv_stream_t *s, const uint8_t *buf, size_t len, char *err,
                              size_t errlen);

/* The node of the stream's first request (borrowed from s, valid while s lives), or NULL before
 * it: its id, cluster and metadata say which view the stream gets. */
const struct Envoy__Config__Core__V3__Node *ads_srv_stream_node(const ads_srv_stream_t *s);

/* Serves type t of s from view v (borrowed; s takes a reference, and drops the one to the view
 * it served t from; NULL: none, t is then not served). A stream may be served each type from
 * another view, and a view may serve many streams some types only: a replace of v touches the
 * streams served from it the types it replaces, and nothing else. Type t owes what differs from
 * what was sent. Returns 0, or -EINVAL for a type out of range. */
int ads_srv_stream_set_type_view(ads_srv_stream_t *s, ads_srv_type_t t, ads_srv_view_t *v);

/* The same for every type: s is served everything from v (borrowed; NULL: none). */
void ads_srv_stream_set_view(ads_srv_stream_t *s, ads_srv_view_t *v);

/* The view s (borrowed) is served type t from (borrowed from s), or NULL. */
const ads_srv_view_t *ads_srv_stream_type_view(const ads_srv_stream_t *s, ads_srv_type_t t);

/* Whether s (borrowed) may owe a response: next_response can still find nothing to send (a
 * change that cancelled out). */
bool ads_srv_stream_owes(const ads_srv_stream_t *s);

/* Builds the next response owed, from each type's view as it is now, into *buf (new, the caller's:
 * free()) and *len; types in the order of ads_srv_type_t. SotW: listeners and clusters the
 * whole set asked for; endpoints, routes and secrets those that changed. Delta: what changed
 * and removed_resources. Returns 1 with a response, 0 when none is owed (or no view yet; *buf
 * NULL), or -ENOMEM. Call it whenever the transport can take a message, until 0. */
int ads_srv_stream_next_response(ads_srv_stream_t *s, uint8_t **buf, size_t *len);

/* What the last response held (borrowed from s, valid until its next next_response or free). */
typedef struct ads_srv_response_info {
    ads_srv_type_t type;
    const char *nonce;
    const char *version; /* SotW version_info, delta system_version_info */
    const ads_srv_resource_t *const *resources;
    size_t n_resources;
    size_t n_removed;
} ads_srv_response_info_t;

/* The last response built by s, or NULL before the first. */
const ads_srv_response_info_t *ads_srv_stream_last_response(const ads_srv_stream_t *s);

typedef enum ads_srv_sync {
    ADS_SRV_NOT_REQUESTED, /* the type was never requested on this stream */
    ADS_SRV_NOT_SENT,      /* requested, nothing sent yet */
    ADS_SRV_SYNCED,        /* the newest response was ACKed and nothing is owed */
    ADS_SRV_STALE,         /* a response is not answered yet, or one is owed */
    ADS_SRV_NACKED,        /* the newest response was NACKed */
} ads_srv_sync_t;

/* One type of one stream, as proxy-status shows it; strings borrowed from s, valid until its
 * next call that changes state. */
typedef struct ads_srv_type_status {
    ads_srv_sync_t sync;
    const char *version_sent;  /* of the newest response ("" none) */
    const char *nonce;         /* of the newest response ("" none) */
    const char *version_acked; /* the version the client last said it applied ("" none) */
    const char *last_error;    /* error_detail.message of the last NACK, or NULL */
    int last_error_code;       /* its error_detail.code */
    bool wildcard;             /* subscribed to every resource of the type */
    size_t names;              /* names subscribed explicitly */
} ads_srv_type_status_t;

/* Fills *out (the caller's) with the state of type t on s (borrowed). Returns 0 or -EINVAL. */
int ads_srv_stream_type_status(const ads_srv_stream_t *s, ads_srv_type_t t,
                               ads_srv_type_status_t *out);

/* The stream's own counters (borrowed from s). */
const ads_srv_counters_t *ads_srv_stream_counters(const ads_srv_stream_t *s);

/* The stream's mode. */
ads_srv_mode_t ads_srv_stream_mode(const ads_srv_stream_t *s);

#endif
