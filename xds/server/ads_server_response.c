/* The responses a stream owes, built when the transport can take one: what the view holds now
 * against what the client was sent, one type at a time. A response is written by hand around
 * each resource's stored Any (DiscoveryResponse.resources, or a delta Resource's resource
 * field), so no resource is encoded again per stream. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xds/server/ads_server_internal.h"

/* ---- protobuf written by hand: measured first (p NULL), then written ------------------------ */

typedef struct pbw {
    uint8_t *p;
    size_t n;
} pbw_t;

static void put_raw(pbw_t *w, const void *d, size_t len)
{
    if (w->p && len)
        memcpy(w->p + w->n, d, len);
    w->n += len;
}

static void put_varint(pbw_t *w, uint64_t v)
{
    uint8_t b[10];
    size_t n = 0;
    while (v >= 0x80) {
        b[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b[n++] = (uint8_t)v;
    put_raw(w, b, n);
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* A length-delimited field; proto3 leaves an empty string out, as protobuf-c does. */
static void put_bytes(pbw_t *w, unsigned field, const void *d, size_t len)
{
    put_varint(w, field << 3 | 2);
    put_varint(w, len);
    put_raw(w, d, len);
}

static void put_str(pbw_t *w, unsigned field, const char *s)
{
    if (s && *s)
        put_bytes(w, field, s, strlen(s));
}

static size_t field_len(size_t len)
{
    return 1 + varint_len(len) + len;
}

/* What one response carries: resources (borrowed from the view) and removed names (borrowed
 * from the stream's entries). */
typedef struct out {
    ads_srv_resource_t **res;
    size_t nres, capres;
    const char **removed;
    size_t nremoved, capremoved;
} out_t;

static int out_add(out_t *o, ads_srv_resource_t *r)
{
    if (o->nres == o->capres) {
        size_t cap = o->capres ? o->capres * 2 : 16;
        ads_srv_resource_t **v = realloc(o->res, cap * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        o->res = v;
        o->capres = cap;
    }
    o->res[o->nres++] = r;
    return 0;
}

static int out_remove(out_t *o, const char *name)
{
    if (o->nremoved == o->capremoved) {
        size_t cap = o->capremoved ? o->capremoved * 2 : 8;
        const char **v = realloc(o->removed, cap * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        o->removed = v;
        o->capremoved = cap;
    }
    o->removed[o->nremoved++] = name;
    return 0;
}

static void write_response(pbw_t *w, ads_srv_mode_t mode, ads_srv_type_t t, const out_t *o,
                           const char *version, const char *nonce)
{
    put_str(w, 1, version); /* version_info, system_version_info */
    for (size_t i = 0; i < o->nres; i++) {
        const ads_srv_resource_t *r = o->res[i];
        if (mode == ADS_SRV_SOTW) {
            put_bytes(w, 2, r->any, r->any_len);
            continue;
        }
        /* Resource { version = 1; resource = 2; name = 3 } */
        size_t name_len = strlen(r->name);
        put_varint(w, 2 << 3 | 2);
        put_varint(w, field_len(16) + field_len(r->any_len) + field_len(name_len));
        put_bytes(w, 1, r->version, 16);
        put_bytes(w, 2, r->any, r->any_len);
        put_bytes(w, 3, r->name, name_len);
    }
    put_str(w, 4, ads_srv_type_url(t));
    put_str(w, 5, nonce);
    for (size_t i = 0; i < o->nremoved; i++)
        put_bytes(w, 6, o->removed[i], strlen(o->removed[i])); /* removed_resources */
}

/* ---- what is owed --------------------------------------------------------------------------- */

static bool full_set(ads_srv_type_t t)
{
    return t == ADS_SRV_CDS || t == ADS_SRV_LDS;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(ads_srv_resource_t *const *)a)->name, (*(ads_srv_resource_t *const *)b)->name);
}

/* SotW listeners and clusters: the whole set the stream may see, every time. */
static int owed_full_set(ads_srv_stream_t *s, ads_srv_tstate_t *ts, ads_srv_type_t t, out_t *o,
                         uint64_t *set_hash)
{
    const ads_srv_view_t *v = s->views[t];
    uint64_t sum = 0;
    if (ts->wildcard) {
        for (size_t i = 0; i < v->n[t]; i++)
            if (out_add(o, v->res[t][i]) < 0)
                return -ENOMEM;
    } else {
        for (size_t i = 0; i < ts->table.nbuckets; i++)
            for (ads_srv_entry_t *e = ts->table.buckets[i]; e; e = e->next) {
                ads_srv_resource_t *r = e->subscribed ? ads_srv_view_lookup(v, t, e->name) : NULL;
                if (r && out_add(o, r) < 0)
                    return -ENOMEM;
            }
        if (o->nres > 1)
            qsort(o->res, o->nres, sizeof(*o->res), by_name);
    }
    for (size_t i = 0; i < o->nres; i++)
        sum += ads_srv_mix(o->res[i]->name_hash, o->res[i]->hash);
    *set_hash = sum;
    return 0;
}

/* One entry of a per-name type: sent when it changed, removed (delta) when the client holds it
 * and may no longer, or told absent (delta) when asked for and missing. */
static int owed_entry(ads_srv_stream_t *s, ads_srv_tstate_t *ts, ads_srv_type_t t,
                      ads_srv_entry_t *e, out_t *o)
{
    bool delta = s->opts.mode == ADS_SRV_DELTA;
    ads_srv_resource_t *r = ads_srv_view_lookup(s->views[t], t, e->name);
    bool wanted = e->subscribed || (ts->wildcard && full_set(t));
    if (r && wanted) {
        if (!e->sent || e->sent_hash != r->hash)
            return out_add(o, r);
        e->tell_absent = false;
        return 0;
    }
    /* SotW cannot say a resource is gone: the client keeps its last version. */
    if (delta && (e->sent || (e->tell_absent && !r)))
        return out_remove(o, e->name);
    return 0;
}

static int owed_per_name(ads_srv_stream_t *s, ads_srv_tstate_t *ts, ads_srv_type_t t, out_t *o)
{
    if (!ts->full) {
        for (size_t i = 0; i < ts->npending; i++)
            if (owed_entry(s, ts, t, ts->pending[i], o) < 0)
                return -ENOMEM;
        return 0;
    }
    if (ts->wildcard && full_set(t)) { /* delta wildcard: every resource, known or not */
        const ads_srv_view_t *v = s->views[t];
        for (size_t i = 0; i < v->n[t]; i++) {
            ads_srv_entry_t *e = ads_srv_table_find(&ts->table, v->res[t][i]->name);
            if ((e == NULL || !e->sent || e->sent_hash != v->res[t][i]->hash) &&
                out_add(o, v->res[t][i]) < 0)
                return -ENOMEM;
        }
    }
    for (size_t i = 0; i < ts->table.nbuckets; i++)
        for (ads_srv_entry_t *e = ts->table.buckets[i]; e; e = e->next) {
            bool in_view = ads_srv_view_lookup(s->views[t], t, e->name) != NULL;
            if (ts->wildcard && full_set(t) && in_view)
                continue; /* done above */
            if (owed_entry(s, ts, t, e, o) < 0)
                return -ENOMEM;
        }
    return 0;
}

/* After a response: the client holds what it carried and nothing it removed. */
static int record_sent(ads_srv_stream_t *s, ads_srv_tstate_t *ts, ads_srv_type_t t, const out_t *o)
{
    if (s->opts.mode == ADS_SRV_SOTW && full_set(t))
        return 0;
    for (size_t i = 0; i < o->nres; i++) {
        ads_srv_entry_t *e = ads_srv_table_get(&ts->table, o->res[i]->name);
        if (e == NULL)
            return -ENOMEM;
        ads_srv_entry_hold(ts, e, true, o->res[i]->hash);
        e->tell_absent = false;
    }
    for (size_t i = 0; i < o->nremoved; i++) {
        ads_srv_entry_t *e = ads_srv_table_find(&ts->table, o->removed[i]);
        if (e) {
            ads_srv_entry_hold(ts, e, false, 0);
            e->tell_absent = false;
        }
    }
    return 0;
}

static void out_free(out_t *o)
{
    free(o->res);
    free(o->removed);
}

/* The response's state and what the caller reads of it. */
static void sent(ads_srv_stream_t *s, ads_srv_tstate_t *ts, ads_srv_type_t t, out_t *o, size_t len)
{
    s->nonce_seq++;
    snprintf(ts->nonce, sizeof(ts->nonce), "%llu", (unsigned long long)s->nonce_seq);
    ts->answered = true;
    ts->acked = ts->nacked = false;
    ads_srv_count(s, offsetof(ads_srv_counters_t, responses) + t * sizeof(uint64_t), 1);
    ads_srv_count(s, offsetof(ads_srv_counters_t, resources_sent) + t * sizeof(uint64_t), o->nres);
    ads_srv_count(s, offsetof(ads_srv_counters_t, removed_sent) + t * sizeof(uint64_t),
                  o->nremoved);
    ADS_SRV_COUNT(s, bytes_sent, len);
    ads_srv_release_last(s);
    for (size_t i = 0; i < o->nres; i++)
        ads_srv_resource_ref(o->res[i]);
    s->last_res = o->res; /* the references taken above */
    s->nlast_res = o->nres;
    o->res = NULL;
    memcpy(s->last_nonce, ts->nonce, sizeof(s->last_nonce));
    memcpy(s->last_version, ts->version_sent, sizeof(s->last_version));
    s->last = (ads_srv_response_info_t){
        .type = t,
        .nonce = s->last_nonce,
        .version = s->last_version,
        .resources = (const ads_srv_resource_t *const *)s->last_res,
        .n_resources = s->nlast_res,
        .n_removed = o->nremoved,
    };
    s->have_last = true;
}

static int encode(ads_srv_stream_t *s, ads_srv_tstate_t *ts, ads_srv_type_t t, const out_t *o,
                  uint8_t **buf, size_t *len)
{
    char nonce[24];
    snprintf(nonce, sizeof(nonce), "%llu", (unsigned long long)s->nonce_seq + 1);
    pbw_t w = {0};
    write_response(&w, s->opts.mode, t, o, ts->version_sent, nonce);
    if ((w.p = malloc(w.n ? w.n : 1)) == NULL)
        return -ENOMEM;
    *len = w.n;
    w.n = 0;
    write_response(&w, s->opts.mode, t, o, ts->version_sent, nonce);
    *buf = w.p;
    return 0;
}

/* SotW reconnect: a client that asks for the whole set of listeners or clusters with the
 * version it already holds is sent nothing until that set changes. */
static bool holds_already(ads_srv_tstate_t *ts, const char *version)
{
    if (ts->answered || !ts->wildcard || ts->names || ts->initial_version == NULL ||
        strcmp(ts->initial_version, version) != 0)
        return false;
    ts->answered = ts->acked = true;
    free(ts->version_acked);
    ts->version_acked = ts->initial_version;
    ts->initial_version = NULL;
    return true;
}

int ads_srv_build(ads_srv_stream_t *s, ads_srv_type_t t, uint8_t **buf, size_t *len)
{
    ads_srv_tstate_t *ts = &s->types[t];
    out_t o = {0};
    uint64_t set_hash = 0;
    bool sotw_full = s->opts.mode == ADS_SRV_SOTW && full_set(t);
    int rc = sotw_full ? owed_full_set(s, ts, t, &o, &set_hash) : owed_per_name(s, ts, t, &o);
    if (rc < 0)
        goto done;
    /* A SotW set asked for by name is answered when the names change even if the set does not:
     * a name added that is not there is how the client learns it is absent (as Istio answers;
     * a proxyless gRPC client would otherwise wait for its own timer). */
    bool named_anew = sotw_full && ts->full && !ts->wildcard;
    bool nothing = sotw_full ? ts->answered && set_hash == ts->sent_set && !named_anew
                             : o.nres == 0 && o.nremoved == 0;
    rc = record_sent(s, ts, t, &o);
    if (rc < 0)
        goto done;
    char version[17];
    ads_srv_hex(sotw_full ? set_hash : ts->held, version);
    if ((nothing && ts->answered) || (sotw_full && holds_already(ts, version))) {
        memcpy(ts->version_sent, version, sizeof(version));
        ts->sent_set = set_hash;
        rc = 0;
        goto done;
    }
    memcpy(ts->version_sent, version, sizeof(version));
    ts->sent_set = set_hash;
    if ((rc = encode(s, ts, t, &o, buf, len)) < 0)
        goto done;
    sent(s, ts, t, &o, *len);
    rc = 1;
done:
    if (rc >= 0) {
        /* Entries left with nothing go on a full pass, or when this one removed some. */
        if (ts->full || o.nremoved)
            ads_srv_table_sweep(&ts->table);
        ads_srv_pending_clear(ts);
        ts->full = false;
    }
    out_free(&o);
    return rc;
}

int ads_srv_stream_next_response(ads_srv_stream_t *s, uint8_t **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    for (int t = 0; t < ADS_SRV_NTYPES; t++) {
        ads_srv_tstate_t *ts = &s->types[t];
        if (s->views[t] == NULL || !ts->requested ||
            (ts->answered && !ts->full && ts->npending == 0))
            continue;
        int rc = ads_srv_build(s, t, buf, len);
        if (rc != 0)
            return rc;
    }
    return 0;
}

const ads_srv_response_info_t *ads_srv_stream_last_response(const ads_srv_stream_t *s)
{
    return s->have_last ? &s->last : NULL;
}
