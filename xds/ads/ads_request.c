/* The requests the client owes, packed from its state when they go rather than when they become
 * owed, so a request always says the newest: SotW DiscoveryRequests (the whole name set, the
 * last ACKed version, the last nonce, a NACK's error) and delta DeltaDiscoveryRequests (the
 * subscription's changes, one ACK or NACK per response, initial_resource_versions first). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xds/ads/ads_internal.h"

#include "envoy/config/core/v3/base.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "google/rpc/status.pb-c.h"

typedef Envoy__Service__Discovery__V3__DiscoveryRequest sotw_request_t;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryRequest delta_request_t;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryRequest__InitialResourceVersionsEntry
    version_entry_t;

#define GRPC_INVALID_ARGUMENT 3 /* the status code of a NACK's error_detail */

static int pack(const ProtobufCMessage *m, uint8_t **buf, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(n ? n : 1);
    if (b == NULL)
        return -ENOMEM;
    *len = protobuf_c_message_pack(m, b);
    *buf = b;
    return 0;
}

/* The node goes in every request, or only in the first of a stream when the config says so. */
static Envoy__Config__Core__V3__Node *request_node(const ads_t *a)
{
    if (a->opts.node_on_first_message_only && a->stream_started)
        return NULL;
    return (Envoy__Config__Core__V3__Node *)a->node;
}

static void request_sent(ads_t *a, ads_type_state_t *ts)
{
    ts->sent_on_stream = true;
    a->stream_started = true;
}

/* After a request of type t is packed (v: its n entries): the server knows of every name
 * subscribed, and of none unsubscribed, whose messages go now. */
static void names_sent(ads_t *a, ads_type_t t, ads_entry_t *const *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ads_entry_t *e = v[i];
        if (e->subscribed) {
            e->sent = true;
        } else if (e->sent) {
            e->sent = false;
            if (!ads_types[t].wildcard)
                ads_entry_drop_msg(e);
            ads_table_release(&a->types[t].table, e);
        }
    }
}

/* A named type never asked for anything on this stream has nothing to say: an empty name list
 * in a type's first request would read as a wildcard subscription. */
static bool nothing_to_ask(ads_type_t t, const ads_type_state_t *ts)
{
    return !ads_types[t].wildcard && ts->names == 0 && !ts->sent_on_stream;
}

void ads_names_wire_drop(ads_type_state_t *ts)
{
    free(ts->names_wire);
    ts->names_wire = NULL;
    ts->names_wire_len = 0;
}

/* Appends name (borrowed) to w at *k as a resource_names field (3, length-delimited). */
static void put_name(uint8_t *w, size_t *k, const char *name)
{
    size_t len = strlen(name), l = len;
    w[(*k)++] = 3 << 3 | 2;
    for (; l > 0x7f; l >>= 7) /* the length as a varint */
        w[(*k)++] = (uint8_t)(l & 0x7f) | 0x80;
    w[(*k)++] = (uint8_t)l;
    memcpy(w + *k, name, len);
    *k += len;
}

/* The names of t (ts's; v its sorted view of n entries) to subscribe, as DiscoveryRequest's
 * resource_names on the wire, into ts->names_wire. Returns 0 or -ENOMEM. */
static int names_wire_make(ads_type_t t, ads_type_state_t *ts, ads_entry_t *const *v, size_t n)
{
    /* A wildcard type asks for everything with no names at all, as every server understands;
     * with names besides, "*" says the wildcard stays. */
    bool star = ads_types[t].wildcard && ts->names;
    size_t cap = star ? 3 : 0, k = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i]->subscribed)
            cap += 1 + 3 + strlen(v[i]->name); /* names are at most ADS_NAME_MAX bytes */
    uint8_t *w = malloc(cap ? cap : 1);
    if (w == NULL)
        return -ENOMEM;
    if (star)
        put_name(w, &k, "*");
    for (size_t i = 0; i < n; i++)
        if (v[i]->subscribed)
            put_name(w, &k, v[i]->name);
    ts->names_wire = w;
    ts->names_wire_len = k;
    return 0;
}

int ads_pack_sotw(ads_t *a, ads_type_t t, uint8_t **buf, size_t *len)
{
    ads_type_state_t *ts = &a->types[t];
    if (nothing_to_ask(t, ts)) {
        ts->due = false;
        return 0;
    }
    /* The names as they went last, unless they changed since (or none went on this stream):
     * then every entry is walked, to encode the names and to mark what the server is told. */
    bool walk = ts->names_wire == NULL;
    size_t n = 0;
    ads_entry_t *const *v = NULL;
    if (walk) {
        bool oom;
        v = ads_table_sorted(&ts->table, &n, &oom);
        if (oom || names_wire_make(t, ts, v, n) < 0)
            return -ENOMEM;
    }
    /* Packed in the order of the fields' numbers, as protobuf-c packs a whole message: the
     * fields before resource_names (3), the names, the fields after. */
    sotw_request_t head = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
    sotw_request_t tail = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
    Google__Rpc__Status status = GOOGLE__RPC__STATUS__INIT;
    head.version_info = ts->version_info;
    head.node = request_node(a);
    tail.type_url = (char *)ads_types[t].url;
    tail.response_nonce = ts->nonce;
    if (ts->nack) {
        status.code = GRPC_INVALID_ARGUMENT;
        status.message = ts->nack;
        tail.error_detail = &status;
    }
    size_t nh = protobuf_c_message_get_packed_size(&head.base);
    size_t nt = protobuf_c_message_get_packed_size(&tail.base);
    uint8_t *b = malloc(nh + ts->names_wire_len + nt);
    if (b == NULL) {
        ads_names_wire_drop(ts); /* and the walk again next time */
        return -ENOMEM;
    }
    protobuf_c_message_pack(&head.base, b);
    memcpy(b + nh, ts->names_wire, ts->names_wire_len);
    protobuf_c_message_pack(&tail.base, b + nh + ts->names_wire_len);
    *buf = b;
    *len = nh + ts->names_wire_len + nt;
    if (walk)
        names_sent(a, t, v, n);
    free(ts->nack);
    ts->nack = NULL;
    ts->due = false;
    request_sent(a, ts);
    return 1;
}

int ads_ack_push(ads_type_state_t *ts, const char *nonce, const char *error)
{
    ads_ack_t ack = {.nonce = strdup(nonce), .error = ads_strdup(error)};
    if (ack.nonce == NULL || (error && ack.error == NULL)) {
        free(ack.nonce);
        free(ack.error);
        return -ENOMEM;
    }
    if (ts->nacks == ADS_ACKS_MAX) { /* the caller is not sending: answer the newest */
        free(ts->acks[0].nonce);
        free(ts->acks[0].error);
        memmove(&ts->acks[0], &ts->acks[1], (ADS_ACKS_MAX - 1) * sizeof(ts->acks[0]));
        ts->nacks--;
    }
    ts->acks[ts->nacks++] = ack;
    ts->due = true;
    return 0;
}

static void ack_pop(ads_type_state_t *ts)
{
    free(ts->acks[0].nonce);
    free(ts->acks[0].error);
    memmove(&ts->acks[0], &ts->acks[1], (ts->nacks - 1) * sizeof(ts->acks[0]));
    ts->nacks--;
}

void ads_acks_clear(ads_type_state_t *ts)
{
    while (ts->nacks)
        ack_pop(ts);
}

/* The arrays of one delta request; the strings are borrowed from the client's state. */
typedef struct delta_lists {
    char **sub, **unsub;
    size_t nsub, nunsub;
    version_entry_t *versions;
    version_entry_t **pversions;
    size_t nversions;
    bool star; /* "*" leads sub */
} delta_lists_t;

static void delta_lists_free(delta_lists_t *d)
{
    free(d->sub);
    free(d->unsub);
    free(d->versions);
    free(d->pversions);
}

/* What a request says of the subscription: on the stream's first request of the type every name
 * and every version held, after that what changed since. v (n entries) is the type's table. */
static int delta_lists_fill(ads_type_t t, const ads_type_state_t *ts, ads_entry_t *const *v,
                            size_t n, delta_lists_t *d)
{
    bool first = !ts->sent_on_stream, wildcard = ads_types[t].wildcard;
    d->sub = malloc((n + 1) * sizeof(*d->sub));
    d->unsub = malloc((n + 1) * sizeof(*d->unsub));
    d->versions = malloc((n + 1) * sizeof(*d->versions));
    d->pversions = malloc((n + 1) * sizeof(*d->pversions));
    if (d->sub == NULL || d->unsub == NULL || d->versions == NULL || d->pversions == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        ads_entry_t *e = v[i];
        if (e->subscribed && (first || !e->sent))
            d->sub[d->nsub++] = e->name;
        else if (!e->subscribed && e->sent)
            d->unsub[d->nunsub++] = e->name;
        if (first && e->msg && (wildcard || e->subscribed)) {
            version_entry_t *ve = &d->versions[d->nversions];
            *ve = (version_entry_t)
                ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INITIAL_RESOURCE_VERSIONS_ENTRY__INIT;
            ve->key = e->name;
            ve->value = e->version ? e->version : (char *)"";
            d->pversions[d->nversions++] = ve;
        }
    }
    /* A wildcard type subscribes with no names at first (the legacy form every server knows);
     * once it names resources too, "*" keeps the wildcard, said once per stream. */
    if (wildcard && d->nsub && !ts->star_sent) {
        memmove(d->sub + 1, d->sub, d->nsub * sizeof(*d->sub));
        d->sub[0] = (char *)"*";
        d->nsub++;
        d->star = true;
    }
    return 0;
}

int ads_pack_delta(ads_t *a, ads_type_t t, uint8_t **buf, size_t *len)
{
    ads_type_state_t *ts = &a->types[t];
    if (nothing_to_ask(t, ts) && ts->nacks == 0) {
        ts->due = false;
        return 0;
    }
    size_t n;
    bool oom;
    ads_entry_t *const *v = ads_table_sorted(&ts->table, &n, &oom);
    delta_lists_t d = {0};
    int rc = oom ? -ENOMEM : delta_lists_fill(t, ts, v, n, &d);
    if (rc == 0 && ts->sent_on_stream && d.nsub == 0 && d.nunsub == 0 && ts->nacks == 0) {
        ts->due = false; /* the subscription changed and changed back */
        delta_lists_free(&d);
        return 0;
    }
    delta_request_t req = ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INIT;
    Google__Rpc__Status status = GOOGLE__RPC__STATUS__INIT;
    req.node = request_node(a);
    req.type_url = (char *)ads_types[t].url;
    req.n_resource_names_subscribe = d.nsub;
    req.resource_names_subscribe = d.sub;
    req.n_resource_names_unsubscribe = d.nunsub;
    req.resource_names_unsubscribe = d.unsub;
    req.n_initial_resource_versions = d.nversions;
    req.initial_resource_versions = d.pversions;
    if (ts->nacks) {
        req.response_nonce = ts->acks[0].nonce;
        if (ts->acks[0].error) {
            status.code = GRPC_INVALID_ARGUMENT;
            status.message = ts->acks[0].error;
            req.error_detail = &status;
        }
    }
    if (rc == 0)
        rc = pack(&req.base, buf, len);
    if (rc == 0) {
        names_sent(a, t, v, n);
        ts->star_sent = ts->star_sent || d.star;
        if (ts->nacks)
            ack_pop(ts);
        ts->due = ts->nacks > 0;
        request_sent(a, ts);
    }
    delta_lists_free(&d);
    return rc < 0 ? rc : 1;
}
