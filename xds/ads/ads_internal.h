/* What the files of xds/ads/ share and nothing else includes: the client's state, per type and
 * per resource name, and the table of names. */
#ifndef REMORA_XDS_ADS_INTERNAL_H
#define REMORA_XDS_ADS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xds/ads/ads.h"

/* The types in the order their first requests go (Envoy's order of subscription: clusters, then
 * the endpoints they name; listeners, then the routes they name; secrets last). */
typedef enum ads_type {
    ADS_CDS,
    ADS_EDS,
    ADS_LDS,
    ADS_RDS,
    ADS_SDS,
    ADS_NTYPES,
} ads_type_t;

typedef struct ads_type_info {
    const char *url;                        /* ADS_TYPE_* */
    const char *short_name;                 /* "cds": the origin of its resources in errors */
    const ProtobufCMessageDescriptor *desc; /* the resource's message */
    const char *name_field;                 /* the field holding the resource's name */
    bool wildcard;                          /* a wildcard type: responses are the full set */
} ads_type_info_t;

extern const ads_type_info_t ads_types[ADS_NTYPES];

/* One resource name of one type: subscribed, held, rejected, or several of those. */
typedef struct ads_entry {
    struct ads_entry *next; /* in its hash chain */
    uint64_t hash;          /* of name */
    char *name;             /* owned */
    /* The last good message (borrowed from kept), or NULL. kept holds it (a reference): the
     * resource set hands it to the build, whose snapshot keeps it by reference in turn. */
    ProtobufCMessage *msg;
    snap_kept_t *kept;
    char *version;       /* the version that last delivered msg (an ads_version_ref), or NULL */
    uint64_t updated_ms; /* when msg last changed */
    /* The bytes msg was decoded from, as received (owned; NULL when msg is): a resend with the
     * same bytes is the same message, taken without decoding it again. */
    uint8_t *raw;
    size_t raw_len;
    char *error;         /* the last rejection (owned), or NULL */
    char *error_version; /* the rejected response's version (owned), or NULL */
    uint64_t error_ms;
    bool subscribed; /* named by ads_subscribe */
    bool sent;       /* the server was told of the subscription on this stream */
    bool seen;       /* scratch while a response or a subscription is applied */
} ads_entry_t;

/* The entries sorted by name, kept until an entry comes or goes: requests, the resource set and
 * /config_dump list the table in name order several times per response, and most responses
 * change what entries hold, not which entries there are. */
typedef struct ads_view {
    ads_entry_t **v; /* owned array of borrowed entries */
    size_t n, cap;
    bool stale; /* an entry came or went since v was sorted */
} ads_view_t;

/* Entries by name: chained hashing, grown to keep chains short. */
typedef struct ads_table {
    ads_entry_t **buckets;
    size_t nbuckets, n;
    /* The sorted view (owned; made with the buckets). The table's readers, which hold it
     * const, refresh it: it is a cache, not part of what the table says. */
    ads_view_t *view;
} ads_table_t;

/* A delta ACK or NACK not yet sent: every delta response is answered on its own. */
typedef struct ads_ack {
    char *nonce; /* owned */
    char *error; /* owned; NULL: an ACK */
} ads_ack_t;

#define ADS_ACKS_MAX 64 /* delta answers kept unsent; past that the oldest is dropped */

typedef struct ads_type_state {
    bool subscribed;
    ads_table_t table;
    size_t names;                 /* entries with subscribed set */
    char *version_info;           /* last ACKed (owned; never NULL) */
    char *nonce;                  /* the last response's on this stream (owned; never NULL) */
    char *last_error;             /* the last NACK's message (owned), NULL since an ACK */
    bool due;                     /* a request is owed */
    bool sent_on_stream;          /* a request of this type went on this stream */
    char *nack;                   /* SotW: the error_detail of the request owed (owned), or NULL */
    bool star_sent;               /* delta: "*" was subscribed explicitly on this stream */
    ads_ack_t acks[ADS_ACKS_MAX]; /* delta: the answers owed, oldest first */
    size_t nacks;
    /* SotW: the resource_names of the last request as they went on the wire (owned; each
     * name's tag, length and bytes), kept while the names subscribed and sent stay as they were:
     * the next request copies them instead of walking every entry and encoding every name (an
     * ACK at 1,000 assignments names all 1,000). NULL: none kept (ads_names_wire_drop). */
    uint8_t *names_wire;
    size_t names_wire_len;
} ads_type_state_t;

struct ads {
    ads_opts_t opts;
    ProtobufCMessage *node; /* owned copy, or NULL */
    bool stream_started;    /* a request went on this stream */
    ads_type_state_t types[ADS_NTYPES];
};

/* ads_request.c: forgets ts's names_wire, when its names or what was sent of them change. */
void ads_names_wire_drop(ads_type_state_t *ts);

/* ads.c */
int ads_type_index(const char *type_url);            /* ADS_CDS.., or -1 */
int ads_names_add(ads_names_t *l, const char *name); /* copies name; 0 or -ENOMEM */
void ads_names_free(ads_names_t *l);
char *ads_strdup(const char *s);         /* NULL stays NULL */
void ads_entry_drop_msg(ads_entry_t *e); /* frees msg, its bytes and its version */
/* Version strings shared by the entries one response delivers (every resource of a SotW
 * response takes its version_info): a new reference-counted copy of text (borrowed), NULL when
 * out of memory; another reference to v; dropping one (NULL: nothing). Main thread only. */
char *ads_version_new(const char *text);
char *ads_version_ref(char *v);
void ads_version_unref(char *v);

/* ads_table.c */
uint64_t ads_hash(const void *data, size_t len);
ads_entry_t *ads_table_find(const ads_table_t *t, const char *name);
/* The same for a name of len bytes, not NUL-terminated (name borrowed). */
ads_entry_t *ads_table_find_n(const ads_table_t *t, const char *name, size_t len);
/* Finds or makes the entry of name (borrowed, copied); NULL when out of memory. */
ads_entry_t *ads_table_get(ads_table_t *t, const char *name);
/* Unlinks and frees e (the table's). */
void ads_table_remove(ads_table_t *t, ads_entry_t *e);
/* Frees every entry. */
void ads_table_clear(ads_table_t *t);
/* The entries, sorted by name: an array of *n borrowed from the table, valid until an entry is
 * added or removed (an entry removed while the caller walks the array is one it has passed or
 * is at). NULL with *n 0 when empty or when out of memory (*oom set then). Sorts only when an
 * entry came or went since the last call. */
ads_entry_t *const *ads_table_sorted(const ads_table_t *t, size_t *n, bool *oom);
/* Calls fn on every entry; fn may remove the entry it is given. */
void ads_table_each(ads_table_t *t, void (*fn)(ads_table_t *t, ads_entry_t *e, void *ctx),
                    void *ctx);
/* Drops e when nothing keeps it: not subscribed, no message, no error, no unsubscription owed. */
void ads_table_release(ads_table_t *t, ads_entry_t *e);

/* ads_wire.c: protobuf's wire format, read in place. */
/* The name a message's bytes (borrowed) give it, without decoding it: the last occurrence of the
 * length-delimited field `id` at the top level (the last wins, as in decoding); *name points
 * into buf. False when the bytes do not parse that far or the field is absent. */
bool ads_wire_name(const uint8_t *buf, size_t len, uint32_t id, const char **name, size_t *nlen);

/* One Any of a SotW response as slices of the response's bytes (NULL, 0: the field is absent). */
typedef struct ads_wire_any {
    const uint8_t *type_url;
    size_t type_len;
    const uint8_t *value;
    size_t value_len;
} ads_wire_any_t;

/* Splits a DiscoveryResponse's bytes (borrowed): its resources, each an Any of a type_url and a
 * value and nothing else, as slices of buf into *anys (new array of *n; NULL when none), and
 * every other field, copied as it is, into *rest (new, *rest_len bytes) for protobuf-c to decode.
 * Returns 0; -EAGAIN when the bytes hold anything the split does not read as protobuf-c would
 * (the caller decodes them whole, and protobuf-c judges them); -ENOMEM. */
int ads_wire_split_sotw(const uint8_t *buf, size_t len, ads_wire_any_t **anys, size_t *n,
                        uint8_t **rest, size_t *rest_len);

/* ads_request.c */
int ads_pack_sotw(ads_t *a, ads_type_t t, uint8_t **buf, size_t *len);
/* Returns 1 with a request, 0 when the type had nothing to say, or -ENOMEM. */
int ads_pack_delta(ads_t *a, ads_type_t t, uint8_t **buf, size_t *len);
/* Queues a delta answer to the response of nonce (borrowed, copied), a NACK when error
 * (borrowed, copied) is set. Returns 0 or -ENOMEM. */
int ads_ack_push(ads_type_state_t *ts, const char *nonce, const char *error);
void ads_acks_clear(ads_type_state_t *ts);

/* ads_response.c: the two modes' responses. */
int ads_on_sotw(ads_t *a, const uint8_t *buf, size_t len, uint64_t now_ms, ads_result_t *out,
                char *err, size_t errlen);
int ads_on_delta(ads_t *a, const uint8_t *buf, size_t len, uint64_t now_ms, ads_result_t *out,
                 char *err, size_t errlen);

#endif
