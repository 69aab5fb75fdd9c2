/* What the files of xds/server/ share and nothing else includes: the resource, the view and the
 * stream's state per type and per name. */
#ifndef REMORA_XDS_SERVER_ADS_SERVER_INTERNAL_H
#define REMORA_XDS_SERVER_ADS_SERVER_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xds/server/ads_server.h"

struct ads_srv_resource {
    atomic_uint refs;
    ads_srv_type_t type;
    uint64_t hash;      /* FNV-1a of the message bytes: what "changed" means */
    uint64_t name_hash; /* FNV-1a of the name */
    char version[17];   /* hash in hex: the resource's version in delta */
    char *name;         /* in the same block */
    /* The encoded Any (type_url, value) every response carries as it is; value points into it. */
    uint8_t *any;
    size_t any_len;
    const uint8_t *value;
    size_t value_len;
};

/* Per name a stream knows of, for one type: subscribed, sent, or both. A stream of a sidecar
 * has one per cluster name of the mesh, so it is kept small: the flags are bits and the name
 * follows them directly (ADS_SRV_ENTRY_SIZE). */
typedef struct ads_srv_entry {
    struct ads_srv_entry *next; /* in its hash chain */
    uint64_t name_hash;
    uint64_t sent_hash;   /* content hash of what the client holds (0: unknown version) */
    bool subscribed : 1;  /* named explicitly by the client */
    bool sent : 1;        /* the client holds a version of it (delta; SotW named types) */
    bool tell_absent : 1; /* delta: subscribed and not answered yet (removed when absent) */
    bool pending : 1;     /* in the type's pending list */
    char name[];          /* in the same block */
} ads_srv_entry_t;

#define ADS_SRV_ENTRY_SIZE(name_len) (offsetof(ads_srv_entry_t, name) + (name_len) + 1)

typedef struct ads_srv_table {
    ads_srv_entry_t **buckets;
    size_t nbuckets, n;
} ads_srv_table_t;

typedef struct ads_srv_tstate {
    bool requested;     /* a request of the type came on this stream */
    bool explicit_seen; /* a request named resources (so an empty list is no wildcard) */
    bool wildcard;
    size_t names; /* entries subscribed */
    ads_srv_table_t table;
    /* What is owed: `full` rescans everything the stream may see; otherwise only the entries
     * in pending (names a view change touched) are looked at. */
    bool full;
    ads_srv_entry_t **pending;
    size_t npending, cappending;
    bool answered;         /* a response of the type went on this stream */
    uint64_t sent_set;     /* SotW: hash of the set the last response carried */
    uint64_t held;         /* the sum of ads_srv_mix over the entries sent: the type's version */
    char *initial_version; /* SotW: version_info of the type's first request (reconnect) */
    char version_sent[17];
    char nonce[24];
    char *version_acked; /* owned, never NULL */
    char *last_error;    /* owned, or NULL */
    int last_error_code;
    bool nacked; /* the newest response was NACKed */
    bool acked;  /* the newest response was ACKed */
    /* SotW: a hash of the resource_names fields of the last request as they came on the wire,
     * and how many there were: an ACK that repeats them changes no subscription. */
    bool names_known;
    uint64_t names_wire_hash;
    size_t names_wire_count;
} ads_srv_tstate_t;

/* A stream's place on the list of the streams that use a view for one type. */
typedef struct ads_srv_link {
    struct ads_srv_stream *prev, *next;
} ads_srv_link_t;

struct ads_srv_stream {
    ads_srv_stream_opts_t opts;
    ads_srv_view_t *views[ADS_SRV_NTYPES]; /* per type: the view it is served from */
    ads_srv_link_t links[ADS_SRV_NTYPES];  /* on that view's list of the type */
    ProtobufCMessage *first;               /* the first request, for its node (owned) */
    const struct Envoy__Config__Core__V3__Node *node;
    uint64_t nonce_seq;
    ads_srv_tstate_t types[ADS_SRV_NTYPES];
    ads_srv_counters_t counters;
    ads_srv_response_info_t last;
    bool have_last;
    bool wake; /* a view change made it owe: its hook is due */
    char last_nonce[24];
    char last_version[17];
    ads_srv_resource_t **last_res; /* references, released at the next response */
    size_t nlast_res;
};

struct ads_srv_view {
    atomic_uint refs;
    uint64_t generation;
    ads_srv_resource_t **res[ADS_SRV_NTYPES]; /* references, sorted by name */
    size_t n[ADS_SRV_NTYPES];
    ads_srv_stream_t *streams[ADS_SRV_NTYPES]; /* per type: the streams served it from here */
};

/* ads_server_resource.c */
uint64_t ads_srv_fnv(const void *data, size_t len, uint64_t h);
#define ADS_SRV_FNV_INIT 0xcbf29ce484222325ULL
void ads_srv_hex(uint64_t h, char out[17]);
/* The resource of type t named name (len bytes) in v, or NULL: binary search. */
ads_srv_resource_t *ads_srv_view_lookup(const ads_srv_view_t *v, ads_srv_type_t t,
                                        const char *name);
void ads_srv_view_attach(ads_srv_view_t *v, ads_srv_type_t t, ads_srv_stream_t *s);
void ads_srv_view_detach(ads_srv_view_t *v, ads_srv_type_t t, ads_srv_stream_t *s);

/* ads_server_table.c */
ads_srv_entry_t *ads_srv_table_find(const ads_srv_table_t *t, const char *name);
/* Finds or makes the entry of name (borrowed, copied); NULL when out of memory. */
ads_srv_entry_t *ads_srv_table_get(ads_srv_table_t *t, const char *name);
/* Frees the entries nothing keeps (not subscribed, not sent, not pending). */
void ads_srv_table_sweep(ads_srv_table_t *t);
void ads_srv_table_clear(ads_srv_table_t *t);
/* Marks e pending in ts; -ENOMEM. */
int ads_srv_pending_add(ads_srv_tstate_t *ts, ads_srv_entry_t *e);
void ads_srv_pending_clear(ads_srv_tstate_t *ts);
/* A hash of one (name, content) pair; summed over a set, a version that does not depend on the
 * order of the set: the same resources make the same version on every stream and across
 * restarts of the server. */
uint64_t ads_srv_mix(uint64_t name_hash, uint64_t hash);
/* Sets what the client holds of e (sent, with content hash), keeping ts->held in step. */
void ads_srv_entry_hold(ads_srv_tstate_t *ts, ads_srv_entry_t *e, bool sent, uint64_t hash);

/* ads_server_stream.c */
/* A change of view v touched (type t, name): marks the stream owing when it matters to it. */
void ads_srv_stream_touch(ads_srv_stream_t *s, ads_srv_type_t t, const ads_srv_resource_t *r,
                          const char *name);
/* Calls the owed hook of s when a touch made it owe where it owed nothing before. */
void ads_srv_stream_notify(ads_srv_stream_t *s);
void ads_srv_count(ads_srv_stream_t *s, size_t field_offset, size_t n);
/* Drops the references the last response's info holds. */
void ads_srv_release_last(ads_srv_stream_t *s);
#define ADS_SRV_COUNT(s, field, n) ads_srv_count((s), offsetof(ads_srv_counters_t, field), (n))

/* ads_server_wire.c */
/* What a DiscoveryRequest carries, read from the wire without decoding it. */
typedef struct ads_srv_wire_scan {
    uint64_t names_hash;  /* of the resource_names fields, in their order */
    size_t names;         /* how many */
    size_t names_bytes;   /* bytes they take, tags and lengths included */
    const char *type_url; /* borrowed from the request, not terminated; NULL: none */
    size_t type_url_len;
} ads_srv_wire_scan_t;
/* Fills *out from buf[0..len) (borrowed; out->type_url points into it). Returns 0, or -EBADMSG
 * when the top-level fields do not parse (the decoder then says why). */
int ads_srv_wire_scan(const uint8_t *buf, size_t len, ads_srv_wire_scan_t *out);
/* Writes buf[0..len), which a scan accepted, without its resource_names fields into out (the
 * caller's, len - names_bytes bytes at least). Returns the bytes written. */
size_t ads_srv_wire_strip_names(const uint8_t *buf, size_t len, uint8_t *out);

/* ads_server_response.c */
int ads_srv_build(ads_srv_stream_t *s, ads_srv_type_t t, uint8_t **buf, size_t *len);

#endif
